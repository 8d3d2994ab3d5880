import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWTPayload } from 'jose';
import { FaultQueue, Holds, delay, readBody, sendJson } from './https';
import {
  GraphError,
  authenticate,
  faultError,
  graphErrorBody,
  header,
  parseJsonBody,
  type VerifyToken,
} from './graph-http';
import { API_APP, type DevUser } from './identities';
import {
  renderActivityText,
  validateActivityNotification,
  type ActivityNotification,
  type ActivityTypeDeclaration,
  type TeamworkActivityTopic,
} from './teams-body';
import { TeamsDirectory, type TeamsUserSpec } from './teams-directory';

// Stand-in for Microsoft Graph's `userTeamwork: sendActivityNotification`: a Teams activity feed
// notification to one user, 204 on success. Sources: learn.microsoft.com/graph/api/
// userteamwork-sendactivitynotification, /graph/teams-send-activityfeednotifications (FAQ included),
// /graph/throttling-limits (Teams: 5 requests per second per app per tenant on this endpoint), and
// the error texts users have reported. Where those are silent, what this does is said where it does it.

export const TEAMS_SCOPE = 'TeamsActivity.Send';
/** Application permissions that allow it: the tenant-wide one or the resource-specific one. */
export const TEAMS_ROLES = ['TeamsActivity.Send', 'TeamsActivity.Send.User'];
/** Graph's documented limit on this endpoint, per app per tenant. */
export const TEAMS_RATE_PER_SECOND = 5;

/** Who Teams shows as having done it: the signed-in user (delegated) or the Teams app (app-only). */
export type TeamsActor =
  | { kind: 'user'; oid: string; upn: string | undefined; name: string | undefined }
  | { kind: 'app'; appId: string; name: string };

/** One item of a user's activity feed. */
export interface TeamsActivity {
  id: string;
  recipientOid: string;
  recipientUpn: string;
  tenantId: string;
  actor: TeamsActor;
  /** The calling Entra app (`azp`/`appid`): its Teams app is the one that notified. */
  appId: string;
  activityType: string;
  /** What Teams shows after the actor: `systemDefaultText`, or the declared template filled in. */
  text: string;
  /** `previewText.content` as sent (Teams shows its first 150 characters). */
  previewText: string | undefined;
  topic: TeamworkActivityTopic;
  chainId: number | undefined;
  teamsAppId: string | undefined;
  /** When this item (or the one it replaced in its chain) first arrived. */
  receivedAt: string;
  /** The last accepted POST for this item: a later one with the same chainId replaces the content. */
  updatedAt: string;
  /** Accepted POSTs that landed on this item (a chain's updates, or a retry reusing its chainId). */
  postCount: number;
  /** The last accepted request body, as received. */
  body: Record<string, unknown>;
}

/** Every request to the Teams endpoint, accepted or not. */
export interface TeamsAttempt {
  at: string;
  path: string;
  status: number;
  /** Graph's `error.code` for a failure. */
  code?: string;
  /** The `{id | userPrincipalName}` path segment, as given. */
  recipient: string;
  /** Known once the recipient resolved. */
  recipientOid?: string;
  /** The token's tenant, once it verified. */
  tenantId?: string;
  /** The calling Entra app, once the token verified. */
  appId?: string;
  /** Known once the token verified. */
  actor?: TeamsActor;
  /** Whether the token was delegated (a user's) or app-only; known once it verified. */
  delegated?: boolean;
  activityType?: string;
  chainId?: number;
  /** 204 given, nothing delivered: a user notifying themselves with a delegated token. */
  dropped?: 'self';
  requestId: string;
  /** The answer came from `teamsFaults`. */
  fault: boolean;
}

/** What a test can hold a Teams answer on (see `Holds`). */
export interface TeamsHoldInfo {
  recipient: string;
  recipientOid?: string;
  status: number;
}

export interface TeamsEndpointOptions {
  verifyToken: VerifyToken;
  /** Activity types the Teams app's manifest declares, with their template texts. */
  activityTypes: readonly ActivityTypeDeclaration[];
  /** Requests per second per app per tenant before 429. */
  ratePerSecond: number;
  /** The Teams app's name: the actor Teams shows for app-only notifications. */
  appName: string;
  /** Entra app ids whose Teams app (`webApplicationInfo.id`) is the one users have installed. */
  appClientIds: readonly string[];
  users: ReadonlyArray<string | TeamsUserSpec>;
  /** Milliseconds since the epoch, for the rate window (tests inject their own). */
  clock: () => number;
  latencyMs: () => number;
  /** Origins accepted as Graph's own in `entityUrl` topics (the stand-in's). */
  graphOrigins: () => string[];
}

export interface TeamsEndpoint {
  /** `POST /{v1.0|beta}/users/{id | upn}/teamwork/[microsoft.graph.]sendActivityNotification`. */
  matches(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
  faults: FaultQueue;
  holds: Holds<TeamsHoldInfo>;
  activities(user?: string): TeamsActivity[];
  attempts(): TeamsAttempt[];
  addUser(nameOrOid: string, options?: { installed?: boolean; tenantId?: string }): DevUser;
  setInstalled(user: string, installed: boolean, tenantId?: string): void;
  ratePerSecond: number;
  reset(): void;
}

const PATH =
  /^\/(?:v1\.0|beta)\/users\/([^/]+)\/teamwork\/(?:microsoft\.graph\.)?sendActivityNotification\/?$/i;

function forbidden(message: string): GraphError {
  return new GraphError(403, 'Forbidden', message);
}

function claim(claims: JWTPayload, name: string): string | undefined {
  const value = claims[name];
  return typeof value === 'string' ? value : undefined;
}

interface Caller {
  delegated: boolean;
  appId: string;
  tenantId: string;
  actor: TeamsActor;
}

/** Whose call it is: a token with `scp` is a user's (delegated), one without is the app's own. */
function identify(claims: JWTPayload, appName: string): Caller {
  const appId = claim(claims, 'azp') ?? claim(claims, 'appid') ?? '';
  const tenantId = claim(claims, 'tid') ?? '';
  if (claim(claims, 'scp') === undefined) {
    return { delegated: false, appId, tenantId, actor: { kind: 'app', appId, name: appName } };
  }
  const oid = claim(claims, 'oid');
  if (!oid) throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token validation failure.');
  const upn = claim(claims, 'upn') ?? claim(claims, 'preferred_username') ?? claim(claims, 'unique_name');
  return { delegated: true, appId, tenantId, actor: { kind: 'user', oid, upn, name: claim(claims, 'name') } };
}

/** A delegated token needs the scope, an app-only one a role. */
function authorize(claims: JWTPayload, caller: Caller): void {
  if (caller.delegated) {
    const scopes = (claim(claims, 'scp') ?? '').split(' ').filter(Boolean);
    if (!scopes.some((s) => s.toLowerCase() === TEAMS_SCOPE.toLowerCase())) {
      throw forbidden(
        `Missing scope permissions on the request. API requires one of '${TEAMS_SCOPE}'. ` +
          `Scopes on the request '${scopes.join(', ')}'`,
      );
    }
    return;
  }
  const roles = Array.isArray(claims.roles)
    ? claims.roles.filter((r): r is string => typeof r === 'string')
    : [];
  if (!roles.some((r) => TEAMS_ROLES.some((t) => t.toLowerCase() === r.toLowerCase()))) {
    throw forbidden(
      `Missing role permissions on the request. API requires one of '${TEAMS_ROLES.join(', ')}'. ` +
        `Roles on the request '${roles.join(', ')}'.`,
    );
  }
}

/** Requests admitted in the last second, per app and tenant; a refused (429) request is not counted. */
class SlidingWindow {
  private readonly windows = new Map<string, number[]>();

  /** Undefined when admitted, else the seconds until a slot frees. */
  admit(key: string, limit: number, now: number): number | undefined {
    const recent = (this.windows.get(key) ?? []).filter((t) => t > now - 1000);
    if (recent.length >= limit) {
      this.windows.set(key, recent);
      const waitMs = recent[0]! + 1000 - now;
      // Whole seconds, as Graph sends them; at least 1 so a client never retries at once.
      return Math.max(1, Math.ceil(waitMs / 1000));
    }
    recent.push(now);
    this.windows.set(key, recent);
    return undefined;
  }

  clear(): void {
    this.windows.clear();
  }
}

export function createTeamsEndpoint(options: TeamsEndpointOptions): TeamsEndpoint {
  const directory = new TeamsDirectory(options.users);
  const faults = new FaultQueue();
  const holds = new Holds<TeamsHoldInfo>();
  const window = new SlidingWindow();
  const attempts: TeamsAttempt[] = [];
  /** Feed items in arrival order; a chain's update moves its item to the end. */
  const feed = new Map<string, TeamsActivity>();
  const state = { ratePerSecond: options.ratePerSecond };

  function deliver(
    recipient: DevUser,
    caller: Caller,
    notification: ActivityNotification,
    body: Record<string, unknown>,
  ): void {
    const now = new Date().toISOString();
    const actorName =
      caller.actor.kind === 'app'
        ? caller.actor.name
        : (caller.actor.name ?? caller.actor.upn ?? caller.actor.oid);
    // Teams replaces an item by chainId: scoped here to the recipient and the notifying app.
    const chainKey =
      notification.chainId !== undefined
        ? `${recipient.oid}|${caller.appId}|chain:${notification.chainId}`
        : `${recipient.oid}|${randomUUID()}`;
    const earlier = feed.get(chainKey);
    feed.delete(chainKey);
    feed.set(chainKey, {
      id: earlier?.id ?? randomUUID(),
      recipientOid: recipient.oid,
      recipientUpn: recipient.upn,
      tenantId: recipient.tid,
      actor: caller.actor,
      appId: caller.appId,
      activityType: notification.activityType,
      text: renderActivityText(notification, options.activityTypes, actorName),
      previewText: notification.previewText?.content,
      topic: notification.topic,
      chainId: notification.chainId,
      teamsAppId: notification.teamsAppId,
      receivedAt: earlier?.receivedAt ?? now,
      updatedAt: now,
      postCount: (earlier?.postCount ?? 0) + 1,
      body,
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const requestId = randomUUID();
    const clientRequestId = header(req, 'client-request-id') ?? requestId;
    const ids = { 'request-id': requestId, 'client-request-id': clientRequestId };
    const segment = PATH.exec(path)?.[1] ?? '';
    let recipientId: string;
    try {
      recipientId = decodeURIComponent(segment);
    } catch {
      recipientId = segment;
    }
    const attempt: TeamsAttempt = {
      at: new Date().toISOString(),
      path,
      status: 0,
      recipient: recipientId,
      requestId,
      fault: false,
    };
    let status = 204;
    let errorBody: unknown;
    let headers: Record<string, string> = ids;
    try {
      if ((req.method ?? 'GET') !== 'POST') {
        throw new GraphError(405, 'MethodNotAllowed', 'The HTTP method used is not supported.', {
          allow: 'POST',
        });
      }
      let raw: Buffer;
      try {
        raw = await readBody(req, 4 * 1024 * 1024);
      } catch {
        throw new GraphError(413, 'RequestEntityTooLarge', 'The request size exceeds the maximum limit.');
      }
      const claims = await authenticate(req, options.verifyToken);
      const caller = identify(claims, options.appName);
      attempt.tenantId = caller.tenantId;
      attempt.appId = caller.appId;
      attempt.actor = caller.actor;
      attempt.delegated = caller.delegated;
      authorize(claims, caller);
      // Outages and throttling hit authorized callers; a bad token or a missing permission is told so first.
      const fault = faults.take();
      if (fault) {
        attempt.fault = true;
        throw faultError(fault);
      }
      const retryAfter = window.admit(
        `${caller.appId}|${caller.tenantId}`,
        state.ratePerSecond,
        options.clock(),
      );
      if (retryAfter !== undefined) {
        throw new GraphError(
          429,
          'TooManyRequests',
          'Too many requests. The application exceeded the limit for sendActivityNotification in this tenant.',
          { 'retry-after': String(retryAfter) },
        );
      }
      const json = parseJsonBody(req, raw);
      const notification = validateActivityNotification(json, {
        activityTypes: options.activityTypes,
        graphOrigins: options.graphOrigins(),
      });
      attempt.activityType = notification.activityType;
      if (notification.chainId !== undefined) attempt.chainId = notification.chainId;

      const entry = directory.find(recipientId, caller.tenantId);
      if (!entry) {
        throw new GraphError(
          404,
          'Request_ResourceNotFound',
          `Resource '${recipientId}' does not exist or one of its queried reference-property objects are not present.`,
        );
      }
      attempt.recipientOid = entry.user.oid;
      if (!entry.installed || !options.appClientIds.includes(caller.appId)) {
        const about = notification.topic.webUrl ?? notification.topic.value;
        throw forbidden(
          `Application with AAD App Id '${caller.appId}' is not authorized to generate custom text notifications ` +
            `about '${about}' to the recipient. Ensure that the expected Teams app is installed in the target ` +
            'scope (user, team, or chat).',
        );
      }
      if (caller.delegated && caller.actor.kind === 'user' && caller.actor.oid === entry.user.oid) {
        // Graph's docs: "a user can't send notifications to themselves" (use application permissions);
        // what Graph answers is not documented. The stand-in answers as if it went through and shows
        // nothing, the least helpful case, so only the product's own check can catch a self-send.
        attempt.dropped = 'self';
      } else {
        deliver(entry.user, caller, notification, json as Record<string, unknown>);
      }
    } catch (err) {
      if (!(err instanceof GraphError)) throw err;
      status = err.status;
      attempt.code = err.code;
      errorBody = graphErrorBody(err, requestId, clientRequestId);
      headers = { ...ids, ...err.headers };
    }
    attempt.status = status;
    attempts.push(attempt);
    await holds.pass({
      recipient: recipientId,
      status,
      ...(attempt.recipientOid ? { recipientOid: attempt.recipientOid } : {}),
    });
    await delay(options.latencyMs());
    if (status === 204) {
      res.writeHead(204, headers);
      res.end();
      return;
    }
    sendJson(res, status, errorBody, headers);
  }

  return {
    matches: (path) => PATH.test(path),
    handle,
    faults,
    holds,
    activities(user) {
      const wanted = user?.toLowerCase();
      return [...feed.values()]
        .filter(
          (a) =>
            !wanted || a.recipientOid.toLowerCase() === wanted || a.recipientUpn.toLowerCase() === wanted,
        )
        .map((a) => structuredClone(a));
    },
    attempts: () => attempts.map((a) => structuredClone(a)),
    addUser: (nameOrOid, opts = {}) => directory.add({ user: nameOrOid, ...opts }),
    setInstalled(user, installed, tenantId) {
      const entry = directory.lookup(user, tenantId);
      if (!entry)
        throw new Error(`No user '${user}' in the Teams stand-in's directory; add it with addTeamsUser.`);
      entry.installed = installed;
    },
    get ratePerSecond() {
      return state.ratePerSecond;
    },
    set ratePerSecond(n: number) {
      state.ratePerSecond = n;
    },
    reset() {
      feed.clear();
      attempts.length = 0;
      faults.clear();
      holds.clear();
      window.clear();
      directory.reset();
    },
  };
}

export const DEFAULT_TEAMS_APP_CLIENT_IDS: readonly string[] = [API_APP.clientId];
