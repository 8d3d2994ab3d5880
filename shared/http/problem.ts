import type { HttpResponseInit } from '@azure/functions';
import { AppError, toAppError } from '../errors';

// A URN rather than a URL: the codes are documented in the README's error table, not at an address.
const PROBLEM_BASE = 'urn:graph-notify:problem';

// The contract's codes where they differ from ours: a wrong content type is `invalid_request`.
const PUBLIC_CODE: Partial<Record<AppError['code'], string>> = { unsupported_media_type: 'invalid_request' };

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * An error as the HTTP answer: `application/problem+json` with a stable `code`, plus the
 * `WWW-Authenticate` and `Retry-After` headers the code calls for. Internal errors say nothing of
 * their cause (it may hold a library message with a token or URL in it).
 */
export function toProblem(err: unknown, extensions: Record<string, unknown> = {}): HttpResponseInit {
  const error = toAppError(err);
  const code = PUBLIC_CODE[error.code] ?? error.code;
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (error.status === 401) {
    const params: Record<string, string> = { ...(error.authenticate ?? {}) };
    if (error.code === 'invalid_token') params.error ??= 'invalid_token';
    const rendered = Object.entries(params).map(([k, v]) => `${k}=${quote(v)}`);
    headers['www-authenticate'] = rendered.length > 0 ? `Bearer ${rendered.join(', ')}` : 'Bearer';
  }
  if (error.retryAfterSeconds !== undefined)
    headers['retry-after'] = String(Math.ceil(error.retryAfterSeconds));
  return {
    status: error.status,
    headers,
    jsonBody: {
      type: `${PROBLEM_BASE}:${code}`,
      title: error.title,
      status: error.status,
      detail: error.code === 'internal_error' ? 'The request could not be completed.' : error.detail,
      code,
      ...extensions,
    },
  };
}
