import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { QueueServiceClient, type QueueClient } from '@azure/storage-queue';
import type { RunningAzurite } from '../../dev/azurite';
import { startFunctionHost, type FunctionHostProcess } from '../../dev/host-process';
import {
  fromWireText,
  normalizeQueueName,
  PollingBackoff,
  poisonQueueNameFor,
  resolveSettings,
  toTriggerMetadata,
} from '../../dev/host/queue';
import { APP_ROOT, readHostJson } from '../../dev/settings';
import { buildFixtureApp, startReportServer } from '../support/fixture-app';
import { eventually } from '../support/stack';
import { startAzuriteOnFreePorts } from '../../dev/stack';
import type { FixtureReport } from '../fixtures/queue-app/index';

// The local host's queue trigger against real Azurite, the host running as its own process on a fixture app,
// observed from the far side: what the function received (it reports over HTTP) and what is left in the
// queues. The fixture's host.json keeps batches small and timeouts short so retries take seconds.

const FIXTURE_SOURCE = path.join(APP_ROOT, 'test', 'fixtures', 'queue-app');
// Under .local (git- and lint-ignored) so that Node still finds @azure/functions in the repository's node_modules.
const FIXTURE_APP = path.join(APP_ROOT, '.local', 'test-apps', `queue-app-${process.pid}`);
const HOST_MAIN = path.join(APP_ROOT, 'dist', 'dev', 'host', 'main.js');

let azurite: RunningAzurite;
let service: QueueServiceClient;
let reports: FixtureReport[] = [];
let reportServer: Awaited<ReturnType<typeof startReportServer>> | undefined;
let reportUrl: string;
let host: FunctionHostProcess | undefined;

/** What the host moved to `<queue>-poison` (created on first use), once something is there. */
async function poisonedIn(queue: QueueClient) {
  const poison = service.getQueueClient(`${queue.name}-poison`);
  return waitFor('the poison message', async () => {
    if (!(await poison.exists())) return undefined;
    const { peekedMessageItems } = await poison.peekMessages();
    return peekedMessageItems.length > 0 ? peekedMessageItems : undefined;
  });
}

/** `eventually`, with the host's output in the failure (it says why a message did not arrive). */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
) {
  try {
    return await eventually(probe, { what, timeoutMs });
  } catch (err) {
    throw new Error(`${(err as Error).message}\nHost output:\n${host?.output() ?? ''}`);
  }
}

/** A fresh queue per test, created as the app's senders would. */
async function newQueue(): Promise<QueueClient> {
  const queue = service.getQueueClient(`q-${randomBytes(6).toString('hex')}`);
  await queue.create();
  return queue;
}

function base64(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64');
}

async function startHost(
  queueSetting: string,
  extra: Record<string, string> = {},
): Promise<FunctionHostProcess> {
  host = await startFunctionHost({
    appRoot: FIXTURE_APP,
    port: 0,
    settings: {
      AzureWebJobsStorage: azurite.connectionString,
      FIXTURE_QUEUE: queueSetting,
      FIXTURE_REPORT_URL: reportUrl,
      ...extra,
    },
  });
  return host;
}

/** Messages still in the queue, visible or not (a deleted message no longer counts). */
async function messagesIn(queue: QueueClient): Promise<number> {
  return (await queue.getProperties()).approximateMessagesCount ?? 0;
}

function ofMessage(n: number): FixtureReport[] {
  return reports.filter((r) => (r.message as { n?: number } | null)?.n === n);
}

beforeAll(async () => {
  if (!existsSync(HOST_MAIN)) throw new Error(`${HOST_MAIN} is missing: run npm run build first.`);
  buildFixtureApp(FIXTURE_SOURCE, FIXTURE_APP);
  azurite = await startAzuriteOnFreePorts(undefined);
  service = QueueServiceClient.fromConnectionString(azurite.connectionString);
  reportServer = await startReportServer<FixtureReport>((report) => reports.push(report));
  reportUrl = reportServer.url;
});

afterEach(async () => {
  await host?.stop();
  host = undefined;
  reports = [];
});

afterAll(async () => {
  await azurite?.stop();
  await reportServer?.close();
  rmSync(FIXTURE_APP, { recursive: true, force: true });
});

describe('local host: storage queue trigger', () => {
  it('delivers a base64 message once, with the host trigger metadata, then deletes it', async () => {
    const queue = await newQueue();
    const body = { n: 1, text: 'grüße' };
    const sent = await queue.sendMessage(base64(body));
    // The setting in capitals: the host lowercases queue names it resolves.
    const running = await startHost(queue.name.toUpperCase());
    expect(running.output()).toContain(`record: queueTrigger (queue '${queue.name}')`);

    await waitFor('the message to be deleted', async () =>
      ofMessage(1).some((r) => r.event === 'end') && (await messagesIn(queue)) === 0 ? true : undefined,
    );
    const starts = ofMessage(1).filter((r) => r.event === 'start');
    expect(starts).toHaveLength(1);
    const [start] = starts;
    expect(start?.functionName).toBe('record');
    expect(start?.message).toEqual(body);
    const meta = start?.triggerMetadata ?? {};
    expect(meta.id).toBe(sent.messageId);
    expect(meta.dequeueCount).toBe(1);
    expect(new Date(String(meta.insertionTime)).getTime()).toBe(sent.insertedOn.getTime());
    expect(new Date(String(meta.expirationTime)).getTime()).toBe(sent.expiresOn.getTime());
    expect(new Date(String(meta.nextVisibleTime)).getTime()).toBeGreaterThan(Date.now());
    expect(typeof meta.popReceipt).toBe('string');
    // QueueTrigger is the message text; @azure/functions JSON-parses it like the input.
    expect(meta.queueTrigger).toEqual(body);
    expect(meta.sys).toMatchObject({ methodName: 'record' });
  });

  it('retries a failing message up to maxDequeueCount, then moves its original text to <queue>-poison', async () => {
    const queue = await newQueue();
    const { maxDequeueCount } = readHostJson(FIXTURE_SOURCE).queues;
    const original = base64({ n: 2, fail: true, secret: 'do-not-log-me' });
    const sent = await queue.sendMessage(original);
    await startHost(queue.name);
    const [moved] = await poisonedIn(queue);
    expect(moved?.messageText).toBe(original);
    await waitFor('the original to be deleted', async () =>
      (await messagesIn(queue)) === 0 ? true : undefined,
    );
    const counts = ofMessage(2).map((r) => r.triggerMetadata?.dequeueCount);
    expect(counts).toEqual(Array.from({ length: maxDequeueCount }, (_, i) => i + 1));
    expect(ofMessage(2).every((r) => r.event === 'start')).toBe(true);

    const output = host?.output() ?? '';
    expect(output).toContain(`Queue message ${sent.messageId}`);
    expect(output).toContain(`Moving message to queue '${queue.name}-poison'`);
    expect(output).not.toContain('do-not-log-me');
    expect(output).not.toContain(original);
  });

  it('moves text that is not base64 to the poison queue as received, without invoking the function', async () => {
    const queue = await newQueue();
    // Sent raw: @azure/storage-queue does not encode, so this is what the host reads off the wire.
    await queue.sendMessage('plain text, not base64!');
    await startHost(queue.name);
    const [moved] = await poisonedIn(queue);
    expect(moved?.messageText).toBe('plain text, not base64!');
    await waitFor('the original to be deleted', async () =>
      (await messagesIn(queue)) === 0 ? true : undefined,
    );
    expect(reports).toHaveLength(0);
  });

  it('runs at most batchSize + newBatchThreshold invocations at once, each message once', async () => {
    const queue = await newQueue();
    const { batchSize, newBatchThreshold } = readHostJson(FIXTURE_SOURCE).queues;
    const count = 24;
    // Uneven durations, so that new batches are fetched while older ones are still running.
    for (let n = 100; n < 100 + count; n++)
      await queue.sendMessage(base64({ n, delayMs: 150 + (n % 4) * 150 }));
    await startHost(queue.name);

    await waitFor('every message to complete', () =>
      new Set(reports.filter((r) => r.event === 'end').map((r) => (r.message as { n: number }).n)).size ===
      count
        ? true
        : undefined,
    );
    const starts = reports.filter((r) => r.event === 'start');
    expect(starts).toHaveLength(count);
    const maxInFlight = Math.max(...starts.map((r) => r.inFlight));
    expect(maxInFlight).toBeLessThanOrEqual(batchSize + newBatchThreshold);
    expect(maxInFlight).toBeGreaterThan(batchSize);
    await waitFor('the queue to empty', async () => ((await messagesIn(queue)) === 0 ? true : undefined));
  });

  it('loses nothing when the host is killed mid-invocation: the messages come back after their lease', async () => {
    const queue = await newQueue();
    // One batch, so that all of them are running when the host dies.
    const ns = [200, 201, 202, 203];
    // Long on the first delivery (the fixture runs fast on redelivery) and longer than the 2 s lease: only
    // the renewal keeps the first host's messages from being delivered twice.
    for (const n of ns) await queue.sendMessage(base64({ n, delayMs: 5_000 }));
    const lease = { LOCAL_HOST_QUEUE_FETCH_VISIBILITY_SECONDS: '2' };
    const first = await startHost(queue.name, lease);
    const started = await waitFor('the batch to be running', () => {
      const s = reports.filter((r) => r.event === 'start');
      return s.length === ns.length ? s : undefined;
    });
    const leaseEnds = Math.max(
      ...started.map((r) => new Date(String(r.triggerMetadata?.nextVisibleTime)).getTime()),
    );
    await waitFor('the first lease to have lapsed', () =>
      Date.now() > leaseEnds + 1_000 ? true : undefined,
    );
    await first.kill();
    const before = reports.filter((r) => r.event === 'start').map((r) => (r.message as { n: number }).n);
    expect(before.sort()).toEqual(ns);
    expect(reports.filter((r) => r.event === 'end')).toHaveLength(0);

    await startHost(queue.name, lease);
    await waitFor('every message to complete', () =>
      ns.every((n) => ofMessage(n).some((r) => r.event === 'end')) ? true : undefined,
    );
    await waitFor('the queue to empty', async () => ((await messagesIn(queue)) === 0 ? true : undefined));
    for (const n of before) {
      expect(ofMessage(n).find((r) => r.event === 'end')?.triggerMetadata?.dequeueCount).toBe(2);
    }
  });
});

describe('queue trigger edges', () => {
  it('decodes base64 strictly, as .NET does, and passes text through under messageEncoding none', () => {
    expect(fromWireText(' eyJhIjox\nfQ== ', 'base64')).toEqual({ ok: true, bytes: Buffer.from('{"a":1}') });
    expect(fromWireText('{"a":1}', 'base64')).toEqual({ ok: false });
    expect(fromWireText('abc', 'base64')).toEqual({ ok: false });
    expect(fromWireText('{"a":1}', 'none')).toEqual({ ok: true, bytes: Buffer.from('{"a":1}') });
  });

  it('resolves %SETTING% names and normalises queue names as the host does', () => {
    expect(normalizeQueueName(resolveSettings('%Q%', { Q: 'Notifications' }))).toBe('notifications');
    expect(() => resolveSettings('%MISSING%', {})).toThrow(/'%MISSING%' does not resolve/);
    expect(() => normalizeQueueName('a--b')).toThrow(/Invalid queue name/);
    expect(poisonQueueNameFor('orders')).toBe('orders-poison');
    expect(poisonQueueNameFor('orders-poison')).toBeUndefined();
    expect(poisonQueueNameFor('a'.repeat(60))).toBeUndefined();
  });

  it('backs off from 100 ms, doubling up to the maximum, and starts over after messages', () => {
    const backoff = new PollingBackoff(100, 1_000, () => 0.5);
    expect([1, 2, 3, 4, 5, 6, 7].map(() => backoff.next(false))).toEqual([
      100, 200, 300, 500, 900, 1_000, 1_000,
    ]);
    expect(backoff.next(true)).toBe(100);
  });

  it('sends metadata in the typed-data forms the host uses', () => {
    const when = new Date('2030-01-02T03:04:05.000Z');
    const meta = toTriggerMetadata(
      {
        messageId: 'id-1',
        popReceipt: 'pop',
        dequeueCount: 2,
        insertedOn: when,
        expiresOn: when,
        nextVisibleOn: when,
        messageText: 'ignored',
      },
      'hello',
      'fn',
    );
    expect(meta).toMatchObject({
      QueueTrigger: { string: 'hello' },
      DequeueCount: { json: '2' },
      Id: { string: 'id-1' },
      PopReceipt: { string: 'pop' },
      InsertionTime: { json: '"2030-01-02T03:04:05+00:00"' },
    });
  });
});
