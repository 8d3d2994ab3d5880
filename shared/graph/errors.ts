// Graph's error body, `{ "error": { "code", "message", "innerError" } }`, read the same way for every call.

function parseError(text: string): { code?: unknown; message?: unknown } | undefined {
  try {
    return (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
  } catch {
    return undefined;
  }
}

export function graphErrorCode(text: string): string | undefined {
  const code = parseError(text)?.code;
  return typeof code === 'string' ? code : undefined;
}

// Graph's messages describe the request (e.g. which property it rejected), never the token.
export function graphErrorMessage(text: string): string {
  const message = parseError(text)?.message;
  return typeof message === 'string' && message.length > 0 ? `: ${message.slice(0, 300)}` : '';
}
