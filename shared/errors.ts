/**
 * Every failure the app can report, as a code a program can switch on. The HTTP edge turns a code
 * into problem details (RFC 9457), the queue edge into a poison `reason`: both from this one list.
 */
export type ErrorCode =
  | 'missing_token'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'tenant_not_allowed'
  | 'invalid_request'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'interaction_required'
  | 'upstream_unavailable'
  | 'upstream_rejected'
  | 'invalid_message'
  | 'not_registered'
  | 'recipient_is_sender'
  | 'recipient_not_found'
  | 'teams_app_not_installed'
  | 'app_permission_disabled'
  | 'invalid_grant'
  | 'not_found'
  | 'idempotency_key_reused'
  | 'request_in_progress'
  | 'dependency_unavailable'
  | 'credential_rejected'
  | 'invalid_config'
  | 'internal_error';

interface CodeInfo {
  status: number;
  title: string;
  retryable: boolean;
}

const CODES: Record<ErrorCode, CodeInfo> = {
  missing_token: { status: 401, title: 'Authentication required', retryable: false },
  invalid_token: { status: 401, title: 'Invalid access token', retryable: false },
  insufficient_scope: { status: 403, title: 'Required scope missing', retryable: false },
  tenant_not_allowed: { status: 403, title: 'Tenant not allowed', retryable: false },
  invalid_request: { status: 400, title: 'Invalid request', retryable: false },
  // The contract answers a wrong content type with 415 and the code `invalid_request`.
  unsupported_media_type: { status: 415, title: 'Unsupported media type', retryable: false },
  payload_too_large: { status: 413, title: 'Payload too large', retryable: false },
  interaction_required: { status: 401, title: 'User interaction required', retryable: false },
  upstream_unavailable: { status: 503, title: 'Upstream service unavailable', retryable: true },
  upstream_rejected: { status: 502, title: 'Upstream service rejected the request', retryable: false },
  invalid_message: { status: 400, title: 'Invalid queue message', retryable: false },
  not_registered: { status: 409, title: 'User not registered for deferred notifications', retryable: false },
  recipient_is_sender: { status: 400, title: 'Recipient is the sender', retryable: false },
  recipient_not_found: { status: 404, title: 'Recipient not found', retryable: false },
  teams_app_not_installed: {
    status: 409,
    title: 'Teams app not installed for the recipient',
    retryable: false,
  },
  app_permission_disabled: { status: 403, title: 'Sending as the app is disabled', retryable: false },
  invalid_grant: { status: 401, title: 'Stored grant revoked or expired', retryable: false },
  not_found: { status: 404, title: 'Not found', retryable: false },
  idempotency_key_reused: {
    status: 422,
    title: 'Idempotency-Key used for another request',
    retryable: false,
  },
  request_in_progress: {
    status: 409,
    title: 'A request with this Idempotency-Key is in progress',
    retryable: true,
  },
  dependency_unavailable: { status: 503, title: 'Dependency unavailable', retryable: true },
  // The identity service refused the app's own credential (secret, certificate or federated
  // managed identity): an operator must fix the configuration; the request itself was fine.
  credential_rejected: {
    status: 500,
    title: "The identity service rejected this app's credential",
    retryable: false,
  },
  invalid_config: { status: 500, title: 'Invalid configuration', retryable: false },
  internal_error: { status: 500, title: 'Internal error', retryable: false },
};

export interface AppErrorOptions {
  /** Human-readable and safe to show a caller: never a token, secret or raw library message. */
  detail?: string;
  cause?: unknown;
  /** Seconds the caller should wait before retrying (`Retry-After`). */
  retryAfterSeconds?: number;
  /** Extra `WWW-Authenticate` parameters (RFC 6750), e.g. a claims challenge. */
  authenticate?: Record<string, string>;
  /** The service refused the credential we sent (e.g. Graph's 401): a cached token must go. */
  staleCredential?: boolean;
  /** The service throttled us (429): for telemetry, which counts delayed sends. */
  throttled?: boolean;
}

export class AppError extends Error {
  override readonly name = 'AppError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly title: string;
  readonly retryable: boolean;
  readonly detail: string;
  readonly retryAfterSeconds: number | undefined;
  readonly authenticate: Readonly<Record<string, string>> | undefined;
  readonly staleCredential: boolean;
  readonly throttled: boolean;

  constructor(code: ErrorCode, options: AppErrorOptions = {}) {
    const info = CODES[code];
    super(options.detail ?? info.title, { cause: options.cause });
    this.code = code;
    this.status = info.status;
    this.title = info.title;
    this.retryable = info.retryable;
    this.detail = options.detail ?? info.title;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.authenticate = options.authenticate;
    this.staleCredential = options.staleCredential ?? false;
    this.throttled = options.throttled ?? false;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** Anything thrown, as an AppError: library errors that reach an edge unnormalised are internal. */
export function toAppError(err: unknown): AppError {
  return isAppError(err) ? err : new AppError('internal_error', { cause: err });
}
