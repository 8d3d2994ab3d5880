import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { toAppError } from '../errors';
import type { Logger } from '../notifications/send';
import { toProblem } from './problem';
import { redact } from '../redact';

/** The invocation's logger for the services: structured properties, never a token. */
export function loggerFor(context: InvocationContext): Logger {
  return {
    info: (message, properties) => context.info(message, properties ?? {}),
    warn: (message, properties) => context.warn(message, properties ?? {}),
  };
}

/**
 * Runs an HTTP handler's work and turns any failure into problem+json, logging the code (and, for
 * an unexpected error, the chain of messages behind it, redacted; bodies are never logged).
 */
export async function answer(
  request: HttpRequest,
  context: InvocationContext,
  work: () => Promise<HttpResponseInit>,
): Promise<HttpResponseInit> {
  try {
    return await work();
  } catch (err) {
    const error = toAppError(err);
    const cause = error.code === 'internal_error' ? `: ${causeChain(err)}` : '';
    const level = error.status >= 500 ? 'error' : 'warn';
    context[level](`${request.method} ${new URL(request.url).pathname} failed with ${error.code}${cause}`);
    return toProblem(error);
  }
}

/** An error's message and its causes', for the operator's log: the caller gets none of it. */
function causeChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e instanceof Error && parts.length < 5; e = e.cause) parts.push(e.message);
  return redact(parts.join(' ← ') || String(err));
}
