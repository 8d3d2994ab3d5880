import type { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { AppError } from '../errors';
import { callWithTries } from '../http/bounded-call';
import { DEPENDENCY_BUDGET, type CallBudget } from '../http/dependency-budget';
import { onFirstUse } from '../on-first-use';
import type { QueueMessage } from './message';
import { toQueueText } from './message';

/** A storage queue message can stay hidden at most 7 days. */
export const MAX_VISIBILITY_SEC = 7 * 24 * 60 * 60;

/** What lands in `<queue>-poison`: the original message as received, and why it was given up. */
export interface PoisonRecord {
  reason: string;
  detail?: string;
  failedAt: string;
  /** The sender's message id (a message put back for later keeps it). */
  messageId: string;
  dequeueCount: number;
  /** How many times graph-notify tried it, when it put the message back before. */
  attempt?: number;
  correlationId?: string;
  /** The message as it arrived (parsed when it was JSON, else its text). */
  message: unknown;
}

/**
 * The deferred queue and its poison queue (`<queue>-poison`, the name the Functions host uses),
 * through @azure/storage-queue. Messages are written base64-encoded, as the trigger reads them.
 * The clients are asked for at the first write (creating them loads the storage SDK).
 */
export class DeferredQueue {
  private ready: Promise<void> | undefined;

  constructor(
    private readonly queue: () => QueueClient,
    private readonly poisonQueue: () => QueueClient,
    private readonly budget: CallBudget = DEPENDENCY_BUDGET.storage,
  ) {}

  /** Creates both queues on first use (an enqueuing system may come before any message). */
  private ensure(abortSignal: AbortSignal): Promise<void> {
    this.ready ??= Promise.all([
      this.queue().createIfNotExists({ abortSignal }),
      this.poisonQueue().createIfNotExists({ abortSignal }),
    ]).then(
      () => undefined,
      (err: unknown) => {
        this.ready = undefined;
        throw err;
      },
    );
    return this.ready;
  }

  /**
   * Puts a message on the queue, hidden for `delaySec` (capped at the queue's 7-day limit).
   * Side effect: one queue write. Throws `upstream_unavailable` when storage is unreachable or
   * does not answer within the storage budget (per-try timeout, tries, deadline).
   */
  async enqueue(message: QueueMessage, delaySec = 0): Promise<void> {
    await this.write(
      this.queue,
      toQueueText(message),
      Math.min(Math.max(0, Math.ceil(delaySec)), MAX_VISIBILITY_SEC),
    );
  }

  /** Side effect: one write to `<queue>-poison`. */
  async poison(record: PoisonRecord): Promise<void> {
    await this.write(this.poisonQueue, toQueueText(record), 0);
  }

  private async write(queue: () => QueueClient, text: string, visibilityTimeout: number): Promise<void> {
    const client = queue();
    try {
      // A try that timed out may still have landed: a retry can then add a second copy. Delivery
      // is idempotent by appNotificationId, as it must be for the queue's at-least-once anyway.
      await callWithTries(
        this.budget,
        async (abortSignal) => {
          await this.ensure(abortSignal);
          // -1: no expiry; the default of 7 days would silently drop a message hidden for 7 days.
          await client.sendMessage(text, { visibilityTimeout, messageTimeToLive: -1, abortSignal });
        },
        isTransientStorageError,
      );
    } catch (err) {
      throw new AppError('upstream_unavailable', {
        detail: `The queue ${client.name} could not be written within ${this.budget.deadlineMs} ms.`,
        retryAfterSeconds: 5,
        cause: err,
      });
    }
  }
}

/** What the storage SDK's own retry policy retries: a failed connection, 500 and 503. */
function isTransientStorageError(err: unknown): boolean {
  if (!(err instanceof Error) || err.name !== 'RestError') return false;
  const status = (err as Error & { statusCode?: number }).statusCode;
  return status === undefined || status === 500 || status === 503;
}

/** Both queues (`queueName` and `<queueName>-poison`) of a queue service created on first use. */
export function deferredQueueFrom(service: () => QueueServiceClient, queueName: string): DeferredQueue {
  return new DeferredQueue(
    onFirstUse(() => service().getQueueClient(queueName)),
    onFirstUse(() => service().getQueueClient(`${queueName}-poison`)),
  );
}
