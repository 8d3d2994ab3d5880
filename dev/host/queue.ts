import { randomBytes, randomUUID } from 'node:crypto';
import { QueueServiceClient, type QueueClient, type ReceivedMessageItem } from '@azure/storage-queue';
import type { HostJson } from '../settings';
import type { RegisteredFunction, RpcTypedData, WorkerRegistry } from './core';
import { resolveSettings } from './binding-expressions';
import { invoke, type HostLog, type InvocationResult } from './invoke';

// Kept here too for the callers that already import it from the queue trigger.
export { resolveSettings };

// The storage-queue trigger as the Functions host runs it (Microsoft.Azure.WebJobs.Extensions.Storage.Queues
// 5.x: QueueListener, QueueProcessor, QueueTriggerBinding). What it does and what it leaves out is listed in
// the TSDoc of `startQueueListeners`; the sources are named where a value comes from them.

/** QueueListener: messages are fetched invisible for 10 minutes and the lease renewed while the function runs. */
const HOST_FETCH_VISIBILITY_MS = 10 * 60_000;
/** QueuePollingIntervals.Minimum: the first back-off step. */
const MIN_POLLING_INTERVAL_MS = 100;
/** RandomizedExponentialBackoffStrategy spreads each step by ±20 %. */
const BACKOFF_JITTER = 0.2;
const POISON_SUFFIX = '-poison';

export interface QueueListenerOptions {
  registry: WorkerRegistry;
  hostJson: HostJson;
  log: HostLog;
  /** Where `%SETTING%` and connection names are looked up (the host's configuration). */
  env?: NodeJS.ProcessEnv;
  /**
   * How long a fetched message stays invisible before another poll can see it, renewed at half that while
   * its function runs. The host hard-codes 10 minutes; tests that kill the host shorten it.
   */
  fetchVisibilityMs?: number;
  /** How long `stop()` waits for running invocations before giving up on them. */
  drainTimeoutMs?: number;
}

export interface QueueListenerInfo {
  functionName: string;
  queueName: string;
}

export interface RunningQueueListeners {
  listeners: QueueListenerInfo[];
  /** Stops polling, then waits (bounded) for running invocations to finish and settle their messages. */
  stop(): Promise<void>;
}

/** The host lowercases the queue name ("coerce here to be nice") and then validates it. */
export function normalizeQueueName(name: string): string {
  const lower = name.toLowerCase();
  if (!/^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/.test(lower) || lower.length < 3 || lower.length > 63) {
    throw new Error(
      `Invalid queue name "${name}": 3-63 lowercase letters, digits and single hyphens, not starting or ending with a hyphen.`,
    );
  }
  return lower;
}

/**
 * The connection string a trigger's `connection` names, looked up as the WebJobs SDK does: `AzureWebJobs<name>`
 * first, then `<name>`; no name means `Storage` (so `AzureWebJobsStorage`).
 */
export function connectionStringFor(connection: unknown, env: NodeJS.ProcessEnv): string {
  const name = typeof connection === 'string' && connection !== '' ? connection : 'Storage';
  const value = env[`AzureWebJobs${name}`] || env[name];
  if (!value) {
    throw new Error(
      `Storage account connection string for '${name}' does not exist (set AzureWebJobs${name} or ${name}). ` +
        'Identity-based connections (<name>__queueServiceUri) are not supported by the local host.',
    );
  }
  return value;
}

/** The poison queue the host pairs with `queueName`, or none for a poison queue itself or a name too long. */
export function poisonQueueNameFor(queueName: string): string | undefined {
  if (queueName.endsWith(POISON_SUFFIX)) return undefined;
  const name = queueName + POISON_SUFFIX;
  return name.length <= 63 ? name : undefined;
}

export type DecodedMessage = { ok: true; bytes: Buffer } | { ok: false };

/**
 * The message body as the function gets it. Base64 is decoded strictly, as .NET's Convert.FromBase64String
 * (whitespace ignored, anything else that is not base64 fails): Node's lenient decoder would silently turn
 * garbage into bytes that the real host sends to the poison queue instead.
 */
export function fromWireText(wire: string, encoding: HostJson['queues']['messageEncoding']): DecodedMessage {
  if (encoding === 'none') return { ok: true, bytes: Buffer.from(wire, 'utf8') };
  const compact = wire.replace(/[ \t\r\n]/g, '');
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) return { ok: false };
  return { ok: true, bytes: Buffer.from(compact, 'base64') };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function tryUtf8(bytes: Buffer): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A DateTimeOffset as Newtonsoft.Json writes it (ISO 8601, `+00:00`, trailing zero fractions dropped). */
function toJsonDate(date: Date): string {
  const iso = date.toISOString().replace(/\.?0*Z$/, '');
  return JSON.stringify(`${iso}+00:00`);
}

/**
 * The trigger metadata the host sends the worker for a queue message: QueueTriggerBinding's binding data
 * (QueueTrigger only when the body is valid text) plus the WebJobs `sys` entry, each converted the way
 * GrpcMessageConversionExtensions.ToRpc does: strings as `string`, numbers and dates as `json`.
 * `@azure/functions` then camel-cases the keys (`context.triggerMetadata.dequeueCount`).
 */
export function toTriggerMetadata(
  message: ReceivedMessageItem,
  text: string | undefined,
  functionName: string,
  now: Date = new Date(),
): Record<string, RpcTypedData> {
  return {
    ...(text !== undefined ? { QueueTrigger: { string: text } } : {}),
    DequeueCount: { json: String(message.dequeueCount) },
    ExpirationTime: { json: toJsonDate(message.expiresOn) },
    Id: { string: message.messageId },
    InsertionTime: { json: toJsonDate(message.insertedOn) },
    NextVisibleTime: { json: toJsonDate(message.nextVisibleOn) },
    PopReceipt: { string: message.popReceipt },
    sys: {
      json: JSON.stringify({ MethodName: functionName, UtcNow: now.toISOString(), RandGuid: randomUUID() }),
    },
  };
}

/**
 * RandomizedExponentialBackoffStrategy.GetNextDelay: the minimum when messages were found since the last
 * delay, else min + min·2^(n-1)·(1 ± 20 %) until that reaches the maximum.
 */
export class PollingBackoff {
  private current: number;
  private exponent = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.current = minMs;
  }

  next(foundMessages: boolean): number {
    if (foundMessages) {
      this.current = this.minMs;
      this.exponent = 1;
    } else if (this.current < this.maxMs) {
      const factor = 1 - BACKOFF_JITTER + this.random() * 2 * BACKOFF_JITTER;
      const candidate = this.minMs + (this.exponent > 0 ? factor * 2 ** (this.exponent - 1) * this.minMs : 0);
      if (candidate < this.maxMs) {
        this.current = candidate;
        this.exponent++;
      } else {
        this.current = this.maxMs;
      }
    }
    return Math.round(this.current);
  }
}

interface RestErrorLike {
  statusCode?: number;
  code?: string;
}

function restError(err: unknown): RestErrorLike {
  return typeof err === 'object' && err !== null ? err : {};
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

/** The message is gone or someone else holds it: nothing left for this listener to settle. */
function lostMessage(err: unknown): boolean {
  const { statusCode, code } = restError(err);
  return (
    (statusCode === 400 && code === 'PopReceiptMismatch') ||
    statusCode === 404 ||
    (statusCode === 409 && (code === 'QueueBeingDeleted' || code === 'QueueDisabled'))
  );
}

class Stopper {
  stopped = false;
  private wake: (() => void)[] = [];

  stop(): void {
    this.stopped = true;
    for (const resolve of this.wake.splice(0)) resolve();
  }

  /** Resolves after `ms`, or at once when stopped. */
  sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = this.wake.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake.push(done);
    });
  }
}

interface ListenerConfig {
  fn: RegisteredFunction;
  triggerName: string;
  binary: boolean;
  queue: QueueClient;
  poison: QueueClient | undefined;
}

class QueueListener {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly stopper = new Stopper();
  private readonly backoff: PollingBackoff;
  private readonly fetchVisibilitySeconds: number;
  private readonly releaseVisibilitySeconds: number;
  private readonly receiveAbort = new AbortController();
  private loop: Promise<void> | undefined;
  private queueExists: boolean | undefined;
  private warnedMissing = false;
  private pollFailing = false;
  private foundSinceLastDelay = false;

  constructor(
    readonly config: ListenerConfig,
    private readonly options: Required<Omit<QueueListenerOptions, 'env' | 'registry'>> & {
      registry: WorkerRegistry;
    },
  ) {
    const q = options.hostJson.queues;
    this.backoff = new PollingBackoff(
      MIN_POLLING_INTERVAL_MS,
      Math.max(q.maxPollingIntervalMs, MIN_POLLING_INTERVAL_MS),
    );
    this.fetchVisibilitySeconds = Math.max(1, Math.floor(options.fetchVisibilityMs / 1000));
    // The service takes whole seconds, as the .NET SDK sends a TimeSpan.
    this.releaseVisibilitySeconds = Math.floor(q.visibilityTimeoutMs / 1000);
  }

  get name(): string {
    return this.config.fn.metadata.name;
  }

  start(): void {
    this.loop = this.run().catch((err: unknown) =>
      this.options.log('error', `Queue listener for '${this.name}' stopped: ${describe(err)}`),
    );
  }

  async stop(): Promise<void> {
    this.stopper.stop();
    // A poll in progress is let finish briefly (aborting it could strand a batch for the whole lease), but
    // not for the storage SDK's full retry cycle when the account is unreachable.
    const abortPoll = setTimeout(
      () => this.receiveAbort.abort(),
      Math.min(2_000, this.options.drainTimeoutMs),
    );
    void this.loop?.finally(() => clearTimeout(abortPoll));
    let drainTimer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => {
      drainTimer = setTimeout(() => resolve('timeout'), this.options.drainTimeoutMs);
    });
    const drained = (async () => {
      await this.loop;
      await Promise.all(this.inFlight);
      return 'drained' as const;
    })();
    const outcome = await Promise.race([drained, bound]);
    clearTimeout(drainTimer);
    if (outcome === 'timeout') {
      this.receiveAbort.abort();
      this.options.log(
        'warning',
        `Queue listener for '${this.name}': ${this.inFlight.size} invocation(s) still running after ` +
          `${this.options.drainTimeoutMs} ms; their messages reappear when their visibility lapses.`,
      );
    }
  }

  private async run(): Promise<void> {
    const { queue } = this.config;
    const { batchSize, newBatchThreshold } = this.options.hostJson.queues;
    while (!this.stopper.stopped) {
      let batch: ReceivedMessageItem[];
      try {
        // Like the host: ask whether the queue exists until it does, rather than fail every poll.
        if (!this.queueExists) {
          this.queueExists = await queue.exists({ abortSignal: this.receiveAbort.signal });
          if (!this.queueExists) {
            if (!this.warnedMissing) {
              this.warnedMissing = true;
              this.options.log(
                'warning',
                `Queue '${queue.name}' (function '${this.name}') does not exist; polling until it does (the host does not create trigger queues).`,
              );
            }
            await this.backOff();
            continue;
          }
        }
        const response = await queue.receiveMessages({
          numberOfMessages: batchSize,
          visibilityTimeout: this.fetchVisibilitySeconds,
          abortSignal: this.receiveAbort.signal,
        });
        batch = response.receivedMessageItems;
        this.pollFailing = false;
      } catch (err) {
        if (this.receiveAbort.signal.aborted) return;
        // Any failure re-checks existence; a missing queue, a server error or an unreachable account backs off.
        this.queueExists = undefined;
        const { statusCode } = restError(err);
        if (!this.pollFailing) {
          this.pollFailing = true;
          this.options.log(
            'warning',
            `Polling queue '${queue.name}' failed${statusCode ? ` (${statusCode})` : ''}: ${describe(err)}; backing off.`,
          );
        }
        await this.backOff();
        continue;
      }

      if (this.stopper.stopped) {
        // Fetched while stopping: hand the batch straight back rather than leave it invisible for the lease.
        await Promise.all(batch.map((m) => this.release(m.messageId, m.popReceipt, 0)));
        return;
      }
      if (batch.length === 0) {
        await this.backOff();
        continue;
      }
      this.foundSinceLastDelay = true;
      for (const message of batch) {
        const task: Promise<void> = this.process(message)
          .catch((err: unknown) =>
            this.options.log(
              'error',
              `Queue message ${message.messageId} on '${queue.name}': ${describe(err)}`,
            ),
          )
          .finally(() => this.inFlight.delete(task));
        this.inFlight.add(task);
      }
      // QueueListener.WaitForNewBatchThreshold: fetch again only once at most newBatchThreshold are running,
      // so at most batchSize + newBatchThreshold run at once.
      while (this.inFlight.size > newBatchThreshold) await Promise.race(this.inFlight);
    }
  }

  private backOff(): Promise<void> {
    const delay = this.backoff.next(this.foundSinceLastDelay);
    this.foundSinceLastDelay = false;
    return this.stopper.sleep(delay);
  }

  private async process(message: ReceivedMessageItem): Promise<void> {
    const { queue, poison } = this.config;
    const { maxDequeueCount, messageEncoding } = this.options.hostJson.queues;
    const log = this.options.log;
    const tag = `Queue message ${message.messageId} on '${queue.name}' (DequeueCount=${message.dequeueCount})`;

    // QueueProcessor.BeginProcessingMessageAsync: a message already past the limit (its last attempt
    // crashed the host, say) goes to the poison queue without another attempt.
    if (message.dequeueCount > maxDequeueCount) {
      await this.toPoison(message, `${tag}: dequeued more than MaxDequeueCount (${maxDequeueCount}) times`);
      return;
    }
    const decoded = fromWireText(message.messageText, messageEncoding);
    if (!decoded.ok) {
      // The extension's MessageDecodingFailed handler: straight to the poison queue, as received.
      await this.toPoison(message, `${tag}: not valid base64 (host.json messageEncoding is base64)`);
      return;
    }
    const text = tryUtf8(decoded.bytes);
    const data: RpcTypedData = this.config.binary
      ? { bytes: decoded.bytes }
      : { string: text ?? decoded.bytes.toString('utf8') };

    // QueueListener's visibility timer: renew the lease at half its length while the function runs; each
    // renewal hands back a new pop receipt, which deleting or releasing the message then needs.
    let popReceipt = message.popReceipt;
    let renewing: Promise<void> | undefined;
    const renewal = setInterval(
      () => {
        if (renewing) return;
        renewing = queue
          .updateMessage(message.messageId, popReceipt, undefined, this.fetchVisibilitySeconds)
          .then(
            (r) => {
              if (r.popReceipt) popReceipt = r.popReceipt;
            },
            (err: unknown) => log('warning', `${tag}: renewing its visibility failed: ${describe(err)}`),
          )
          .finally(() => (renewing = undefined));
      },
      (this.fetchVisibilitySeconds * 1000) / 2,
    );
    let result: InvocationResult;
    try {
      result = await invoke(this.options.registry, this.config.fn, {
        invocationId: randomUUID(),
        input: { name: this.config.triggerName, data },
        triggerMetadata: toTriggerMetadata(message, text, this.name),
        traceParent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
        log,
      });
    } finally {
      clearInterval(renewal);
      await renewing;
    }
    const current = { ...message, popReceipt };

    if (result.ok) {
      await this.delete(current);
      log('information', `${tag}: completed, deleted.`);
    } else if (!poison) {
      // As the host for a queue without a poison queue: leave it invisible so it does not spin.
      log(
        'warning',
        `${tag}: failed; no poison queue for '${queue.name}', left invisible until its lease lapses.`,
      );
    } else if (message.dequeueCount >= maxDequeueCount) {
      await this.toPoison(
        current,
        `${tag}: failed; message has reached MaxDequeueCount of ${maxDequeueCount}`,
      );
    } else {
      await this.release(current.messageId, current.popReceipt, this.releaseVisibilitySeconds);
      log(
        'information',
        `${tag}: failed, visible again in ${this.releaseVisibilitySeconds}s (attempt ${message.dequeueCount} of ${maxDequeueCount}).`,
      );
    }
  }

  /** QueueProcessor.CopyMessageToPoisonQueueAsync: the original content, created on first use; then delete. */
  private async toPoison(message: ReceivedMessageItem, why: string): Promise<void> {
    const { poison } = this.config;
    if (!poison) {
      this.options.log('warning', `${why}; no poison queue for it, left invisible until its lease lapses.`);
      return;
    }
    this.options.log('warning', `${why}. Moving message to queue '${poison.name}'.`);
    await poison.createIfNotExists();
    await poison.sendMessage(message.messageText);
    await this.delete(message);
  }

  private async delete(message: ReceivedMessageItem): Promise<void> {
    try {
      await this.config.queue.deleteMessage(message.messageId, message.popReceipt);
    } catch (err) {
      if (!lostMessage(err)) throw err;
    }
  }

  private async release(messageId: string, popReceipt: string, visibilitySeconds: number): Promise<void> {
    try {
      await this.config.queue.updateMessage(messageId, popReceipt, undefined, visibilitySeconds);
    } catch (err) {
      if (!lostMessage(err)) throw err;
    }
  }
}

/**
 * Polls the queue of every registered `queueTrigger` function and invokes it through the app's programming
 * model, with the Functions host's semantics and host.json's `extensions.queues` values:
 * - queue name: `%SETTING%` resolved, lowercased, validated; a function whose binding does not resolve is
 *   reported and skipped, as the host puts it in error and runs the rest. Trigger queues are not created
 *   (the host only polls until they exist); `<queue>-poison` is created when first used.
 * - fetch `batchSize` messages invisible for 10 minutes (renewed at half while running); fetch again once at
 *   most `newBatchThreshold` are running; empty polls back off from 100 ms, doubling (±20 %) up to
 *   `maxPollingInterval`, reset by a non-empty poll.
 * - success deletes the message; failure makes it visible again after `visibilityTimeout`, or at
 *   `maxDequeueCount` copies the original (still encoded) text to `<queue>-poison` and deletes it. Text that
 *   is not base64 under `messageEncoding: base64` goes to the poison queue without an invocation.
 * Logs ids and counts, never bodies. Side effects: storage requests on the triggers' accounts.
 */
export function startQueueListeners(options: QueueListenerOptions): RunningQueueListeners {
  const env = options.env ?? process.env;
  const listeners: QueueListener[] = [];
  const clients = new Map<string, QueueServiceClient>();
  for (const fn of options.registry.functions) {
    const [triggerName, binding] = options.registry.triggerOf(fn);
    if (binding.type.toLowerCase() !== 'queuetrigger') continue;
    try {
      if (typeof binding.queueName !== 'string')
        throw new Error('its queueTrigger binding has no queueName.');
      const queueName = normalizeQueueName(resolveSettings(binding.queueName, env));
      const connectionString = connectionStringFor(binding.connection, env);
      let service = clients.get(connectionString);
      if (!service) {
        service = QueueServiceClient.fromConnectionString(connectionString);
        clients.set(connectionString, service);
      }
      const poisonName = poisonQueueNameFor(queueName);
      listeners.push(
        new QueueListener(
          {
            fn,
            triggerName,
            binary: binding.dataType === 'binary',
            queue: service.getQueueClient(queueName),
            poison: poisonName ? service.getQueueClient(poisonName) : undefined,
          },
          {
            registry: options.registry,
            hostJson: options.hostJson,
            log: options.log,
            fetchVisibilityMs: options.fetchVisibilityMs ?? HOST_FETCH_VISIBILITY_MS,
            drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
          },
        ),
      );
    } catch (err) {
      options.log('error', `The '${fn.metadata.name}' function is in error: ${describe(err)}`);
    }
  }
  for (const listener of listeners) listener.start();
  return {
    listeners: listeners.map((l) => ({
      functionName: l.name,
      queueName: l.config.queue.name,
    })),
    stop: async () => {
      await Promise.all(listeners.map((l) => l.stop()));
    },
  };
}
