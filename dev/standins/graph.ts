import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWTPayload } from 'jose';
import type { LocalTls } from '../tls';
import { FaultQueue, Holds, delay, readBody, sendJson, startHttps } from './https';
import {
  GRAPH_AUDIENCES,
  GraphError,
  UNREADABLE_JSON,
  authenticate,
  badRequest,
  faultError,
  graphErrorBody,
  header,
  parseJsonBody,
  unauthorized,
  type VerifyToken,
} from './graph-http';
import { STRING, readValue, type Shape } from './odata';
import type { DevUser } from './identities';
import { DEFAULT_ACTIVITY_TYPES, type ActivityTypeDeclaration } from './teams-body';
import type { TeamsUserSpec } from './teams-directory';
import {
  DEFAULT_TEAMS_APP_CLIENT_IDS,
  TEAMS_RATE_PER_SECOND,
  createTeamsEndpoint,
  type TeamsActivity,
  type TeamsAttempt,
  type TeamsHoldInfo,
} from './teams';
import { PAGE_CSP, renderNotificationsPage } from './graph-page';

// Stand-in for Microsoft Graph's user notifications API (beta, deprecated upstream):
// `POST /beta/me/notifications` with a delegated token carrying Notifications.ReadWrite.CreatedByApp;
// and for the Teams activity feed (`POST /v1.0/users/{id}/teamwork/sendActivityNotification`,
// in teams.ts). Both show on the page at `/`.
// Sources: learn.microsoft.com/graph/api/notifications-post (beta) and resources/projectrome-notification,
// payloadtypes, visualproperties, targetpolicyendpoints, fallbackpolicy(properties); errors from
// learn.microsoft.com/graph/errors. Where those are silent, behaviour follows what Graph does elsewhere.

export const NOTIFICATIONS_SCOPE = 'Notifications.ReadWrite.CreatedByApp';
/** "Max value is 30 days" (projectrome-notification, expirationDateTime). */
export const MAX_EXPIRATION_DAYS = 30;
/** Not in Graph's docs; the product contract states Graph's default is 7 days, so the stand-in uses it. */
export const DEFAULT_EXPIRATION_DAYS = 7;
/** Entra names Graph either way in `aud` (v1 tokens: the resource URI, with or without the slash). */
export { GRAPH_AUDIENCES };
export type { TeamsActivity, TeamsActor, TeamsAttempt, TeamsHoldInfo } from './teams';
export type { ActivityTypeDeclaration } from './teams-body';
export type { TeamsUserSpec } from './teams-directory';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface GraphStandInOptions {
  tls: LocalTls;
  /** 0 picks a free port. */
  port?: number;
  /** Throws when the token was not issued by the (stand-in) identity service for one of `audiences`. */
  verifyToken: VerifyToken;
  /** Added before every answer to `POST …/me/notifications` and to the Teams endpoint (the benchmark sets it). */
  latencyMs?: number;
  /** Teams: requests per second per app per tenant before 429; Graph documents 5. */
  teamsRatePerSecond?: number;
  /** Teams: the activity types the installed Teams app declares; default `approvalRequired`. */
  teamsActivityTypes?: readonly ActivityTypeDeclaration[];
  /** Teams: the app's name, shown as the actor of app-only notifications; default `graph-notify`. */
  teamsAppName?: string;
  /** Teams: Entra app ids whose Teams app users have installed; default this API's (API_APP). */
  teamsAppClientIds?: readonly string[];
  /** Teams: users added to the directory besides the dev users (made-up ones, for load tests). */
  teamsUsers?: ReadonlyArray<string | TeamsUserSpec>;
  /** Teams: the clock of the rate window, in ms since the epoch; default `Date.now`. */
  clock?: () => number;
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
  /** Teams: the next N authorized requests answer with these instead (429 gets `Retry-After: 1` by default). */
  teamsFaults: FaultQueue;
  /** Teams: answers a test holds back; the request is fully processed (activity delivered) first. */
  teamsHolds: Holds<TeamsHoldInfo>;
  /** Teams: delivered activity feed items, oldest first; of one recipient (object id or UPN) if given. */
  activities(recipient?: string): TeamsActivity[];
  /** Teams: copies of the log of every request to the endpoint, rejected ones included. */
  readonly teamsAttempts: TeamsAttempt[];
  /** Teams: requests per second per app per tenant before 429; may be changed while running. */
  teamsRatePerSecond: number;
  /**
   * Teams: adds a user to the directory (by default in DEV_TENANT_ID, with the Teams app
   * installed) and returns it; the same name gives the same oid as `devUser(name)`.
   */
  addTeamsUser(nameOrOid: string, options?: { installed?: boolean; tenantId?: string }): DevUser;
  /** Teams: installs or removes the Teams app for a user of the directory (name, oid or UPN). */
  setTeamsAppInstalled(user: string, installed: boolean, tenantId?: string): void;
  /**
   * Clears both endpoints' records, faults, holds and the Teams rate windows; Teams install states
   * go back to their initial values (users added with addTeamsUser stay).
   */
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Reading the body as OData does (odata.ts), then the notification service's own rules.

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

interface Principal {
  oid: string;
  tid: string | undefined;
  upn: string | undefined;
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

export async function startGraphStandIn(options: GraphStandInOptions): Promise<GraphStandIn> {
  const store = new Map<string, ReceivedNotification>();
  const attempts: GraphAttempt[] = [];
  const faults = new FaultQueue();
  let baseUrl = '';

  const state = { latencyMs: options.latencyMs ?? 0 };
  let origin = '';
  const teams = createTeamsEndpoint({
    verifyToken: options.verifyToken,
    activityTypes: options.teamsActivityTypes ?? DEFAULT_ACTIVITY_TYPES,
    ratePerSecond: options.teamsRatePerSecond ?? TEAMS_RATE_PER_SECOND,
    appName: options.teamsAppName ?? 'graph-notify',
    appClientIds: options.teamsAppClientIds ?? DEFAULT_TEAMS_APP_CLIENT_IDS,
    users: options.teamsUsers ?? [],
    clock: options.clock ?? Date.now,
    latencyMs: () => state.latencyMs,
    // A local app builds `entityUrl` topics from its Graph base URL: this stand-in's origin.
    graphOrigins: () => [origin],
  });

  const errorBody = graphErrorBody;

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

    if (teams.matches(path)) return teams.handle(req, res, path);
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
      const html = renderNotificationsPage(received(), {
        baseUrl,
        attempts: attempts.length,
        activities: teams.activities(),
        teamsAttempts: teams.attempts().length,
      });
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
    if (method === 'GET' && path === '/_standin/activities') {
      return sendJson(
        res,
        200,
        { value: teams.activities(url.searchParams.get('user') ?? undefined) },
        { 'cache-control': 'no-store' },
      );
    }
    if (method === 'GET' && path === '/_standin/teams-attempts') {
      return sendJson(res, 200, { value: teams.attempts() }, { 'cache-control': 'no-store' });
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
  origin = server.url;

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
    teamsFaults: teams.faults,
    teamsHolds: teams.holds,
    activities: (recipient) => teams.activities(recipient),
    get teamsAttempts() {
      return teams.attempts();
    },
    get teamsRatePerSecond() {
      return teams.ratePerSecond;
    },
    set teamsRatePerSecond(n: number) {
      teams.ratePerSecond = n;
    },
    addTeamsUser: (nameOrOid, opts) => teams.addUser(nameOrOid, opts),
    setTeamsAppInstalled: (user, installed, tenantId) => teams.setInstalled(user, installed, tenantId),
    reset() {
      store.clear();
      attempts.length = 0;
      faults.clear();
      teams.reset();
    },
    close: () => server.close(),
  };
}
