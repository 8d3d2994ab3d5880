import { AppError } from '../../errors';
import { graphErrorCode, graphErrorMessage } from '../../graph/errors';
import { retryAfterSeconds } from '../../http/retry-after';
import type { TeamsActivityBody } from './activity';

const DEFAULT_RETRY_AFTER_SEC = 10;
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
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${accessToken}`,
          'content-type': 'application/json',
          accept: 'application/json',
          ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
        },
        body: JSON.stringify(activity),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw new AppError('upstream_unavailable', {
        detail: timedOut ? `Graph did not answer within ${timeoutMs} ms.` : 'Graph could not be reached.',
        retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
        cause: err,
      });
    }
    if (res.status === 204 || res.status === 200 || res.status === 202) return;
    const code = graphErrorCode(text);
    const said = `${res.status}${code ? ` ${code}` : ''}${graphErrorMessage(text)}`;
    if (res.status === 429 || res.status >= 500) {
      throw new AppError('upstream_unavailable', {
        detail: `Graph answered ${res.status}${code ? ` (${code})` : ''}; try again later.`,
        retryAfterSeconds: retryAfterSeconds((name) => res.headers.get(name)) ?? DEFAULT_RETRY_AFTER_SEC,
        throttled: res.status === 429,
      });
    }
    if (res.status === 401) {
      throw new AppError('upstream_unavailable', {
        detail: `Graph refused the access token (401${code ? ` ${code}` : ''}); try again.`,
        retryAfterSeconds: 1,
        staleCredential: true,
      });
    }
    if (res.status === 403 && NOT_INSTALLED.test(text)) {
      throw new AppError('teams_app_not_installed', {
        detail:
          'The Teams app is not installed for the recipient (installs take a few minutes to reach Graph): ' +
          `Graph answered ${said}`,
      });
    }
    if (res.status === 404) {
      throw new AppError('recipient_not_found', { detail: `Graph knows no such recipient: ${said}` });
    }
    throw new AppError('upstream_rejected', { detail: `Graph rejected the activity: ${said}` });
  }
}
