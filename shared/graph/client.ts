import { AppError } from '../errors';
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

/** `Retry-After` as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function retryAfterSeconds(value: string | null, now: number = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
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
    let res: Response;
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
    const text = await res.text();
    if (res.status === 201 || res.status === 200) {
      const body = JSON.parse(text) as Partial<SentNotification>;
      return { id: String(body.id), expirationDateTime: String(body.expirationDateTime) };
    }
    const code = graphErrorCode(text);
    // 406 is this API's documented answer when it is throttled or too busy.
    if (res.status === 429 || res.status === 406 || res.status >= 500) {
      throw new AppError('upstream_unavailable', {
        detail: `Graph answered ${res.status}${code ? ` (${code})` : ''}; try again later.`,
        retryAfterSeconds: retryAfterSeconds(res.headers.get('retry-after')) ?? DEFAULT_RETRY_AFTER_SEC,
      });
    }
    throw new AppError('upstream_rejected', {
      detail: `Graph rejected the notification: ${res.status}${code ? ` ${code}` : ''}${graphErrorMessage(text)}`,
    });
  }
}

function parseError(text: string): { code?: unknown; message?: unknown } | undefined {
  try {
    return (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
  } catch {
    return undefined;
  }
}

function graphErrorCode(text: string): string | undefined {
  const code = parseError(text)?.code;
  return typeof code === 'string' ? code : undefined;
}

// Graph's messages describe the request (e.g. which property it rejected), never the token.
function graphErrorMessage(text: string): string {
  const message = parseError(text)?.message;
  return typeof message === 'string' && message.length > 0 ? `: ${message.slice(0, 300)}` : '';
}
