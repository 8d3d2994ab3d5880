import { AppError } from '../errors';
import type { UserRef } from '../ids';
import { partitionOf, rowOf } from './ledger';
import { isMiss, type LedgerTable } from './table';

/** The first request's answer, kept to answer a repeat with. */
export interface StoredAnswer {
  status: number;
  body: Record<string, unknown>;
}

export type Begun = { kind: 'first'; etag: string } | { kind: 'replay'; answer: StoredAnswer };

/** How long a key is remembered (the IETF httpapi draft leaves it to the server; 24 h, as Stripe's). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

/**
 * `Idempotency-Key` records, beside the ledger's entries in the caller's partition: a request
 * claims its key with a conditional insert (the first of two racing requests wins), finishes it
 * with the answer to replay, or releases it when it failed, so that a retry really tries again.
 * A claim whose instance crashed frees itself after `leaseSeconds`.
 */
export class IdempotencyRecords {
  constructor(
    private readonly table: LedgerTable,
    private readonly options: { leaseSeconds: number; now?: () => Date },
  ) {}

  /**
   * Claims `key` for a request whose method, route and body hash to `fingerprint`. Throws
   * `idempotency_key_reused` (another body under the key) or `request_in_progress` (the first
   * request still running); answers the first answer when it finished.
   */
  async begin(owner: UserRef, key: string, fingerprint: string): Promise<Begun> {
    const partitionKey = partitionOf(owner);
    const rowKey = rowOf('idempotency', key);
    for (let round = 0; round < 4; round++) {
      const now = this.now();
      const fresh = {
        partitionKey,
        rowKey,
        kind: 'idempotency',
        fingerprint,
        state: 'in_flight',
        createdAt: now.toISOString(),
        updatedAt: now.toISOString(),
        leaseUntil: new Date(now.getTime() + this.options.leaseSeconds * 1000).toISOString(),
        answer: '',
      };
      const inserted = await this.table.insert(fresh);
      if (!isMiss(inserted)) return { kind: 'first', etag: inserted.etag };
      const row = await this.table.get(partitionKey, rowKey);
      if (row === 'not_found') continue;
      const expired = Date.parse(String(row.createdAt)) + IDEMPOTENCY_WINDOW_MS <= now.getTime();
      const leaseOver = row.state === 'in_flight' && Date.parse(String(row.leaseUntil)) <= now.getTime();
      if (!expired && row.fingerprint !== fingerprint) {
        throw new AppError('idempotency_key_reused', {
          detail: 'This Idempotency-Key was used for a different request in the last 24 hours.',
        });
      }
      if (!expired && row.state === 'done') {
        return { kind: 'replay', answer: JSON.parse(String(row.answer)) as StoredAnswer };
      }
      if (!expired && !leaseOver) {
        const left = Date.parse(String(row.leaseUntil)) - now.getTime();
        throw new AppError('request_in_progress', {
          detail: 'The first request with this Idempotency-Key is still being processed.',
          // A send takes a second or two: ask again soon, not when the (crash-bounding) lease ends.
          retryAfterSeconds: Math.max(1, Math.min(2, Math.ceil(left / 1000))),
        });
      }
      // Older than the window, or its instance gave out: this request takes the key over.
      const taken = await this.table.update(fresh, row.etag, 'Replace');
      if (!isMiss(taken)) return { kind: 'first', etag: taken.etag };
    }
    throw new AppError('request_in_progress', {
      detail: 'Other requests with this Idempotency-Key keep racing this one.',
      retryAfterSeconds: 1,
    });
  }

  /** The first request answered: keep its answer for the repeats. */
  async finish(owner: UserRef, key: string, etag: string, answer: StoredAnswer): Promise<void> {
    const now = this.now().toISOString();
    await this.table.update(
      {
        partitionKey: partitionOf(owner),
        rowKey: rowOf('idempotency', key),
        state: 'done',
        updatedAt: now,
        leaseUntil: '',
        answer: JSON.stringify(answer),
      },
      etag,
    );
  }

  /** The first request failed: free the key (only while this request still holds it). */
  async release(owner: UserRef, key: string, etag: string): Promise<void> {
    await this.table.delete(partitionOf(owner), rowOf('idempotency', key), etag);
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }
}
