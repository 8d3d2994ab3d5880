import type { Caller } from '../auth/caller';
import { OptOuts, type Generation } from '../auth/opt-outs';
import { AppError, toAppError } from '../errors';
import { fingerprint, userKey, type UserRef } from '../ids';
import type { SentNotification } from '../graph/client';
import type { DeferredMessage } from '../queue/message';
import { noTelemetry, type Telemetry } from '../telemetry';
import {
  newAppNotificationId,
  parseNotificationRequest,
  toGraphNotification,
  type GraphNotification,
  type NotificationRequest,
} from './request';

export type { UserRef } from '../ids';

/** Port: the OBO exchange for a verified caller (the token service). */
export interface TokenExchange {
  onBehalfOf(caller: Caller): Promise<{ accessToken: string; refreshToken: string | undefined }>;
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
  enqueue(message: DeferredMessage, delaySec: number): Promise<void>;
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
      telemetry?: Telemetry;
      /** The instance's opt-outs, shared with the deferred path (a private one by default). */
      optOuts?: OptOuts;
      now?: () => Date;
    },
  ) {
    this.optOuts = deps.optOuts ?? new OptOuts();
  }

  private get telemetry(): Telemetry {
    return this.deps.telemetry ?? noTelemetry;
  }

  /**
   * Validates, exchanges the caller's token, stores the refresh token when it changed, and posts
   * the notification — or, with a future `deliverAt`, puts it on the deferred queue. Records the
   * outcome (`NotificationSent`, `NotificationScheduled` or `NotificationFailed`) and its duration.
   */
  async sendNow(caller: Caller, body: unknown, log: Logger, requestId?: string): Promise<SendResult> {
    const started = performance.now();
    const ids = { tenantId: caller.tenantId, userId: caller.userId, trigger: 'http' as const };
    let appNotificationId: string | undefined;
    try {
      const result = await this.send(caller, body, log, requestId, (id) => (appNotificationId = id));
      const sent = result.status === 'sent';
      this.telemetry.trackEvent(sent ? 'NotificationSent' : 'NotificationScheduled', {
        ...ids,
        appNotificationId: result.appNotificationId,
        outcome: result.status,
        ...(!sent && requestId ? { correlationId: requestId } : {}),
      });
      this.telemetry.trackMetric('NotificationSendDuration', performance.now() - started, {
        outcome: result.status,
        trigger: 'http',
      });
      return result;
    } catch (err) {
      const code = toAppError(err).code;
      this.telemetry.trackEvent('NotificationFailed', {
        ...ids,
        ...(appNotificationId ? { appNotificationId } : {}),
        outcome: code,
        reason: code,
      });
      this.telemetry.trackMetric('NotificationSendDuration', performance.now() - started, {
        outcome: code,
        trigger: 'http',
      });
      throw err;
    }
  }

  private async send(
    caller: Caller,
    body: unknown,
    log: Logger,
    requestId: string | undefined,
    named: (appNotificationId: string) => void,
  ): Promise<SendResult> {
    const generation = this.optOuts.since(caller);
    const now = this.deps.now?.() ?? new Date();
    const request = parseNotificationRequest(body, now);
    const notification = toGraphNotification(request, {
      targetHostName: this.deps.targetHostName,
      appNotificationId: newAppNotificationId,
    });
    named(notification.appNotificationId);
    const { accessToken, refreshToken } = await this.deps.tokens.onBehalfOf(caller);
    if (request.deliverAt !== undefined && Date.parse(request.deliverAt) > now.getTime()) {
      return this.schedule(
        caller,
        request,
        notification.appNotificationId,
        refreshToken,
        now,
        requestId,
        generation,
      );
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
      const sent = await this.deps.graph.send(accessToken, notification, requestId);
      return {
        status: 'sent',
        id: sent.id,
        appNotificationId: notification.appNotificationId,
        expirationDateTime: sent.expirationDateTime,
      };
    } catch (err) {
      // The caller's retry must get a fresh token, not the cached one Graph refused.
      if (err instanceof AppError && err.staleCredential) this.deps.tokens.forget(caller);
      throw err;
    } finally {
      await storing;
    }
  }

  private async schedule(
    caller: Caller,
    request: NotificationRequest,
    appNotificationId: string,
    refreshToken: string | undefined,
    now: Date,
    requestId: string | undefined,
    generation: Generation,
  ): Promise<SendResult> {
    // The deferred send redeems the stored token: here the write must have happened.
    if (!refreshToken) {
      throw new AppError('upstream_rejected', {
        detail: 'The identity service returned no refresh token (is offline_access granted?).',
      });
    }
    await this.storeIfChanged(caller, refreshToken, generation);
    const deliverAt = request.deliverAt!;
    await this.deps.queue.enqueue(
      {
        userId: caller.userId,
        tenantId: caller.tenantId,
        notification: { ...request, appNotificationId },
        ...(requestId ? { correlationId: requestId } : {}),
      },
      (Date.parse(deliverAt) - now.getTime()) / 1000,
    );
    return { status: 'scheduled', appNotificationId, deliverAt };
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
