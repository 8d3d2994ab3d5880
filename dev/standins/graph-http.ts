import type { IncomingMessage } from 'node:http';
import { gunzipSync, inflateSync } from 'node:zlib';
import { decodeJwt, type JWTPayload } from 'jose';
import type { Fault } from './https';
import { GRAPH_APP_ID, GRAPH_RESOURCE } from './identities';

// What every endpoint of the Graph stand-in shares: Graph's error shape, reading the bearer
// token and reading a JSON body the way Graph's OData layer does.

/** Entra names Graph either way in `aud` (v1 tokens: the resource URI, with or without the slash). */
export const GRAPH_AUDIENCES = [GRAPH_RESOURCE, `${GRAPH_RESOURCE}/`, GRAPH_APP_ID];

/** jose's default skew in keys.verify is 300 s; the classification of a failure uses the same. */
const CLOCK_SKEW_S = 300;

export type VerifyToken = (token: string, audiences: string[]) => Promise<JWTPayload>;

/** A Graph error answer: `{"error":{"code","message","innerError":{…}}}`. */
export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly body?: unknown,
  ) {
    super(message);
  }
}

// Graph's own 401 challenge points at the identity service and names Graph's app id.
const WWW_AUTHENTICATE = `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"`;

export function unauthorized(message: string): GraphError {
  return new GraphError(401, 'InvalidAuthenticationToken', message, { 'www-authenticate': WWW_AUTHENTICATE });
}

export function badRequest(message: string): GraphError {
  return new GraphError(400, 'BadRequest', message);
}

export const UNREADABLE_JSON =
  'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.';

/** The body Graph sends with an error (or the fault's own body). */
export function graphErrorBody(err: GraphError, requestId: string, clientRequestId: string): unknown {
  if (err.body !== undefined) return err.body;
  return {
    error: {
      code: err.code,
      message: err.message,
      innerError: {
        // Graph writes this without a zone or fraction: "2020-09-11T11:21:34".
        date: new Date().toISOString().slice(0, 19),
        'request-id': requestId,
        'client-request-id': clientRequestId,
      },
    },
  };
}

/** Graph's default answer for a status the fault queue asks for. */
export function faultError(fault: Fault): GraphError {
  const headers: Record<string, string> = {};
  // A 429 without Retry-After would not be Graph; 1 s keeps tests and retries quick.
  const retryAfter = fault.retryAfter ?? (fault.status === 429 ? 1 : undefined);
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  const known: Record<number, [string, string]> = {
    400: ['BadRequest', 'Invalid payload.'],
    401: ['InvalidAuthenticationToken', 'Access token validation failure.'],
    403: ['Forbidden', 'Caller is on the blocked list.'],
    406: ['activityLimitReached', 'Request has been throttled or the server is busy.'],
    429: ['TooManyRequests', 'Too many requests.'],
    500: ['generalException', 'An unspecified error has occurred.'],
    502: ['UnknownError', 'Bad gateway.'],
    503: [
      'serviceNotAvailable',
      'The service is temporarily unavailable. Try the request again after a delay.',
    ],
    504: ['UnknownError', 'Gateway timeout.'],
  };
  const [code, message] = known[fault.status] ?? ['UnknownError', `Injected failure ${fault.status}.`];
  return new GraphError(fault.status, code, message, headers, fault.body);
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The bearer token's verified claims, or Graph's 401 for why it was refused. */
export async function authenticate(req: IncomingMessage, verifyToken: VerifyToken): Promise<JWTPayload> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header(req, 'authorization') ?? '');
  const token = match?.[1];
  if (!token) throw unauthorized('Access token is empty.');
  let claims: JWTPayload;
  try {
    claims = await verifyToken(token, GRAPH_AUDIENCES);
  } catch {
    // The verifier's error types are its own; the claims tell which of Graph's messages applies.
    let decoded: JWTPayload | undefined;
    try {
      decoded = decodeJwt(token);
    } catch {
      decoded = undefined;
    }
    const nowS = Date.now() / 1000;
    if (decoded && typeof decoded.exp === 'number' && decoded.exp + CLOCK_SKEW_S < nowS) {
      throw unauthorized('Access token has expired or is not yet valid.');
    }
    if (decoded && typeof decoded.nbf === 'number' && decoded.nbf - CLOCK_SKEW_S > nowS) {
      throw unauthorized('Access token has expired or is not yet valid.');
    }
    const aud = decoded ? [decoded.aud ?? []].flat() : [];
    if (decoded && !aud.some((a) => GRAPH_AUDIENCES.includes(a))) {
      throw unauthorized('Access token validation failure. Invalid audience.');
    }
    throw unauthorized('Access token validation failure.');
  }
  return claims;
}

/** The JSON body, or the 400/415 Graph's OData layer answers for one it cannot read. */
export function parseJsonBody(req: IncomingMessage, raw: Buffer): unknown {
  const contentType = header(req, 'content-type');
  if (!contentType) throw badRequest(UNREADABLE_JSON);
  const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    // What Graph's OData layer answers for a body it has no reader for (e.g. fetch's text/plain default).
    throw new GraphError(
      415,
      'RequestBodyRead',
      "A supported MIME type could not be found that matches the content type of the response. None of the supported type(s) 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false, application/json' matches the content type '" +
        contentType +
        "'.",
    );
  }
  const encoding = (header(req, 'content-encoding') ?? 'identity').trim().toLowerCase();
  let text: string;
  try {
    if (encoding === 'gzip') text = gunzipSync(raw).toString('utf8');
    else if (encoding === 'deflate') text = inflateSync(raw).toString('utf8');
    else text = raw.toString('utf8');
  } catch {
    throw badRequest(UNREADABLE_JSON);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badRequest(UNREADABLE_JSON);
  }
}
