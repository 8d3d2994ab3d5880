import { AppError } from '../../errors';
import { graphErrorMessage } from '../../graph/errors';
import { postToGraph, transientFailure } from '../../graph/post';
import type { TeamsActivityBody } from './activity';

// Graph's 403 when the Teams app whose manifest names this app registration is not installed for
// the recipient (or the install has not propagated yet). Graph gives it no code of its own.
const NOT_INSTALLED = /not authorized to generate custom text notifications/i;

/**
 * Graph's Teams activity feed: `POST {origin}/v1.0/users/{recipient}/teamwork/sendActivityNotification`
 * with a delegated (TeamsActivity.Send) or app (TeamsActivity.Send role) token. One try per call,
 * bounded by a timeout; failures leave as AppErrors of the app's table.
 */
export class TeamsActivityClient {
  constructor(private readonly options: { graphOrigin: string; timeoutMs?: number }) {}

  /** Side effect: one item in the recipient's activity feed (a repeated chainId replaces it). */
  async send(
    accessToken: string,
    recipient: string,
    activity: TeamsActivityBody,
    clientRequestId?: string,
  ): Promise<void> {
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    const url = `${this.options.graphOrigin}/v1.0/users/${encodeURIComponent(recipient)}/teamwork/sendActivityNotification`;
    const answer = await postToGraph(url, accessToken, activity, {
      timeoutMs,
      ...(clientRequestId ? { clientRequestId } : {}),
    });
    const { status, code, text } = answer;
    if (status === 204 || status === 200 || status === 202) return;
    const transient = transientFailure(answer, [429]);
    if (transient) throw transient;
    const said = `${status}${code ? ` ${code}` : ''}${graphErrorMessage(text)}`;
    if (status === 403 && NOT_INSTALLED.test(text)) {
      throw new AppError('teams_app_not_installed', {
        detail:
          'The Teams app is not installed for the recipient (installs take a few minutes to reach Graph): ' +
          `Graph answered ${said}`,
      });
    }
    if (status === 404) {
      throw new AppError('recipient_not_found', { detail: `Graph knows no such recipient: ${said}` });
    }
    throw new AppError('upstream_rejected', { detail: `Graph rejected the activity: ${said}` });
  }
}
