import { randomUUID } from 'node:crypto';
import type { Caller } from '../auth/caller';
import { OptOuts, type Generation } from '../auth/opt-outs';
import type { Channel, ChannelName, Prepared, Sender } from '../channels/channel';
import { notificationsChannel } from '../channels/notifications';
import type { TenantPacer } from '../channels/pacing';
import { AppError, toAppError } from '../errors';
import { fingerprint, userKey, type UserRef } from '../ids';
import type { Begun, StoredAnswer } from '../ledger/idempotency';
import type { Settled } from '../ledger/ledger';
import { deterministicAppNotificationId } from './request';
import type { SentNotification } from '../graph/client';
import { toQueueMessage, type QueueMessage } from '../queue/message';
import { noTelemetry, type Telemetry, type TelemetryProperties } from '../telemetry';
import type { GraphNotification } from './request';

export type { UserRef } from '../ids';

/** Port: the OBO exchange for a verified caller (the token service). */
export interface TokenExchange {
  onBehalfOf(
    caller: Caller,
    scopes?: readonly string[],
  ): Promise<{ accessToken: string; refreshToken: string | undefined }>;
  /** A token for the app itself in a tenant (client credentials), for sends as the app. */
  forApp?(tenantId: string): Promise<string>;
  /** Drops whatever is held in memory for the user. */
  forget(user: UserRef): void;
}

/** Port: where refresh tokens live between a user's visits (Key Vault). */
export interface RefreshTokenSink {
  save(user: UserRef, refreshToken: string): Promise<void>;
  delete(user: UserRef): Promise<void>;
}

/** Port: Graph's notification endpoint. */
export interface NotificationSender {
  send(
    accessToken: string,
    notification: GraphNotification,
    clientRequestId?: string,
  ): Promise<SentNotification>;
}

/** Port: the deferred queue, for a send with a future `deliverAt`. */
export interface DeferredScheduler {
  enqueue(message: QueueMessage, delaySec: number): Promise<void>;
}

/** Port: the delivery ledger, as a send records its notification's state (one write per change). */
export interface SendRecords {
  scheduled(owner: UserRef, channel: ChannelName, id: string, deliverAt: string): Promise<void>;
  sentNow(owner: UserRef, channel: ChannelName, id: string, settled: Settled): Promise<void>;
}

/** Port: `Idempotency-Key` records: the first request claims a key, repeats get its answer. */
export interface IdempotencyPort {
  begin(owner: UserRef, key: string, fingerprint: string): Promise<Begun>;
  finish(owner: UserRef, key: string, etag: string, answer: StoredAnswer): Promise<void>;
  release(owner: UserRef, key: string, etag: string): Promise<void>;
}

/** An HTTP send's answer: its status and body, and whether it repeats an earlier request's. */
export interface Answer extends StoredAnswer {
  replayed: boolean;
}

export type SendResult =
  | { status: 'sent'; id: string; appNotificationId: string; expirationDateTime: string }
  | { status: 'scheduled'; appNotificationId: string; deliverAt: string };

export interface Logger {
  info(message: string, properties?: Record<string, unknown>): void;
  warn(message: string, properties?: Record<string, unknown>): void;
}

const STORED_MARKS = 10_000;
/**
 * The longest an HTTP send waits for this instance's per-tenant pacing slot before answering 503
 * with Retry-After: a client app can live with a second.
 */
export const PACING_MAX_WAIT_MS = 1000;

/**
 * Send-now and registration, for a verified caller. Keeps, per worker, which refresh token it last
 * stored for each user (as a hash, bounded): a token is written to the vault only when it changed.
 */
export class NotificationService {
  private readonly stored = new Map<string, string>();
  private readonly writing = new Map<
    string,
    { hash: string; generation: Generation; promise: Promise<boolean> }
  >();
  private readonly optOuts: OptOuts;

  constructor(
    private readonly deps: {
      tokens: TokenExchange;
      refreshTokens: RefreshTokenSink;
      graph: NotificationSender;
      queue: DeferredScheduler;
      /** Deferred sends' in-memory access tokens: opting out must end those too. */
      deferredTokens?: { forget(user: UserRef): void };
      targetHostName: string | undefined;
      /** The Graph notifications channel; built from `graph` and `targetHostName` when left out. */
      notifications?: Channel;
      /** Per-tenant pacing of paced channels (Teams). */
      pacer?: TenantPacer;
      /** The pacer's budget, for the 503's detail. */
      teamsRps?: number;
      telemetry?: Telemetry;
      /** The delivery ledger (none: nothing recorded, as in unit tests). */
      ledger?: SendRecords;
      /** `Idempotency-Key` records (none: the header is ignored). */
      idempotency?: IdempotencyPort;
      /** The instance's opt-outs, shared with the deferred path (a private one by default). */
      optOuts?: OptOuts;
      now?: () => Date;
    },
  ) {
    this.optOuts = deps.optOuts ?? new OptOuts();
    this.notifications =
      deps.notifications ??
      notificationsChannel({
        graph: deps.graph,
        scopes: [],
        targetHostName: deps.targetHostName,
      });
  }

  private readonly notifications: Channel;

  private get telemetry(): Telemetry {
    return this.deps.telemetry ?? noTelemetry;
  }

  /**
   * Validates, exchanges the caller's token, stores the refresh token when it changed, and posts
   * the notification — or, with a future `deliverAt`, puts it on the deferred queue. Records the
   * outcome (`NotificationSent`, `NotificationScheduled` or `NotificationFailed`) and its duration.
   */
  async sendNow(caller: Caller, body: unknown, log: Logger, requestId?: string): Promise<SendResult> {
    return (await this.send(this.notifications, caller, body, log, requestId)) as SendResult;
  }

  /**
   * The same for any channel (`POST /api/activities` is Teams): validated before any exchange,
   * sent as the caller or — where the channel says so — as the app, paced per tenant where the
   * channel is. Answers the channel's 201 or 202 body.
   */
  async send(
    channel: Channel,
    caller: Caller,
    body: unknown,
    log: Logger,
    requestId?: string,
    idFor: () => string = randomUUID,
  ): Promise<Record<string, unknown>> {
    const started = performance.now();
    const ids: TelemetryProperties = {
      tenantId: caller.tenantId,
      userId: caller.userId,
      trigger: 'http',
      channel: channel.name,
    };
    let named: TelemetryProperties = {};
    const dimensions = {
      trigger: 'http' as const,
      channel: channel.name,
    };
    try {
      const result = await this.sendOn(
        channel,
        caller,
        body,
        log,
        requestId,
        idFor,
        (p) => (named = channel.ids(p)),
      );
      const sent = result.status === 'sent';
      this.telemetry.trackEvent(sent ? 'NotificationSent' : 'NotificationScheduled', {
        ...ids,
        ...named,
        outcome: String(result.status),
        ...(!sent && requestId ? { correlationId: requestId } : {}),
      });
      this.telemetry.trackMetric('NotificationSendDuration', performance.now() - started, {
        outcome: String(result.status),
        ...dimensions,
      });
      return result;
    } catch (err) {
      const code = toAppError(err).code;
      this.telemetry.trackEvent('NotificationFailed', { ...ids, ...named, outcome: code, reason: code });
      this.telemetry.trackMetric('NotificationSendDuration', performance.now() - started, {
        outcome: code,
        ...dimensions,
      });
      throw err;
    }
  }

  private async sendOn<P>(
    channel: Channel<P>,
    caller: Caller,
    body: unknown,
    log: Logger,
    requestId: string | undefined,
    idFor: () => string,
    named: (prepared: Prepared<P>) => void,
  ): Promise<Record<string, unknown>> {
    const now = this.deps.now?.() ?? new Date();
    // A fresh id per request (or one derived from its Idempotency-Key); the queue path derives its
    // ids from the message instead.
    const prepared = channel.prepare(body, now, 'invalid_request', idFor);
    named(prepared);
    try {
      return await this.sendPrepared(channel, caller, prepared, log, requestId, now);
    } catch (err) {
      // Validated, so it has an id the caller can ask about: say how it ended.
      await this.record(log, () =>
        this.deps.ledger?.sentNow(caller, channel.name, prepared.id, {
          status: 'failed',
          code: toAppError(err).code,
        }),
      );
      throw err;
    }
  }

  private async sendPrepared<P>(
    channel: Channel<P>,
    caller: Caller,
    prepared: Prepared<P>,
    log: Logger,
    requestId: string | undefined,
    now: Date,
  ): Promise<Record<string, unknown>> {
    const generation = this.optOuts.since(caller);
    const as = channel.senderFor(prepared.payload, caller);
    // Even a send that goes out as the app exchanges the caller's token: that checks the caller's
    // consent, and the refresh token is kept for their later sends as for any other.
    const { accessToken, refreshToken } = await this.deps.tokens.onBehalfOf(caller, scopesOf(channel));
    if (prepared.deliverAt !== undefined && Date.parse(prepared.deliverAt) > now.getTime()) {
      await this.mustStore(caller, refreshToken, generation);
      const sender: Sender =
        as === 'app' ? { kind: 'app', tenantId: caller.tenantId } : { kind: 'user', user: caller };
      // Side by side: the message stays hidden for at least a second, far longer than the write.
      const [, queued] = await Promise.allSettled([
        this.record(log, () =>
          this.deps.ledger?.scheduled(caller, channel.name, prepared.id, prepared.deliverAt!),
        ),
        this.deps.queue.enqueue(
          toQueueMessage(channel, prepared, sender, requestId ? { correlationId: requestId } : {}),
          (Date.parse(prepared.deliverAt) - now.getTime()) / 1000,
        ),
      ]);
      if (queued.status === 'rejected') throw queued.reason;
      return channel.scheduledBody(prepared);
    }
    // The vault write runs beside the Graph call and does not fail the send: the notification
    // matters now, the stored token only later (the next request stores it if this write failed).
    // It is awaited before answering, because the platform may freeze the worker after that.
    const storing = this.storeIfChanged(caller, refreshToken, generation).catch((err: unknown) => {
      // Sent anyway; but until a later request stores it, this user's deferred sends fail
      // (not_registered): say so where an operator can find the users it happened to.
      const code = err instanceof AppError ? err.code : 'internal_error';
      log.warn(
        "Storing the refresh token failed: the notification is sent, but this user's deferred sends fail until a later request stores it.",
        { code, tenantId: caller.tenantId, userId: caller.userId },
      );
      this.telemetry.trackEvent('RefreshTokenStoreFailed', {
        tenantId: caller.tenantId,
        userId: caller.userId,
        reason: code,
        trigger: 'http',
      });
    });
    try {
      const token = as === 'app' ? await this.appToken(caller.tenantId) : accessToken;
      if (channel.paced) await this.pace(caller.tenantId, channel, prepared);
      const sent = await channel.send(token, prepared, requestId);
      await this.record(log, () =>
        this.deps.ledger?.sentNow(caller, channel.name, prepared.id, {
          status: 'sent',
          ...(typeof sent.id === 'string' ? { graphId: sent.id } : {}),
        }),
      );
      return channel.sentBody(prepared, sent);
    } catch (err) {
      // The caller's retry must get a fresh token, not the cached one Graph refused.
      if (err instanceof AppError && err.staleCredential) this.deps.tokens.forget(caller);
      if (err instanceof AppError && err.throttled && channel.paced)
        this.throttled(caller.tenantId, channel, prepared, 'graph', err);
      throw err;
    } finally {
      await storing;
    }
  }

  /**
   * A client app's request: `send`, made idempotent by its `Idempotency-Key` when it carries one.
   * The first request under a key claims it, a repeat with the same body gets the first answer
   * (`replayed`), another body `idempotency_key_reused`, a repeat while the first is still running
   * `request_in_progress`. A failed first request frees the key, so its retry really tries again.
   * The notification's id is derived from the key when the body leaves it out, so a retry after a
   * lost answer lands on the same notification.
   */
  async request(
    channel: Channel,
    caller: Caller,
    body: unknown,
    log: Logger,
    requestId: string | undefined,
    idempotencyKey: string | null,
  ): Promise<Answer> {
    const idempotency = this.deps.idempotency;
    if (idempotencyKey === null || !idempotency) {
      const result = await this.send(channel, caller, body, log, requestId);
      return { status: statusOf(result), body: result, replayed: false };
    }
    const key = checkedKey(idempotencyKey);
    const begun = await idempotency.begin(caller, key, requestFingerprint(channel.name, body));
    if (begun.kind === 'replay') {
      this.telemetry.trackEvent('IdempotentReplay', {
        tenantId: caller.tenantId,
        userId: caller.userId,
        channel: channel.name,
      });
      return { ...begun.answer, replayed: true };
    }
    let answer: StoredAnswer;
    try {
      const result = await this.send(channel, caller, body, log, requestId, () =>
        deterministicAppNotificationId(caller.tenantId, caller.userId, channel.name, 'idempotency-key', key),
      );
      answer = { status: statusOf(result), body: result };
    } catch (err) {
      await this.record(log, () => idempotency.release(caller, key, begun.etag));
      throw err;
    }
    // Not fatal: the notification is out. The key stays claimed until its lease runs out, then a
    // repeat would send again (under the same derived id).
    await this.record(log, () => idempotency.finish(caller, key, begun.etag, answer));
    return { ...answer, replayed: false };
  }

  /** A ledger write that must not fail what it records: logged and counted, never thrown. */
  private async record(log: Logger, write: () => Promise<void> | undefined): Promise<void> {
    try {
      await write();
    } catch (err) {
      const code = toAppError(err).code;
      log.warn('Writing the delivery ledger failed: the notification is unaffected.', { code });
      this.telemetry.trackEvent('LedgerWriteFailed', { reason: code, trigger: 'http' });
    }
  }

  /**
   * Waits for a pacing slot at most PACING_MAX_WAIT_MS (a client app can afford that much), else
   * answers 503 with the wait as Retry-After.
   */
  private async pace<P>(tenantId: string, channel: Channel<P>, prepared: Prepared<P>): Promise<void> {
    const pacer = this.deps.pacer;
    if (!pacer) return;
    const slot = await pacer.acquire(tenantId, PACING_MAX_WAIT_MS);
    if (slot.ok) {
      if (slot.waitedMs > 0) this.throttled(tenantId, channel, prepared, 'pacing', undefined, slot.waitedMs);
      return;
    }
    this.throttled(tenantId, channel, prepared, 'pacing', undefined, slot.waitMs);
    throw new AppError('upstream_unavailable', {
      detail: `This instance's Teams budget for the tenant (${this.deps.teamsRps ?? 5} per second) is spent; try again shortly.`,
      retryAfterSeconds: Math.max(1, Math.ceil(slot.waitMs / 1000)),
    });
  }

  private throttled<P>(
    tenantId: string,
    channel: Channel<P>,
    prepared: Prepared<P>,
    by: 'pacing' | 'graph',
    err?: AppError,
    delayMs?: number,
  ): void {
    this.telemetry.trackEvent('TeamsThrottled', {
      tenantId,
      ...channel.ids(prepared),
      trigger: 'http',
      reason: by,
      ...(delayMs !== undefined ? { delayMs: Math.round(delayMs) } : {}),
      ...(err?.retryAfterSeconds !== undefined ? { delayMs: err.retryAfterSeconds * 1000 } : {}),
    });
  }

  private appToken(tenantId: string): Promise<string> {
    if (!this.deps.tokens.forApp) {
      return Promise.reject(new AppError('internal_error', { detail: 'No app token source is wired.' }));
    }
    return this.deps.tokens.forApp(tenantId);
  }

  /** A deferred send redeems the stored token: before scheduling one, the write must have happened. */
  private async mustStore(
    caller: Caller,
    refreshToken: string | undefined,
    generation: Generation,
  ): Promise<void> {
    if (!refreshToken) {
      throw new AppError('upstream_rejected', {
        detail: 'The identity service returned no refresh token (is offline_access granted?).',
      });
    }
    await this.storeIfChanged(caller, refreshToken, generation);
  }

  /** Opt-in: exchanges the caller's token and stores the refresh token, always (no send). */
  async register(caller: Caller): Promise<void> {
    const generation = this.optOuts.since(caller);
    const { refreshToken } = await this.deps.tokens.onBehalfOf(caller);
    if (!refreshToken) {
      throw new AppError('upstream_rejected', {
        detail: 'The identity service returned no refresh token (is offline_access granted?).',
      });
    }
    // An opt-out that arrived while this exchanged wins: it came later, so it has the last word.
    const wrote = await this.optOuts.write(caller, generation, () =>
      this.deps.refreshTokens.save(caller, refreshToken),
    );
    if (!wrote) return;
    this.mark(caller, refreshToken);
    this.telemetry.trackEvent('RefreshTokenStored', {
      tenantId: caller.tenantId,
      userId: caller.userId,
      cause: 'registered',
    });
  }

  /**
   * Opt-out: deletes the stored refresh token and forgets the user's tokens in memory. Final on
   * this instance: what is already running for the user stores and caches nothing after it, and
   * writes already under way finish before the delete.
   */
  async unregister(user: UserRef): Promise<void> {
    const k = userKey(user);
    await this.optOuts.optOut(user);
    this.stored.delete(k);
    this.deps.tokens.forget(user);
    this.deps.deferredTokens?.forget(user);
    await this.deps.refreshTokens.delete(user);
    this.telemetry.trackEvent('RefreshTokenDeleted', {
      tenantId: user.tenantId,
      userId: user.userId,
      cause: 'opt-out',
    });
  }

  /** Stores the refresh token when it changed, unless the user opted out since `generation`. */
  private async storeIfChanged(
    user: UserRef,
    refreshToken: string | undefined,
    generation: Generation,
  ): Promise<void> {
    if (!refreshToken) return;
    const k = userKey(user);
    const h = fingerprint(refreshToken);
    if (this.stored.get(k) === h) return;
    // Concurrent requests with the same new token share one write.
    const inflight = this.writing.get(k);
    if (inflight?.hash === h && inflight.generation === generation) {
      await inflight.promise;
      return;
    }
    const promise = this.optOuts
      .write(user, generation, () => this.deps.refreshTokens.save(user, refreshToken))
      .then((wrote) => {
        if (!wrote) return false;
        this.mark(user, refreshToken);
        this.telemetry.trackEvent('RefreshTokenStored', {
          tenantId: user.tenantId,
          userId: user.userId,
          cause: 'changed',
        });
        return true;
      })
      .finally(() => {
        if (this.writing.get(k)?.promise === promise) this.writing.delete(k);
      });
    this.writing.set(k, { hash: h, generation, promise });
    await promise;
  }

  private mark(user: UserRef, refreshToken: string): void {
    const k = userKey(user);
    this.stored.delete(k);
    this.stored.set(k, fingerprint(refreshToken));
    // Map keeps insertion order: the first key is the least recently stored.
    if (this.stored.size > STORED_MARKS) this.stored.delete(this.stored.keys().next().value!);
  }
}

function statusOf(result: Record<string, unknown>): number {
  return result.status === 'sent' ? 201 : 202;
}

/** `Idempotency-Key`: 1-255 printable ASCII characters (the header is a string, quoted or not). */
function checkedKey(value: string): string {
  const key = /^"(.*)"$/.exec(value)?.[1] ?? value;
  if (!/^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/.test(key)) {
    throw new AppError('invalid_request', {
      detail: 'Idempotency-Key must be 1 to 255 printable characters.',
    });
  }
  return key;
}

/** What makes two requests "the same": the route and the body, its key order aside. */
function requestFingerprint(channel: ChannelName, body: unknown): string {
  return fingerprint(`${channel}\n${canonicalJson(body)}`);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A channel's scopes; none named means the token service's own (GRAPH_SCOPES). */
export function scopesOf(channel: Pick<Channel, 'scopes'>): readonly string[] | undefined {
  return channel.scopes.length > 0 ? channel.scopes : undefined;
}
