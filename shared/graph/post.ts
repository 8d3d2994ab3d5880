import { AppError } from '../errors';
import { retryAfterSeconds } from '../http/retry-after';
import { graphErrorCode } from './errors';

/** When Graph names no wait, callers are asked to come back after this many seconds. */
export const DEFAULT_RETRY_AFTER_SEC = 10;

/** Graph's answer to one POST: its status, headers, and the body as text. */
export interface GraphAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** Graph's `error.code`, when the body is an error. */
  code: string | undefined;
}

/**
 * One POST of a JSON body to Graph with a bearer token, bounded by `timeoutMs` (the timeout also
 * covers the body arriving). Throws `upstream_unavailable` when Graph cannot be reached or does not
 * answer in time; any HTTP answer is returned for the caller to read.
 */
export async function postToGraph(
  url: string,
  accessToken: string,
  body: unknown,
  options: { timeoutMs: number; clientRequestId?: string },
): Promise<GraphAnswer> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      // fetch sets no content type for a string body, and Graph insists on one.
      headers: {
        authorization: `Bearer ${accessToken}`,
        'content-type': 'application/json',
        accept: 'application/json',
        ...(options.clientRequestId ? { 'client-request-id': options.clientRequestId } : {}),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, code: graphErrorCode(text) };
  } catch (err) {
    const timedOut = err instanceof Error && err.name === 'TimeoutError';
    throw new AppError('upstream_unavailable', {
      detail: timedOut
        ? `Graph did not answer within ${options.timeoutMs} ms.`
        : 'Graph could not be reached.',
      retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
      cause: err,
    });
  }
}

/**
 * The failures every Graph call reads the same way, or undefined: throttling or an outage
 * (`throttleStatuses` and 5xx) is `upstream_unavailable` with Graph's Retry-After; a 401 means the
 * token we sent is no longer taken (revoked since it was cached, or a continuous-access-evaluation
 * challenge) — transient for the caller, once the token it came from is dropped.
 */
export function transientFailure(
  answer: GraphAnswer,
  throttleStatuses: readonly number[],
): AppError | undefined {
  const { status, code } = answer;
  if (throttleStatuses.includes(status) || status >= 500) {
    return new AppError('upstream_unavailable', {
      detail: `Graph answered ${status}${code ? ` (${code})` : ''}; try again later.`,
      retryAfterSeconds: retryAfterSeconds((name) => answer.headers.get(name)) ?? DEFAULT_RETRY_AFTER_SEC,
      throttled: status === 429,
    });
  }
  if (status === 401) {
    return new AppError('upstream_unavailable', {
      detail: `Graph refused the access token (401${code ? ` ${code}` : ''}); try again.`,
      retryAfterSeconds: 1,
      staleCredential: true,
    });
  }
  return undefined;
}
