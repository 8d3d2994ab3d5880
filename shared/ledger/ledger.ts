import type { ChannelName, Sender } from '../channels/channel';
import { AppError } from '../errors';
import type { UserRef } from '../ids';
import { isMiss, type LedgerTable, type Row, type StoredRow } from './table';

/** A notification's state, as `GET /api/notifications/{id}` and `GET /api/activities/{id}` report it. */
export type LedgerStatus = 'scheduled' | 'sending' | 'sent' | 'retrying' | 'dead_lettered' | 'failed';

/** The public fields of an entry: never the notification's text, never a token. */
export interface NotificationStatus {
  id: string;
  channel: ChannelName;
  status: LedgerStatus;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  sentAt?: string;
  deliverAt?: string;
  lastError?: { code: string; at: string };
}

/** How a state change ended a try: sent (with Graph's id when it returned one), or why not. */
export type Settled =
  { status: 'sent'; graphId?: string } | { status: 'retrying' | 'dead_lettered' | 'failed'; code: string };

/** What a queue invocation's claim on a notification found. */
export type Claim =
  | { kind: 'claimed' }
  /** The ledger says this message was already dealt with (`sent`, or given up): do nothing again. */
  | { kind: 'duplicate'; status: LedgerStatus }
  /** Another invocation holds it (its lease has not run out): come back after `retryAfterSec`. */
  | { kind: 'busy'; retryAfterSec: number };

/**
 * What an entry that starts over must not keep from the notification that had its id before: a
 * merge leaves properties it does not name, so they are written empty.
 */
const CLEARED: Row = {
  deliverAt: '',
  messageId: '',
  leaseUntil: '',
  sentAt: '',
  lastErrorCode: '',
  lastErrorAt: '',
  graphId: '',
};

const FINISHED: ReadonlySet<string> = new Set(['sent', 'dead_lettered', 'failed']);
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Keys: one partition per user (`{tid}|{oid}`, lowercase), or per tenant for what the app sends on
 * its own (`{tid}|app`); a row per channel and notification id. Ids are the caller's own text, so
 * they are percent-encoded: the table refuses `/ \ # ?` and control characters in keys.
 */
export function partitionOf(owner: Sender | UserRef): string {
  const key =
    'kind' in owner
      ? owner.kind === 'app'
        ? `${owner.tenantId}|app`
        : `${owner.user.tenantId}|${owner.user.userId}`
      : `${owner.tenantId}|${owner.userId}`;
  return key.toLowerCase();
}

export function rowOf(channel: ChannelName | 'idempotency', id: string): string {
  return `${channel}|${encodeURIComponent(id)}`;
}

/**
 * The delivery ledger: one entry per notification (state, tries, last error, times, Graph's id),
 * one table write per state change. What sends record (`scheduled`, `settled`), what the queue
 * claims before a send so that no message is sent twice (`claim`), what a caller asks (`status`),
 * and the retention sweep.
 */
export class DeliveryLedger {
  constructor(
    private readonly table: LedgerTable,
    private readonly options: {
      retentionDays: number;
      leaseSeconds: number;
      now?: () => Date;
    },
  ) {}

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /**
   * A send for later: the entry starts over as `scheduled` (a new send under an id replaces the
   * earlier one's entry, as it replaces the notification). `messageId` is the queue message's, when
   * the queue recorded it.
   */
  async scheduled(
    owner: Sender | UserRef,
    channel: ChannelName,
    id: string,
    deliverAt: string,
    messageId?: string,
  ): Promise<void> {
    const at = this.now().toISOString();
    await this.table.upsert({
      ...this.keys(owner, channel, id),
      kind: 'notification',
      channel,
      status: 'scheduled',
      attempts: 0,
      createdAt: at,
      updatedAt: at,
      ...CLEARED,
      deliverAt,
      messageId: messageId ?? '',
    });
  }

  /**
   * A send made now, outside the queue (HTTP): its one write, once Graph answered. It starts a new
   * entry, as a new request under an earlier id is a new notification.
   */
  async sentNow(owner: UserRef, channel: ChannelName, id: string, settled: Settled): Promise<void> {
    const at = this.now().toISOString();
    await this.table.upsert({
      ...this.keys(owner, channel, id),
      kind: 'notification',
      channel,
      attempts: 1,
      createdAt: at,
      ...CLEARED,
      ...settledFields(settled, at),
    });
  }

  /** A queued send's try ended: sent, put back to retry, or given up. Lifts the claim. */
  async settled(owner: Sender, channel: ChannelName, id: string, messageId: string, settled: Settled) {
    const at = this.now().toISOString();
    // Merge: an entry the queue never claimed (a message given up before its send) gets the
    // fields it needs; one it claimed keeps its creation time and tries.
    await this.table.upsert({
      ...this.keys(owner, channel, id),
      kind: 'notification',
      channel,
      messageId,
      leaseUntil: '',
      ...settledFields(settled, at),
    });
  }

  /**
   * Before a queued send: takes the entry for this message, with a conditional write (ETag) so
   * that of two invocations only one wins. A copy of a message whose entry says it was sent (or
   * given up) is a duplicate; one held by another invocation whose lease has not run out is busy;
   * one whose holder crashed is taken over when its lease has run out.
   */
  async claim(owner: Sender, channel: ChannelName, id: string, messageId: string): Promise<Claim> {
    const keys = this.keys(owner, channel, id);
    for (let round = 0; round < 4; round++) {
      const now = this.now();
      const at = now.toISOString();
      const leaseUntil = new Date(now.getTime() + this.options.leaseSeconds * 1000).toISOString();
      const claimed = { ...keys, status: 'sending', updatedAt: at, messageId, leaseUntil };
      // The entry of a notification this message starts (or restarts, under an id used before).
      const fresh = { ...claimed, kind: 'notification', channel, attempts: 1, createdAt: at };
      const inserted = await this.table.insert(fresh);
      if (!isMiss(inserted)) return { kind: 'claimed' };
      const row = await this.table.get(keys.partitionKey, keys.rowKey);
      if (row === 'not_found') continue;
      const status = String(row.status) as LedgerStatus;
      const sameMessage = row.messageId === messageId;
      // The entry an HTTP request made for its scheduled send has no message id yet: it is this one.
      const scheduledByRequest = status === 'scheduled' && !row.messageId;
      if (sameMessage && FINISHED.has(status)) return { kind: 'duplicate', status };
      const heldUntil = typeof row.leaseUntil === 'string' ? Date.parse(row.leaseUntil) : NaN;
      if (status === 'sending' && heldUntil > now.getTime()) {
        return { kind: 'busy', retryAfterSec: Math.max(1, Math.ceil((heldUntil - now.getTime()) / 1000)) };
      }
      // The same notification tried again keeps its creation time and counts the try; another
      // message under the same id is a new notification replacing the earlier one.
      const wrote =
        sameMessage || scheduledByRequest
          ? await this.table.update(
              { ...claimed, attempts: Number(row.attempts ?? 0) + 1 },
              row.etag,
              'Merge',
            )
          : await this.table.update(fresh, row.etag, 'Replace');
      if (!isMiss(wrote)) return { kind: 'claimed' };
    }
    // Four rounds lost to other writers of the same entry: let the message come back shortly.
    return { kind: 'busy', retryAfterSec: 1 };
  }

  /** The caller's entry for `id` on `channel`: `not_found` when there is none, or it has expired. */
  async status(owner: UserRef, channel: ChannelName, id: string): Promise<NotificationStatus> {
    const keys = this.keys(owner, channel, id);
    const row = await this.table.get(keys.partitionKey, keys.rowKey);
    if (row === 'not_found' || row.kind !== 'notification' || this.expired(row)) {
      throw new AppError('not_found', { detail: `No ${channel} notification "${id}" for this user.` });
    }
    return publicStatus(row, id, channel);
  }

  /**
   * Deletes what the retention period has passed: entries not updated for `retentionDays`, and
   * idempotency records older than their 24 hours. Answers how many it deleted.
   */
  async sweep(): Promise<number> {
    const now = this.now().getTime();
    const cutoff = new Date(now - this.options.retentionDays * DAY_MS).toISOString();
    const idempotencyCutoff = new Date(now - DAY_MS).toISOString();
    const filter =
      `(kind eq 'notification' and updatedAt lt '${cutoff}')` +
      ` or (kind eq 'idempotency' and createdAt lt '${idempotencyCutoff}')`;
    let deleted = 0;
    for await (const page of this.table.select(filter, ['PartitionKey', 'RowKey'])) {
      const byPartition = new Map<string, StoredRow[]>();
      for (const row of page) {
        const list = byPartition.get(row.partitionKey) ?? [];
        list.push(row);
        byPartition.set(row.partitionKey, list);
      }
      for (const rows of byPartition.values()) {
        await this.table.deleteAll(rows);
        deleted += rows.length;
      }
    }
    return deleted;
  }

  private expired(row: StoredRow): boolean {
    const updated = Date.parse(String(row.updatedAt));
    return updated < this.now().getTime() - this.options.retentionDays * DAY_MS;
  }

  private keys(owner: Sender | UserRef, channel: ChannelName, id: string) {
    return { partitionKey: partitionOf(owner), rowKey: rowOf(channel, id) };
  }
}

function settledFields(settled: Settled, at: string): Row {
  return settled.status === 'sent'
    ? { status: 'sent', updatedAt: at, sentAt: at, graphId: settled.graphId ?? '' }
    : { status: settled.status, updatedAt: at, lastErrorCode: settled.code, lastErrorAt: at };
}

function publicStatus(row: StoredRow, id: string, channel: ChannelName): NotificationStatus {
  const text = (name: string): string | undefined => {
    const value = row[name];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const createdAt = text('createdAt') ?? text('updatedAt')!;
  const sentAt = text('sentAt');
  const deliverAt = text('deliverAt');
  const code = text('lastErrorCode');
  return {
    id,
    channel,
    status: String(row.status) as LedgerStatus,
    attempts: Number(row.attempts ?? 0),
    createdAt,
    updatedAt: text('updatedAt') ?? createdAt,
    ...(sentAt ? { sentAt } : {}),
    ...(deliverAt ? { deliverAt } : {}),
    ...(code ? { lastError: { code, at: text('lastErrorAt') ?? createdAt } } : {}),
  };
}
