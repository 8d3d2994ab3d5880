/**
 * A message with anything token-shaped taken out: a JWT, or an opaque run as long as a refresh
 * token. For text from libraries (their error messages, msal's log) before it reaches a log line.
 */
export function redact(message: string): string {
  return message
    .replace(/eyJ[\w-]*\.[\w-]*\.[\w-]*/g, '[redacted]')
    .replace(/[A-Za-z0-9_\-.]{80,}/g, '[redacted]');
}
