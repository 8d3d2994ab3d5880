import { AppError } from '../errors';
import { graphErrorMessage } from './errors';
import { DEFAULT_RETRY_AFTER_SEC, postToGraph, transientFailure } from './post';
import type { GraphNotification } from '../notifications/request';

export interface SentNotification {
  /** The id Graph gave the notification. */
  id: string;
  expirationDateTime: string;
}

export interface GraphClientOptions {
  baseUrl: string;
  timeoutMs?: number;
}

/**
 * Posts user notifications to Microsoft Graph (`POST {base}/me/notifications`) with a delegated
 * token for the user. One attempt per call, bounded by a timeout: retrying is the caller's
 * decision (an HTTP caller gets 503 + Retry-After, a queue message is put back).
 */
export class GraphNotificationClient {
  private readonly url: string;
  private readonly timeoutMs: number;

  constructor(options: GraphClientOptions) {
    this.url = `${options.baseUrl.replace(/\/+$/, '')}/me/notifications`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /**
   * Side effect: creates (or, for a known appNotificationId, updates) the user's notification.
   * Needs the delegated permission Notifications.ReadWrite.CreatedByApp.
   */
  async send(
    accessToken: string,
    notification: GraphNotification,
    clientRequestId?: string,
  ): Promise<SentNotification> {
    const answer = await postToGraph(this.url, accessToken, notification, {
      timeoutMs: this.timeoutMs,
      ...(clientRequestId ? { clientRequestId } : {}),
    });
    const { status, code, text } = answer;
    if (status === 201 || status === 200) return created(text);
    // 406 is this API's documented answer when it is throttled or too busy.
    const transient = transientFailure(answer, [429, 406]);
    if (transient) throw transient;
    throw new AppError('upstream_rejected', {
      detail: `Graph rejected the notification: ${status}${code ? ` ${code}` : ''}${graphErrorMessage(text)}`,
    });
  }
}

/** Graph's 201 body; one without an id is no evidence of a created notification. */
function created(text: string): SentNotification {
  let body: Partial<Record<keyof SentNotification, unknown>> = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Falls through to the check below.
  }
  if (typeof body.id !== 'string') {
    throw new AppError('upstream_unavailable', {
      detail: 'Graph answered 201 without a notification id.',
      retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
    });
  }
  return {
    id: body.id,
    expirationDateTime: typeof body.expirationDateTime === 'string' ? body.expirationDateTime : '',
  };
}
