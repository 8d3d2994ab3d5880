import type { Channel, ChannelName, Envelope, Prepared, Sender } from '../channels/channel';
import type { TenantPacer } from '../channels/pacing';
import { AppError, toAppError } from '../errors';
import type { Claim, Settled } from '../ledger/ledger';
import { scopesOf, type Logger, type UserRef } from '../notifications/send';
import { deterministicAppNotificationId } from '../notifications/request';
import { fromQueueMessage, toQueueMessage, type QueueMessage, type ReceivedMessage } from '../queue/message';
import type { PoisonRecord } from '../queue/deferred-queue';
import { noTelemetry, type Telemetry, type TelemetryProperties } from '../telemetry';

/** Port: the deferred queue, to put a message back for later and to give one up. */
export interface DeferredQueuePort {
  enqueue(message: QueueMessage, delaySec: number): Promise<void>;
  poison(record: PoisonRecord): Promise<void>;
}

/** Port: Graph access tokens for absent users, and the app's own. */
export interface AbsentUserTokenSource {
  accessTokenFor(user: UserRef, scopes?: readonly string[]): Promise<string>;
  forget(user: UserRef): void;
}

/**
 * Port: the delivery ledger, as the queue uses it: the state of each message's notification, and
 * the claim that keeps a message from being sent twice.
 */
export interface DeliveryRecords {
  scheduled(
    owner: Sender,
    channel: ChannelName,
    id: string,
    deliverAt: string,
    messageId: string,
  ): Promise<void>;
  claim(owner: Sender, channel: ChannelName, id: string, messageId: string): Promise<Claim>;
  settled(
    owner: Sender,
    channel: ChannelName,
    id: string,
    messageId: string,
    settled: Settled,
  ): Promise<void>;
}

export interface MessageMeta {
  messageId: string;
  dequeueCount: number;
}

export type Outcome =
  | { kind: 'sent'; id: string; appNotificationId: string }
  | { kind: 'scheduled'; deliverAt: string; delaySec: number }
  | { kind: 'paced'; delaySec: number }
  | { kind: 'retry'; reason: string; delaySec: number; attempt: number }
  /** A copy of a message the ledger says was already sent (or given up): removed, nothing sent. */
  | { kind: 'duplicate'; status: string }
  /** Another invocation holds the message's notification: put back until its claim runs out. */
  | { kind: 'held'; delaySec: number }
  | { kind: 'dead-lettered'; reason: string };

/**
 * How many times a message is tried before it is given up into the poison queue: host.json's
 * `maxDequeueCount` (a test keeps the two equal).
 */
export const MAX_ATTEMPTS = 5;

/**
 * A queue message whose pacing slot is this close waits for it in the invocation; one further off
 * is put back on the queue. A message put back can only be hidden for whole seconds and comes
 * back up to a second after its slot, so putting back every over-budget message loses slots (the
 * benchmark measured 68 % of the budget that way); a two-second wait holds at most
 * 2 × TEAMS_MAX_RPS_PER_TENANT invocations per busy tenant.
 */
export const QUEUE_PACING_MAX_WAIT_MS = 2000;

/** Never-retryable codes: the message goes straight to the poison queue. */
// `interaction_required`: the stored grant needs the user (consent, MFA); only their next visit helps.
const FINAL: ReadonlySet<string> = new Set([
  'invalid_message',
  'not_registered',
  'invalid_grant',
  'interaction_required',
  'upstream_rejected',
  'recipient_is_sender',
  'recipient_not_found',
  'teams_app_not_installed',
  'app_permission_disabled',
  'tenant_not_allowed',
]);

function backoffSec(attempt: number): number {
  return Math.min(600, 15 * 2 ** (attempt - 1));
}

/**
 * Delivers one deferred message, whatever its channel: sends it (on the sender's behalf with their
 * stored refresh token, or as the app), puts it back for later (a future `deliverAt`, the tenant's
 * pacing budget spent, or a transient failure, honouring Retry-After — never waiting inside the
 * invocation), or gives it up into `<queue>-poison` with a reason. Resolves when the message's fate
 * is recorded; throws only when even that failed (then the host retries the message as it is).
 */
export class DeferredDelivery {
  private readonly channels: ReadonlyMap<string, Channel>;

  constructor(
    private readonly deps: {
      tokens: AbsentUserTokenSource;
      /** The channels messages name (a message without `channel` is `notifications`). */
      channels: readonly Channel[];
      queue: DeferredQueuePort;
      /** The app's own token per tenant, for messages sent `as: app`. */
      appTokens?: { forApp(tenantId: string): Promise<string> };
      /** TEAMS_SEND_AS_APP, and the tenants an app send may go to (ALLOWED_TENANT_IDS). */
      sendAsApp?: boolean;
      allowedTenantIds?: readonly string[];
      pacer?: TenantPacer;
      /** The delivery ledger (none: no claims, nothing recorded, as in unit tests). */
      ledger?: DeliveryRecords;
      maxAttempts?: number;
      telemetry?: Telemetry;
      now?: () => Date;
    },
  ) {
    this.channels = new Map(deps.channels.map((c) => [c.name, c]));
  }

  private get telemetry(): Telemetry {
    return this.deps.telemetry ?? noTelemetry;
  }

  /**
   * Records the fate of each message (`NotificationSent`, `NotificationScheduled`,
   * `NotificationFailed` for a retry, `NotificationDeadLettered`, `TeamsThrottled` when paced)
   * and how long handling it took.
   */
  async deliver(raw: unknown, meta: MessageMeta, log: Logger): Promise<Outcome> {
    const started = performance.now();
    let outcome = 'internal_error';
    let channel: ChannelName | undefined;
    try {
      const result = await this.handle(raw, meta, log, (name) => (channel = name));
      outcome = result.kind;
      return result;
    } finally {
      this.telemetry.trackMetric('NotificationSendDuration', performance.now() - started, {
        outcome,
        trigger: 'queue',
        ...(channel ? { channel } : {}),
      });
    }
  }

  private async handle(
    raw: unknown,
    meta: MessageMeta,
    log: Logger,
    named: (channel: ChannelName) => void,
  ): Promise<Outcome> {
    const now = this.deps.now?.() ?? new Date();
    let message: ReceivedMessage;
    try {
      message = fromQueueMessage(raw);
    } catch (err) {
      return this.deadLetter(raw, undefined, meta, toAppError(err), log);
    }
    named(message.channel);
    const channel = this.channels.get(message.channel);
    if (!channel) {
      return this.deadLetter(
        raw,
        message,
        meta,
        new AppError('invalid_message', { detail: `No channel ${message.channel}.` }),
        log,
      );
    }
    // A message put back for later is a new queue message: logs and the poison queue name the
    // sender's original one.
    const messageId = message.envelope.originalMessageId ?? meta.messageId;
    const who = senderIds(message.sender);
    const context = {
      messageId,
      correlationId: message.envelope.correlationId,
      channel: message.channel,
      ...who,
    };
    const ids: TelemetryProperties = {
      trigger: 'queue',
      messageId,
      ...who,
      channel: message.channel,
      ...(message.envelope.correlationId ? { correlationId: message.envelope.correlationId } : {}),
    };
    let prepared: Prepared<unknown> | undefined;
    try {
      // The id a redelivery or a retried copy lands on: the sender's, or one derived from the
      // message id, which stays the same however often the queue delivers the message.
      prepared = channel.prepare(message.body, now, 'invalid_message', () =>
        deterministicAppNotificationId(who.tenantId, who.userId ?? 'app', meta.messageId),
      );
      if (message.id) prepared = { ...prepared, id: message.id };
      this.checkSender(channel, message.sender, prepared);
    } catch (err) {
      return this.deadLetter(raw, message, meta, toAppError(err), log, prepared?.id);
    }
    const idsOf = { ...ids, ...channel.ids(prepared) };
    const again = (envelope: Envelope, withDeliverAt: boolean): QueueMessage =>
      toQueueMessage(
        channel,
        withDeliverAt ? prepared : { ...prepared, deliverAt: undefined },
        message.sender,
        { ...message.envelope, paced: undefined, originalMessageId: messageId, ...envelope },
      );

    const deliverAt = prepared.deliverAt ? Date.parse(prepared.deliverAt) : NaN;
    if (deliverAt > now.getTime()) {
      const delaySec = Math.ceil((deliverAt - now.getTime()) / 1000);
      await this.deps.queue.enqueue(again({}, true), delaySec);
      // The first sight of the message: later copies of it change nothing the ledger shows.
      if (!message.envelope.originalMessageId) {
        await this.record(log, () =>
          this.deps.ledger?.scheduled(
            message.sender,
            channel.name,
            prepared.id,
            prepared.deliverAt!,
            messageId,
          ),
        );
      }
      log.info('Deferred notification scheduled', { ...context, outcome: 'scheduled', delaySec });
      this.telemetry.trackEvent('NotificationScheduled', { ...idsOf, outcome: 'scheduled' });
      return { kind: 'scheduled', deliverAt: prepared.deliverAt!, delaySec };
    }

    try {
      const token =
        message.sender.kind === 'app'
          ? await this.appToken(message.sender.tenantId)
          : await this.deps.tokens.accessTokenFor(message.sender.user, scopesOf(channel));
      if (channel.paced && this.deps.pacer) {
        if (message.envelope.paced) this.deps.pacer.returned(who.tenantId);
        // The start itself is admitted after the ledger's claim (below), right before the send.
        const slot = await this.deps.pacer.acquire(who.tenantId, QUEUE_PACING_MAX_WAIT_MS, { admit: false });
        if (!slot.ok) {
          // Far over this instance's budget for the tenant: back on the queue until about its
          // slot, not counted as a try, no worker held while it waits.
          const delaySec = Math.max(
            1,
            Math.ceil(this.deps.pacer.laterSlot(who.tenantId, slot.waitMs) / 1000),
          );
          await this.deps.queue.enqueue(again({ paced: true }, false), delaySec);
          log.info('Deferred notification paced', { ...context, outcome: 'paced', delaySec });
          this.telemetry.trackEvent('TeamsThrottled', {
            ...idsOf,
            reason: 'pacing',
            delayMs: delaySec * 1000,
          });
          return { kind: 'paced', delaySec };
        }
        if (slot.waitedMs > 0) {
          this.telemetry.trackEvent('TeamsThrottled', {
            ...idsOf,
            reason: 'pacing',
            delayMs: Math.round(slot.waitedMs),
          });
        }
      }
      const claim = await this.claim(message.sender, channel, prepared.id, messageId);
      if (claim.kind === 'duplicate') {
        log.info('Deferred notification already handled: this copy is removed, nothing sent', {
          ...context,
          outcome: 'duplicate',
          status: claim.status,
        });
        this.telemetry.trackEvent('NotificationDuplicateDropped', { ...idsOf, outcome: 'duplicate' });
        return { kind: 'duplicate', status: claim.status };
      }
      if (claim.kind === 'busy') {
        // Not a try: another invocation is sending it, or crashed doing so and its claim has yet
        // to run out. Back when it has: sent by then (this copy is then removed), or taken over.
        await this.deps.queue.enqueue(again({}, false), claim.retryAfterSec);
        log.info('Deferred notification held by another invocation', {
          ...context,
          outcome: 'held',
          delaySec: claim.retryAfterSec,
        });
        return { kind: 'held', delaySec: claim.retryAfterSec };
      }
      if (channel.paced) await this.deps.pacer?.admit(who.tenantId);
      const sent = await channel.send(token, prepared, message.envelope.correlationId);
      await this.record(log, () =>
        this.deps.ledger?.settled(message.sender, channel.name, prepared.id, messageId, {
          status: 'sent',
          ...(typeof sent.id === 'string' ? { graphId: sent.id } : {}),
        }),
      );
      log.info('Deferred notification sent', { ...context, outcome: 'sent', ...channel.ids(prepared) });
      this.telemetry.trackEvent('NotificationSent', { ...idsOf, outcome: 'sent' });
      return {
        kind: 'sent',
        id: typeof sent.id === 'string' ? sent.id : prepared.id,
        appNotificationId: prepared.id,
      };
    } catch (err) {
      const error = toAppError(err);
      if (error.staleCredential && message.sender.kind === 'user')
        this.deps.tokens.forget(message.sender.user);
      if (error.throttled && channel.paced) {
        this.telemetry.trackEvent('TeamsThrottled', {
          ...idsOf,
          reason: 'graph',
          ...(error.retryAfterSeconds !== undefined ? { delayMs: error.retryAfterSeconds * 1000 } : {}),
        });
      }
      if (FINAL.has(error.code)) return this.deadLetter(raw, message, meta, error, log, prepared.id);
      if (error.code !== 'upstream_unavailable') {
        // The host retries the message as it is (and moves it to the poison queue itself after
        // its last try): lift the claim so the retry is not held off by it, and say what happened.
        const lastTry = meta.dequeueCount >= (this.deps.maxAttempts ?? MAX_ATTEMPTS);
        await this.record(log, () =>
          this.deps.ledger?.settled(message.sender, channel.name, prepared.id, messageId, {
            status: lastTry ? 'dead_lettered' : 'retrying',
            code: error.code,
          }),
        );
        throw err;
      }
      return this.retry(raw, message, again, meta, error, log, context, idsOf, prepared.id);
    }
  }

  /** Who may send what: the queue's own rules for a sender (the channel's for a caller's self-send). */
  private checkSender(channel: Channel, sender: Sender, prepared: Prepared<unknown>): void {
    if (sender.kind === 'app') {
      if (!this.deps.sendAsApp) {
        throw new AppError('app_permission_disabled', {
          detail: 'The message asks to send as the app, and TEAMS_SEND_AS_APP is off.',
        });
      }
      if (!(this.deps.allowedTenantIds ?? []).includes(sender.tenantId)) {
        throw new AppError('tenant_not_allowed', {
          detail: `Tenant ${sender.tenantId} is not one of ALLOWED_TENANT_IDS.`,
        });
      }
      return;
    }
    // A delegated send must not be to the sender: Teams would not deliver it. Only the object id
    // is known for a queued sender.
    const kind = channel.senderFor(prepared.payload, { userId: sender.user.userId, usernames: [] });
    if (kind === 'app') {
      throw new AppError('recipient_is_sender', {
        detail: 'A delegated Teams notification cannot go to its sender; send it "as": "app" instead.',
      });
    }
  }

  /** The ledger's claim; without a ledger every message is this invocation's. */
  private async claim(owner: Sender, channel: Channel, id: string, messageId: string): Promise<Claim> {
    return (await this.deps.ledger?.claim(owner, channel.name, id, messageId)) ?? { kind: 'claimed' };
  }

  /**
   * A ledger write after the fact (sent, retrying, given up): logged and counted when it fails,
   * never thrown, so that the message is not tried again for it (a `sent` not recorded is the
   * queue's to tell only by the claim's lease).
   */
  private async record(log: Logger, write: () => Promise<void> | undefined): Promise<void> {
    try {
      await write();
    } catch (err) {
      const code = toAppError(err).code;
      log.warn('Writing the delivery ledger failed', { code });
      this.telemetry.trackEvent('LedgerWriteFailed', { reason: code, trigger: 'queue' });
    }
  }

  private appToken(tenantId: string): Promise<string> {
    if (!this.deps.appTokens) {
      return Promise.reject(new AppError('internal_error', { detail: 'No app token source is wired.' }));
    }
    return this.deps.appTokens.forApp(tenantId);
  }

  private async retry(
    raw: unknown,
    message: ReceivedMessage,
    again: (envelope: Envelope, withDeliverAt: boolean) => QueueMessage,
    meta: MessageMeta,
    error: AppError,
    log: Logger,
    context: Record<string, unknown>,
    ids: TelemetryProperties,
    id: string,
  ): Promise<Outcome> {
    const attempt = message.envelope.attempt ?? 1;
    if (attempt >= (this.deps.maxAttempts ?? MAX_ATTEMPTS)) {
      return this.deadLetter(raw, message, meta, error, log, id);
    }
    const delaySec = error.retryAfterSeconds ?? backoffSec(attempt);
    await this.deps.queue.enqueue(again({ attempt: attempt + 1 }, false), delaySec);
    await this.record(log, () =>
      this.deps.ledger?.settled(message.sender, message.channel, id, String(context.messageId), {
        status: 'retrying',
        code: error.code,
      }),
    );
    log.warn('Deferred notification put back to retry', {
      ...context,
      outcome: 'retry',
      reason: error.code,
      attempt,
      delaySec,
    });
    this.telemetry.trackEvent('NotificationFailed', {
      ...ids,
      outcome: 'retry',
      reason: error.code,
      attempt,
    });
    return { kind: 'retry', reason: error.code, delaySec, attempt };
  }

  private async deadLetter(
    raw: unknown,
    message: ReceivedMessage | undefined,
    meta: MessageMeta,
    error: AppError,
    log: Logger,
    id?: string,
  ): Promise<Outcome> {
    const messageId = message?.envelope.originalMessageId ?? meta.messageId;
    const correlationId = message?.envelope.correlationId;
    if (message && id !== undefined) {
      const { sender, channel } = message;
      await this.record(log, () =>
        this.deps.ledger?.settled(sender, channel, id, messageId, {
          status: 'dead_lettered',
          code: error.code,
        }),
      );
    }
    await this.deps.queue.poison({
      reason: error.code,
      detail: error.detail,
      failedAt: (this.deps.now?.() ?? new Date()).toISOString(),
      messageId,
      dequeueCount: meta.dequeueCount,
      ...(message?.envelope.attempt ? { attempt: message.envelope.attempt } : {}),
      ...(correlationId ? { correlationId } : {}),
      message: raw,
    });
    const who = message ? senderIds(message.sender) : {};
    log.warn('Deferred notification dead-lettered', {
      messageId,
      correlationId,
      ...who,
      outcome: 'dead-lettered',
      reason: error.code,
    });
    this.telemetry.trackEvent('NotificationDeadLettered', {
      trigger: 'queue',
      messageId,
      ...who,
      ...(message ? { channel: message.channel } : {}),
      ...(correlationId ? { correlationId } : {}),
      ...(message?.id
        ? message.channel === 'teams'
          ? { activityId: message.id }
          : { appNotificationId: message.id }
        : {}),
      outcome: 'dead-lettered',
      reason: error.code,
    });
    return { kind: 'dead-lettered', reason: error.code };
  }
}

/** The sender as logs and telemetry name it. */
function senderIds(sender: Sender): { tenantId: string; userId?: string; sender?: 'app' } {
  return sender.kind === 'app'
    ? { tenantId: sender.tenantId, sender: 'app' }
    : { tenantId: sender.user.tenantId, userId: sender.user.userId };
}
