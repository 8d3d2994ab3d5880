import { AppError, isAppError, toAppError } from '../errors';
import type { Logger, NotificationSender, UserRef } from '../notifications/send';
import { deterministicAppNotificationId, toGraphNotification } from '../notifications/request';
import type { DeferredMessage } from '../queue/message';
import { fromQueueMessage } from '../queue/message';
import type { PoisonRecord } from '../queue/deferred-queue';
import { noTelemetry, type Telemetry, type TelemetryProperties } from '../telemetry';

/** Port: the deferred queue, to put a message back for later and to give one up. */
export interface DeferredQueuePort {
  enqueue(message: DeferredMessage, delaySec: number): Promise<void>;
  poison(record: PoisonRecord): Promise<void>;
}

/** Port: Graph access tokens for absent users. */
export interface AbsentUserTokenSource {
  accessTokenFor(user: UserRef): Promise<string>;
  forget(user: UserRef): void;
}

export interface MessageMeta {
  messageId: string;
  dequeueCount: number;
}

export type Outcome =
  | { kind: 'sent'; id: string; appNotificationId: string }
  | { kind: 'scheduled'; deliverAt: string; delaySec: number }
  | { kind: 'retry'; reason: string; delaySec: number; attempt: number }
  | { kind: 'dead-lettered'; reason: string };

/**
 * How many times a message is tried before it is given up into the poison queue: host.json's
 * `maxDequeueCount` (a test keeps the two equal).
 */
export const MAX_ATTEMPTS = 5;

/** Never-retryable codes: the message goes straight to the poison queue. */
// `interaction_required`: the stored grant needs the user (consent, MFA); only their next visit helps.
const FINAL: ReadonlySet<string> = new Set([
  'invalid_message',
  'not_registered',
  'invalid_grant',
  'interaction_required',
  'upstream_rejected',
]);

function backoffSec(attempt: number): number {
  return Math.min(600, 15 * 2 ** (attempt - 1));
}

/**
 * Delivers one deferred message: sends it, puts it back for later (a future `deliverAt`, or a
 * transient failure, honouring Retry-After — without waiting inside the invocation), or gives it
 * up into `<queue>-poison` with a reason. Resolves when the message's fate is recorded; throws only
 * when even that failed (then the host retries the message as it is).
 */
export class DeferredDelivery {
  constructor(
    private readonly deps: {
      tokens: AbsentUserTokenSource;
      graph: NotificationSender;
      queue: DeferredQueuePort;
      targetHostName: string | undefined;
      maxAttempts?: number;
      telemetry?: Telemetry;
      now?: () => Date;
    },
  ) {}

  private get telemetry(): Telemetry {
    return this.deps.telemetry ?? noTelemetry;
  }

  /**
   * Records the fate of each message (`NotificationSent`, `NotificationScheduled`,
   * `NotificationFailed` for a retry, `NotificationDeadLettered`) and how long handling it took.
   */
  async deliver(raw: unknown, meta: MessageMeta, log: Logger): Promise<Outcome> {
    const started = performance.now();
    let outcome = 'internal_error';
    try {
      const result = await this.handle(raw, meta, log);
      outcome = result.kind;
      return result;
    } finally {
      this.telemetry.trackMetric('NotificationSendDuration', performance.now() - started, {
        outcome,
        trigger: 'queue',
      });
    }
  }

  private async handle(raw: unknown, meta: MessageMeta, log: Logger): Promise<Outcome> {
    const now = this.deps.now?.() ?? new Date();
    let message: DeferredMessage;
    try {
      message = fromQueueMessage(raw, now);
    } catch (err) {
      return this.deadLetter(raw, undefined, meta, toAppError(err), log);
    }
    // A message put back for later is a new queue message: logs and the poison queue name the
    // sender's original one.
    const messageId = message.originalMessageId ?? meta.messageId;
    const context = {
      messageId,
      correlationId: message.correlationId,
      tenantId: message.tenantId,
      userId: message.userId,
    };
    const ids: TelemetryProperties = {
      trigger: 'queue',
      messageId,
      tenantId: message.tenantId,
      userId: message.userId,
      ...(message.correlationId ? { correlationId: message.correlationId } : {}),
    };
    try {
      // The id a redelivery or a retried copy lands on: the sender's, or one derived from the
      // message id, which stays the same however often the queue delivers the message.
      const notification = toGraphNotification(
        message.notification,
        {
          targetHostName: this.deps.targetHostName,
          appNotificationId: () =>
            deterministicAppNotificationId(message.tenantId, message.userId, meta.messageId),
        },
        'invalid_message',
      );
      const pinned: DeferredMessage = {
        ...message,
        originalMessageId: messageId,
        notification: { ...message.notification, appNotificationId: notification.appNotificationId },
      };

      const deliverAt = message.notification.deliverAt ? Date.parse(message.notification.deliverAt) : NaN;
      if (deliverAt > now.getTime()) {
        const delaySec = Math.ceil((deliverAt - now.getTime()) / 1000);
        await this.deps.queue.enqueue(pinned, delaySec);
        log.info('Deferred notification scheduled', { ...context, outcome: 'scheduled', delaySec });
        this.telemetry.trackEvent('NotificationScheduled', {
          ...ids,
          appNotificationId: notification.appNotificationId,
          outcome: 'scheduled',
        });
        return { kind: 'scheduled', deliverAt: message.notification.deliverAt!, delaySec };
      }

      try {
        const token = await this.deps.tokens.accessTokenFor(message);
        const sent = await this.deps.graph.send(token, notification, message.correlationId);
        log.info('Deferred notification sent', {
          ...context,
          outcome: 'sent',
          appNotificationId: notification.appNotificationId,
        });
        this.telemetry.trackEvent('NotificationSent', {
          ...ids,
          appNotificationId: notification.appNotificationId,
          outcome: 'sent',
        });
        return { kind: 'sent', id: sent.id, appNotificationId: notification.appNotificationId };
      } catch (err) {
        const error = toAppError(err);
        if (error.staleCredential) this.deps.tokens.forget(message);
        if (FINAL.has(error.code)) return await this.deadLetter(raw, message, meta, error, log);
        if (error.code !== 'upstream_unavailable') throw err;
        return await this.retry(raw, pinned, meta, error, log, context, ids);
      }
    } catch (err) {
      if (isAppError(err) && err.code === 'invalid_message')
        return this.deadLetter(raw, message, meta, err, log);
      throw err;
    }
  }

  private async retry(
    raw: unknown,
    message: DeferredMessage,
    meta: MessageMeta,
    error: AppError,
    log: Logger,
    context: Record<string, unknown>,
    ids: TelemetryProperties,
  ): Promise<Outcome> {
    const attempt = message.attempt ?? 1;
    if (attempt >= (this.deps.maxAttempts ?? MAX_ATTEMPTS)) {
      return this.deadLetter(raw, message, meta, error, log);
    }
    const delaySec = error.retryAfterSeconds ?? backoffSec(attempt);
    const { deliverAt: _past, ...notification } = message.notification;
    await this.deps.queue.enqueue({ ...message, notification, attempt: attempt + 1 }, delaySec);
    log.warn('Deferred notification put back to retry', {
      ...context,
      outcome: 'retry',
      reason: error.code,
      attempt,
      delaySec,
    });
    this.telemetry.trackEvent('NotificationFailed', {
      ...ids,
      appNotificationId: message.notification.appNotificationId,
      outcome: 'retry',
      reason: error.code,
      attempt,
    });
    return { kind: 'retry', reason: error.code, delaySec, attempt };
  }

  private async deadLetter(
    raw: unknown,
    message: DeferredMessage | undefined,
    meta: MessageMeta,
    error: AppError,
    log: Logger,
  ): Promise<Outcome> {
    await this.deps.queue.poison({
      reason: error.code,
      detail: error.detail,
      failedAt: (this.deps.now?.() ?? new Date()).toISOString(),
      messageId: message?.originalMessageId ?? meta.messageId,
      dequeueCount: meta.dequeueCount,
      ...(message?.attempt ? { attempt: message.attempt } : {}),
      ...(message?.correlationId ? { correlationId: message.correlationId } : {}),
      message: raw,
    });
    log.warn('Deferred notification dead-lettered', {
      messageId: message?.originalMessageId ?? meta.messageId,
      correlationId: message?.correlationId,
      tenantId: message?.tenantId,
      userId: message?.userId,
      outcome: 'dead-lettered',
      reason: error.code,
    });
    const appNotificationId = message?.notification.appNotificationId;
    this.telemetry.trackEvent('NotificationDeadLettered', {
      trigger: 'queue',
      messageId: message?.originalMessageId ?? meta.messageId,
      ...(message ? { tenantId: message.tenantId, userId: message.userId } : {}),
      ...(message?.correlationId ? { correlationId: message.correlationId } : {}),
      ...(typeof appNotificationId === 'string' ? { appNotificationId } : {}),
      outcome: 'dead-lettered',
      reason: error.code,
    });
    return { kind: 'dead-lettered', reason: error.code };
  }
}
