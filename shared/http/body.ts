import { AppError } from '../errors';

export const MAX_BODY_BYTES = 64 * 1024;

/** The parts of a request body reader needs (an `@azure/functions` HttpRequest has them). */
export interface BodySource {
  headers: { get(name: string): string | null };
  body: ReadableStream<Uint8Array> | null;
}

/**
 * Reads a JSON body of at most `limit` bytes. Stops reading as soon as the limit is passed, so
 * an oversized body costs no more than the limit. Throws `unsupported_media_type`,
 * `payload_too_large` or `invalid_request`.
 */
export async function readJsonBody(request: BodySource, limit: number = MAX_BODY_BYTES): Promise<unknown> {
  const type = request.headers.get('content-type') ?? '';
  if (!/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new AppError('unsupported_media_type', {
      detail: 'Send the body as Content-Type: application/json.',
    });
  }
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > limit) throw tooLarge(limit);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        throw tooLarge(limit);
      }
      chunks.push(value);
    }
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError('invalid_request', { detail: 'The body is not valid JSON.' });
  }
}

function tooLarge(limit: number): AppError {
  return new AppError('payload_too_large', { detail: `The body may be at most ${limit / 1024} KiB.` });
}
