import { AppError } from '../errors';
import { retryAfterSeconds } from '../http/retry-after';
import { graphErrorCode, graphErrorMessage } from './errors';
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

/** When Graph names no wait, callers are asked to come back after this many seconds. */
const DEFAULT_RETRY_AFTER_SEC = 10;

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
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.url, {
        method: 'POST',
        // fetch sets no content type for a string body, and Graph insists on one.
        headers: {
          authorization: `Bearer ${accessToken}`,
          'content-type': 'application/json',
          accept: 'application/json',
          ...(clientRequestId ? { 'client-request-id': clientRequestId } : {}),
        },
        body: JSON.stringify(notification),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      // Inside the try: the timeout can also strike while the body is still arriving.
      text = await res.text();
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw new AppError('upstream_unavailable', {
        detail: timedOut
          ? `Graph did not answer within ${this.timeoutMs} ms.`
          : 'Graph could not be reached.',
        retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
        cause: err,
      });
    }
    if (res.status === 201 || res.status === 200) return created(text);
    const code = graphErrorCode(text);
    // 406 is this API's documented answer when it is throttled or too busy.
    if (res.status === 429 || res.status === 406 || res.status >= 500) {
      throw new AppError('upstream_unavailable', {
        detail: `Graph answered ${res.status}${code ? ` (${code})` : ''}; try again later.`,
        retryAfterSeconds: retryAfterSeconds((name) => res.headers.get(name)) ?? DEFAULT_RETRY_AFTER_SEC,
      });
    }
    if (res.status === 401) {
      // A token Graph no longer takes (revoked since it was cached, or a continuous-access-evaluation
      // challenge): transient for the caller, once the token it came from is dropped.
      throw new AppError('upstream_unavailable', {
        detail: `Graph refused the access token (401${code ? ` ${code}` : ''}); try again.`,
        retryAfterSeconds: 1,
        staleCredential: true,
      });
    }
    throw new AppError('upstream_rejected', {
      detail: `Graph rejected the notification: ${res.status}${code ? ` ${code}` : ''}${graphErrorMessage(text)}`,
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
