import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync, inflateSync } from 'node:zlib';
import { decodeJwt, type JWTPayload } from 'jose';
import type { LocalTls } from '../tls';
import { FaultQueue, delay, readBody, sendJson, startHttps, type Fault } from './https';
import { GRAPH_APP_ID, GRAPH_RESOURCE } from './identities';
import { PAGE_CSP, renderNotificationsPage } from './graph-page';

// Stand-in for Microsoft Graph's user notifications API (beta, deprecated upstream):
// `POST /beta/me/notifications` with a delegated token carrying Notifications.ReadWrite.CreatedByApp.
// Sources: learn.microsoft.com/graph/api/notifications-post (beta) and resources/projectrome-notification,
// payloadtypes, visualproperties, targetpolicyendpoints, fallbackpolicy(properties); errors from
// learn.microsoft.com/graph/errors. Where those are silent, behaviour follows what Graph does elsewhere.

export const NOTIFICATIONS_SCOPE = 'Notifications.ReadWrite.CreatedByApp';
/** "Max value is 30 days" (projectrome-notification, expirationDateTime). */
export const MAX_EXPIRATION_DAYS = 30;
/** Not in Graph's docs; the product contract states Graph's default is 7 days, so the stand-in uses it. */
export const DEFAULT_EXPIRATION_DAYS = 7;
/** Entra names Graph either way in `aud` (v1 tokens: the resource URI, with or without the slash). */
export const GRAPH_AUDIENCES = [GRAPH_RESOURCE, `${GRAPH_RESOURCE}/`, GRAPH_APP_ID];

const DAY_MS = 24 * 60 * 60 * 1000;
/** jose's default skew in keys.verify is 300 s; the classification of a failure uses the same. */
const CLOCK_SKEW_S = 300;

export interface GraphStandInOptions {
  tls: LocalTls;
  /** 0 picks a free port. */
  port?: number;
  /** Throws when the token was not issued by the (stand-in) identity service for one of `audiences`. */
  verifyToken: (token: string, audiences: string[]) => Promise<JWTPayload>;
  /** Added before every answer to `POST …/me/notifications` (the benchmark sets it). */
  latencyMs?: number;
}

export interface VisualProperties {
  title: string;
  body?: string | null;
}

export interface GraphNotification {
  id: string;
  targetHostName: string;
  appNotificationId: string;
  groupName: string | null;
  expirationDateTime: string;
  displayTimeToLive: number | null;
  priority: 'None' | 'Low' | 'High' | null;
  payload: { rawContent?: string | null; visualContent?: VisualProperties | null };
  targetPolicy: { platformTypes: string[] } | null;
  fallbackPolicy: {
    endpointFallback: {
      platformTypes: string[];
      fallbackDelayInSeconds?: number | null;
      visualContent?: VisualProperties | null;
    };
  } | null;
}

/** One notification as Graph keeps it: one per (user, targetHostName, appNotificationId). */
export interface ReceivedNotification {
  id: string;
  userOid: string;
  tenantId: string | undefined;
  upn: string | undefined;
  targetHostName: string;
  appNotificationId: string;
  /** First accepted POST. */
  receivedAt: string;
  /** Last accepted POST (a repost replaces the content). */
  updatedAt: string;
  /** Accepted POSTs that landed on this notification: more than 1 means a retry or redelivery. */
  postCount: number;
  /** The last accepted request body, as received. */
  body: Record<string, unknown>;
  /** What Graph answered with (minus `@odata.context`). */
  notification: GraphNotification;
  /** Request headers worth asserting on. The Authorization header is never kept. */
  headers: { contentType?: string; clientRequestId?: string; userAgent?: string; unsId?: string };
}

/** Every request to the notifications endpoint, accepted or not. */
export interface GraphAttempt {
  at: string;
  method: string;
  path: string;
  status: number;
  /** Graph's `error.code` for a failure. */
  code?: string;
  /** Known once the token verified. */
  userOid?: string;
  appNotificationId?: string;
  requestId: string;
  /** The answer came from the fault queue. */
  fault: boolean;
}

export interface GraphStandIn {
  /** Origin, e.g. `https://127.0.0.1:7083`. */
  url: string;
  /** What GRAPH_BASE_URL points at: `${url}/beta`. */
  baseUrl: string;
  port: number;
  /** The next N authenticated POSTs to /me/notifications answer with these instead. */
  faults: FaultQueue;
  /** Latency added to each POST answer; may be changed while running. */
  latencyMs: number;
  received(userOid?: string): ReceivedNotification[];
  /** Copies of the log of every POST, rejected ones included. */
  readonly attempts: GraphAttempt[];
  reset(): void;
  close(): Promise<void>;
}

/** A Graph error answer: `{"error":{"code","message","innerError":{…}}}`. */
class GraphError extends Error {
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

function unauthorized(message: string): GraphError {
  return new GraphError(401, 'InvalidAuthenticationToken', message, { 'www-authenticate': WWW_AUTHENTICATE });
}

const UNREADABLE_JSON =
  'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.';

// ---------------------------------------------------------------------------------------------
// Reading the body the way an OData service does: the declared properties of each type and
// nothing else, primitive types checked, then the notification service's own rules.

type Shape =
  | { kind: 'string' }
  | { kind: 'int32' }
  | { kind: 'dateTimeOffset' }
  | { kind: 'enum'; type: string; members: readonly string[] }
  | { kind: 'collection'; of: Shape }
  | { kind: 'complex'; type: string; props: Readonly<Record<string, Shape>> };

const STRING: Shape = { kind: 'string' };
const VISUAL: Shape = {
  kind: 'complex',
  type: 'microsoft.graph.visualProperties',
  props: { title: STRING, body: STRING },
};
const NOTIFICATION: Shape = {
  kind: 'complex',
  type: 'microsoft.graph.notification',
  props: {
    // Inherited from entity: OData accepts it; the service assigns its own.
    id: STRING,
    targetHostName: STRING,
    appNotificationId: STRING,
    groupName: STRING,
    targetPolicy: {
      kind: 'complex',
      type: 'microsoft.graph.targetPolicyEndpoints',
      props: { platformTypes: { kind: 'collection', of: STRING } },
    },
    payload: {
      kind: 'complex',
      type: 'microsoft.graph.payloadTypes',
      props: { rawContent: STRING, visualContent: VISUAL },
    },
    displayTimeToLive: { kind: 'int32' },
    expirationDateTime: { kind: 'dateTimeOffset' },
    priority: { kind: 'enum', type: 'microsoft.graph.priority', members: ['None', 'High', 'Low'] },
    fallbackPolicy: {
      kind: 'complex',
      type: 'microsoft.graph.fallbackPolicy',
      props: {
        endpointFallback: {
          kind: 'complex',
          type: 'microsoft.graph.fallbackPolicyProperties',
          props: {
            platformTypes: { kind: 'collection', of: STRING },
            fallbackDelayInSeconds: { kind: 'int32' },
            visualContent: VISUAL,
          },
        },
      },
    },
  },
};

const PLATFORM_TYPES = ['windows', 'ios', 'android', 'webPush'] as const;

function odataError(message: string): GraphError {
  return new GraphError(400, 'RequestBodyRead', message);
}

function badRequest(message: string): GraphError {
  return new GraphError(400, 'BadRequest', message);
}

function nodeKind(value: unknown): string {
  if (Array.isArray(value)) return 'StartArray';
  if (value !== null && typeof value === 'object') return 'StartObject';
  return 'PrimitiveValue';
}

function edmName(shape: Shape): string {
  switch (shape.kind) {
    case 'string':
      return 'Edm.String';
    case 'int32':
      return 'Edm.Int32';
    case 'dateTimeOffset':
      return 'Edm.DateTimeOffset';
    case 'enum':
    case 'complex':
      return shape.type;
    case 'collection':
      return `Collection(${edmName(shape.of)})`;
  }
}

const DATE_TIME_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/i;

/** Returns the value with its JSON shape checked (enums canonicalised); null stays null. */
function readValue(value: unknown, shape: Shape, name: string): unknown {
  if (value === null) return null;
  const expected =
    shape.kind === 'complex' ? 'StartObject' : shape.kind === 'collection' ? 'StartArray' : 'PrimitiveValue';
  const found = nodeKind(value);
  if (found !== expected) {
    throw odataError(
      `An unexpected '${found}' node was found for property named '${name}' when reading from the JSON reader. ` +
        `A '${expected}' node was expected.`,
    );
  }
  const cannotConvert = (): GraphError =>
    odataError(
      `Cannot convert the literal '${typeof value === 'string' ? value : JSON.stringify(value)}' to the expected type '${edmName(shape)}'.`,
    );
  switch (shape.kind) {
    case 'string':
      if (typeof value !== 'string') throw cannotConvert();
      return value;
    case 'int32': {
      // Graph's own example posts `"displayTimeToLive": "60"` and is answered with a number.
      const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < -2147483648 || n > 2147483647)
        throw cannotConvert();
      return n;
    }
    case 'dateTimeOffset':
      if (typeof value !== 'string' || !DATE_TIME_OFFSET.test(value) || Number.isNaN(Date.parse(value))) {
        throw cannotConvert();
      }
      return value;
    case 'enum': {
      // Enum members compared case-insensitively and answered in their declared casing.
      const member =
        typeof value === 'string'
          ? shape.members.find((m) => m.toLowerCase() === value.toLowerCase())
          : undefined;
      if (!member) throw cannotConvert();
      return member;
    }
    case 'collection':
      return (value as unknown[]).map((item) => readValue(item, shape.of, name));
    case 'complex':
      return readComplex(value as Record<string, unknown>, shape);
  }
}

function readComplex(
  obj: Record<string, unknown>,
  shape: Extract<Shape, { kind: 'complex' }>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    if (key === '@odata.type') {
      const name = typeof value === 'string' ? value.replace(/^#/, '') : String(value);
      if (name.toLowerCase() !== shape.type.toLowerCase()) {
        throw odataError(
          `A type named '${name}' could not be resolved by the model. When a model is available, each type name must resolve to a valid type.`,
        );
      }
      continue;
    }
    const propShape = Object.prototype.hasOwnProperty.call(shape.props, key) ? shape.props[key] : undefined;
    if (!propShape) {
      throw odataError(
        `The property '${key}' does not exist on type '${shape.type}'. ` +
          'Make sure to only use property names that are defined by the type or mark the type as open type.',
      );
    }
    out[key] = readValue(value, propShape, key);
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

/** Graph answers DateTimeOffsets in UTC with trailing zero fractions dropped ("…:36.25Z"). */
function graphDateTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.?0+Z$/, 'Z');
}

function readVisual(value: unknown, where: string): VisualProperties | null {
  if (!isRecord(value)) return null;
  if (!nonEmpty(value.title)) {
    throw badRequest(`${where}.Title is required for visual notification payloads.`);
  }
  const visual: VisualProperties = { title: value.title };
  if ('body' in value) visual.body = (value.body as string | null) ?? null;
  return visual;
}

function canonicalPlatforms(values: unknown, where: string): string[] {
  const list = Array.isArray(values) ? values : [];
  return list.map((v) => {
    const found = PLATFORM_TYPES.find((p) => typeof v === 'string' && p.toLowerCase() === v.toLowerCase());
    if (!found) {
      throw badRequest(
        `Invalid value '${String(v)}' in ${where}. Valid values are ${PLATFORM_TYPES.join(', ')}.`,
      );
    }
    return found;
  });
}

/** The notification service's own rules, after the OData read. Returns what Graph echoes back. */
export function validateNotification(body: unknown, now: number, id: string): GraphNotification {
  if (Array.isArray(body)) throw badRequest('Body is an array (multiple notifications is not supported).');
  if (!isRecord(body)) throw badRequest(UNREADABLE_JSON);
  const n = readValue(body, NOTIFICATION, 'notification') as Record<string, unknown>;

  if (!nonEmpty(n.targetHostName)) throw badRequest('The TargetHostName field is required.');
  if (!nonEmpty(n.appNotificationId)) throw badRequest('The AppNotificationId field is required.');

  const payloadIn = n.payload;
  if (!isRecord(payloadIn)) throw badRequest('The Payload field is required.');
  const payload: GraphNotification['payload'] = {};
  if (nonEmpty(payloadIn.rawContent)) payload.rawContent = payloadIn.rawContent;
  const visual = readVisual(payloadIn.visualContent, 'Payload.VisualContent');
  if (visual) payload.visualContent = visual;
  if (!payload.rawContent && !payload.visualContent) {
    throw badRequest('At least one of Payload.RawContent or Payload.VisualContent needs to be valid.');
  }

  let expiration = now + DEFAULT_EXPIRATION_DAYS * DAY_MS;
  if (typeof n.expirationDateTime === 'string') {
    expiration = Date.parse(n.expirationDateTime);
    if (expiration <= now) throw badRequest('ExpirationDateTime must be in the future.');
    if (expiration > now + MAX_EXPIRATION_DAYS * DAY_MS) {
      throw badRequest(`ExpirationDateTime cannot be more than ${MAX_EXPIRATION_DAYS} days in the future.`);
    }
  }

  const ttl = typeof n.displayTimeToLive === 'number' ? n.displayTimeToLive : null;
  if (ttl !== null && ttl < 0) throw badRequest('DisplayTimeToLive must not be negative.');

  let targetPolicy: GraphNotification['targetPolicy'] = null;
  if (isRecord(n.targetPolicy)) {
    targetPolicy = {
      platformTypes: canonicalPlatforms(n.targetPolicy.platformTypes, 'TargetPolicy.PlatformTypes'),
    };
  }

  let fallbackPolicy: GraphNotification['fallbackPolicy'] = null;
  if (isRecord(n.fallbackPolicy)) {
    const fb = n.fallbackPolicy.endpointFallback;
    if (!isRecord(fb) || !Array.isArray(fb.platformTypes) || fb.platformTypes.length === 0) {
      throw badRequest('FallbackPolicy.EndpointFallback.PlatformTypes is required.');
    }
    const platforms = canonicalPlatforms(fb.platformTypes, 'FallbackPolicy.EndpointFallback.PlatformTypes');
    if (platforms.some((p) => p !== 'ios')) {
      throw badRequest('FallbackPolicy.EndpointFallback.PlatformTypes only supports iOS.');
    }
    if (!targetPolicy?.platformTypes.includes('ios')) {
      throw badRequest('TargetPolicy.PlatformTypes must include iOS when FallbackPolicy is specified.');
    }
    const delaySeconds = typeof fb.fallbackDelayInSeconds === 'number' ? fb.fallbackDelayInSeconds : null;
    if (delaySeconds !== null && (delaySeconds < 60 || delaySeconds > 600)) {
      throw badRequest('FallbackPolicy.EndpointFallback.FallbackDelayInSeconds must be between 60 and 600.');
    }
    fallbackPolicy = {
      endpointFallback: {
        platformTypes: platforms,
        fallbackDelayInSeconds: delaySeconds,
        visualContent: readVisual(fb.visualContent, 'FallbackPolicy.EndpointFallback.VisualContent'),
      },
    };
  }

  return {
    id,
    targetHostName: n.targetHostName,
    appNotificationId: n.appNotificationId,
    groupName: typeof n.groupName === 'string' ? n.groupName : null,
    expirationDateTime: graphDateTime(expiration),
    displayTimeToLive: ttl,
    priority: (n.priority as GraphNotification['priority'] | undefined) ?? null,
    payload,
    targetPolicy,
    fallbackPolicy,
  };
}

// ---------------------------------------------------------------------------------------------

/** Graph's default answer for a status the fault queue asks for. */
function faultError(fault: Fault): GraphError {
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

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

interface Principal {
  oid: string;
  tid: string | undefined;
  upn: string | undefined;
}

async function authenticate(
  req: IncomingMessage,
  verifyToken: GraphStandInOptions['verifyToken'],
): Promise<JWTPayload> {
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

/** What a verified token may do here: a delegated call with the notifications scope. */
function authorize(claims: JWTPayload): Principal {
  const scp = typeof claims.scp === 'string' ? claims.scp : undefined;
  if (scp === undefined) {
    // An app-only token (roles, no scp): /me has nobody to resolve to.
    throw badRequest('/me request is only valid with delegated authentication flow.');
  }
  const oid = typeof claims.oid === 'string' ? claims.oid : undefined;
  if (!oid) throw unauthorized('Access token validation failure.');
  const scopes = scp.split(' ').map((s) => s.toLowerCase());
  if (!scopes.includes(NOTIFICATIONS_SCOPE.toLowerCase())) {
    throw new GraphError(
      403,
      'Forbidden',
      'Caller is not authorized to act on behalf of the user or send notification to the user.',
    );
  }
  const upn = [claims.upn, claims.unique_name, claims.preferred_username].find(
    (v): v is string => typeof v === 'string',
  );
  return {
    oid,
    tid: typeof claims.tid === 'string' ? claims.tid : undefined,
    upn,
  };
}

function parseJsonBody(req: IncomingMessage, raw: Buffer): unknown {
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

export async function startGraphStandIn(options: GraphStandInOptions): Promise<GraphStandIn> {
  const store = new Map<string, ReceivedNotification>();
  const attempts: GraphAttempt[] = [];
  const faults = new FaultQueue();
  let baseUrl = '';

  const state = { latencyMs: options.latencyMs ?? 0 };

  function errorBody(err: GraphError, requestId: string, clientRequestId: string): unknown {
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

  async function postNotification(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const requestId = randomUUID();
    const clientRequestId = header(req, 'client-request-id') ?? requestId;
    const ids = { 'request-id': requestId, 'client-request-id': clientRequestId };
    const attempt: GraphAttempt = {
      at: new Date().toISOString(),
      method: 'POST',
      path,
      status: 0,
      requestId,
      fault: false,
    };
    let status: number;
    let body: unknown;
    let headers: Record<string, string>;
    try {
      let raw: Buffer;
      try {
        raw = await readBody(req, 4 * 1024 * 1024);
      } catch {
        throw new GraphError(413, 'RequestEntityTooLarge', 'The request size exceeds the maximum limit.');
      }
      const claims = await authenticate(req, options.verifyToken);
      if (typeof claims.oid === 'string') attempt.userOid = claims.oid;
      const who = authorize(claims);
      // Throttling and outages hit authenticated callers; a bad token is told so first.
      const fault = faults.take();
      if (fault) {
        attempt.fault = true;
        throw faultError(fault);
      }
      if (header(req, 'if-modified-since') !== undefined || header(req, 'if-range') !== undefined) {
        throw badRequest('Unsupported headers are present in the request: If-Modified-Since, If-Range.');
      }
      const encoding = header(req, 'content-encoding');
      if (encoding && !['gzip', 'deflate', 'identity'].includes(encoding.trim().toLowerCase())) {
        throw new GraphError(
          415,
          'UnsupportedMediaType',
          `Content-Encoding '${encoding}' is not supported. Use Deflate or Gzip.`,
        );
      }
      const json = parseJsonBody(req, raw);
      if (isRecord(json) && typeof json.appNotificationId === 'string') {
        attempt.appNotificationId = json.appNotificationId;
      }
      const now = Date.now();
      const key = (host: string, appId: string): string => `${who.oid}\n${host.toLowerCase()}\n${appId}`;
      // Validation first with a fresh id; an existing notification keeps its own id.
      const candidate = validateNotification(json, now, randomUUID());
      const existing = store.get(key(candidate.targetHostName, candidate.appNotificationId));
      const notification = existing ? { ...candidate, id: existing.id } : candidate;
      const at = new Date(now).toISOString();
      const entry: ReceivedNotification = {
        id: notification.id,
        userOid: who.oid,
        tenantId: who.tid,
        upn: who.upn,
        targetHostName: notification.targetHostName,
        appNotificationId: notification.appNotificationId,
        receivedAt: existing?.receivedAt ?? at,
        updatedAt: at,
        postCount: (existing?.postCount ?? 0) + 1,
        body: json as Record<string, unknown>,
        notification,
        headers: {
          contentType: header(req, 'content-type'),
          clientRequestId: header(req, 'client-request-id'),
          userAgent: header(req, 'user-agent'),
          unsId: header(req, 'x-uns-id'),
        },
      };
      store.delete(key(candidate.targetHostName, candidate.appNotificationId));
      store.set(key(candidate.targetHostName, candidate.appNotificationId), entry);
      const userSegment = encodeURIComponent(who.upn ?? who.oid);
      status = 201;
      body = {
        '@odata.context': `https://graph.microsoft.com/beta/$metadata#users('${userSegment}')/notifications/$entity`,
        ...notification,
      };
      headers = {
        ...ids,
        location: `${baseUrl}/me/notifications/${notification.id}`,
        'content-type':
          'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8',
        'odata-version': '4.0',
      };
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      status = err.status;
      attempt.code = err.code;
      body = errorBody(err, requestId, clientRequestId);
      headers = { ...ids, ...err.headers };
    }
    attempt.status = status;
    attempts.push(attempt);
    await delay(state.latencyMs);
    sendJson(res, status, body, headers);
  }

  function received(userOid?: string): ReceivedNotification[] {
    return [...store.values()]
      .filter((n) => !userOid || n.userOid === userOid)
      .map((n) => structuredClone(n));
  }

  const server = await startHttps(options.tls, options.port ?? 0, async (req, res) => {
    const url = new URL(req.url ?? '/', 'https://graph.local');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (/^\/beta\/me\/notifications\/?$/i.test(path)) {
      if (method === 'POST') return postNotification(req, res, path);
      const requestId = randomUUID();
      const ids = {
        'request-id': requestId,
        'client-request-id': header(req, 'client-request-id') ?? requestId,
      };
      const err = new GraphError(405, 'MethodNotAllowed', 'The HTTP method used is not supported.');
      attempts.push({
        at: new Date().toISOString(),
        method,
        path,
        status: 405,
        code: err.code,
        requestId,
        fault: false,
      });
      return sendJson(res, 405, errorBody(err, requestId, ids['client-request-id']), {
        ...ids,
        allow: 'POST',
      });
    }
    if (method === 'GET' && path === '/') {
      const html = renderNotificationsPage(received(), { baseUrl, attempts: attempts.length });
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': Buffer.byteLength(html),
        'content-security-policy': PAGE_CSP,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(html);
      return;
    }
    if (method === 'GET' && path === '/_standin/notifications') {
      return sendJson(
        res,
        200,
        { value: received(url.searchParams.get('user') ?? undefined) },
        { 'cache-control': 'no-store' },
      );
    }
    if (method === 'GET' && path === '/_standin/attempts') {
      return sendJson(res, 200, { value: attempts.map((a) => ({ ...a })) }, { 'cache-control': 'no-store' });
    }
    const requestId = randomUUID();
    // Graph's OData router names the first path segment it cannot resolve.
    const segment = /^\/(?:beta|v1\.0)\/(?:me\/)?([^/]+)/i.exec(path)?.[1];
    const err = segment
      ? badRequest(`Resource not found for the segment '${decodeURIComponent(segment)}'.`)
      : new GraphError(404, 'NotFound', 'The requested resource does not exist.');
    return sendJson(res, err.status, errorBody(err, requestId, requestId), { 'request-id': requestId });
  });
  baseUrl = `${server.url}/beta`;

  return {
    url: server.url,
    baseUrl,
    port: server.port,
    faults,
    get latencyMs() {
      return state.latencyMs;
    },
    set latencyMs(ms: number) {
      state.latencyMs = ms;
    },
    received,
    get attempts() {
      return attempts.map((a) => ({ ...a }));
    },
    reset() {
      store.clear();
      attempts.length = 0;
      faults.clear();
    },
    close: () => server.close(),
  };
}
