// Section 3: a deferred backlog drained by a freshly started host (cold per-user token caches, as
// after a scale-out or a restart), against the ceiling the host's queue settings allow.
import { QueueClient } from '@azure/storage-queue';
import { startFunctionHost, type FunctionHostProcess } from '../dev/host-process';
import { readHostJson } from '../dev/settings';
import type { LocalStack } from '../dev/stack';
import { devUser } from '../dev/standins/identities';
import { enqueueDeferredNotification } from '../shared/queue/enqueue';
import { floorSettings, floorStats, graphTokenFor, FLOOR_QUEUE, type FloorStats } from './floor';
import { registerAndEmptyQueues } from './backlog';
import { round, runClosedLoop } from './load';
import { tableCostPer, type TableMeter } from './table-meter';

export interface DrainRow {
  users: number;
  messages: number;
  graphLatencyMs: number;
  batchSize: number;
  newBatchThreshold: number;
  /** At most batchSize + newBatchThreshold invocations run at once (QueueListener). */
  maxConcurrentInvocations: number;
  ceilingPerSecond: number;
  /** From the host being ready to the queue being empty (every message deleted). */
  drainSeconds: number;
  messagesPerSecond: number;
  /** First to last Graph delivery: the steady rate, without the start-up and the final deletes. */
  steadyPerSecond: number;
  ofCeiling: number;
  delivered: number;
  poisoned: number;
  refreshesPerMessage: number;
  vaultReadsPerMessage: number;
  vaultOpsPerMessage: number;
  identityCallsPerMessage: number;
  /** The delivery ledger's table requests per message (claim, state writes), writes among them, and their time. */
  tableOpsPerMessage: number;
  tableWritesPerMessage: number;
  tableMsPerMessage: number;
}

export async function measureDrain(options: {
  stack: LocalStack;
  /** A running host of the app, to register the users through (stopped before the drain). */
  host: FunctionHostProcess;
  settings: Record<string, string>;
  users: number;
  messages: number;
  graphLatencyMs: number;
  /** Counts the ledger's table requests (the host's settings must point at it). */
  table: TableMeter;
}): Promise<{ row: DrainRow; host: FunctionHostProcess }> {
  const { stack } = options;
  const users = Array.from({ length: options.users }, (_, i) => devUser(`bench-drain-user-${i}`));
  const { queue, poison } = await registerAndEmptyQueues({
    stack,
    host: options.host,
    settings: options.settings,
    users: users,
    concurrency: 10,
  });
  const enqueued = await runClosedLoop({
    count: options.messages,
    concurrency: 32,
    expectStatus: 0,
    send: async (n) => {
      const user = users[n % users.length]!;
      await enqueueDeferredNotification(queue, {
        userId: user.oid,
        tenantId: user.tid,
        notification: { payload: { visualContent: { title: `Deferred ${n}` } } },
        correlationId: `bench-${n}`,
      });
      return 0;
    },
  });
  if (enqueued.failed > 0) throw new Error(`enqueueing failed: ${JSON.stringify(enqueued.failures)}`);

  stack.graph!.reset();
  const refreshesBefore = stack.entra!.count('refresh_token');
  const identityBefore = stack.entra!.requests.length;
  const vaultReadsBefore = stack.keyVault!.count('get');
  const vaultBefore = stack.keyVault!.operations.length;
  const tableBefore = options.table.counts();

  const host = await startFunctionHost({ settings: options.settings, port: 0 });
  const { delivered, drainSeconds, steadySeconds } = await waitForDrain(stack, queue, options.messages);
  const poisoned = (await poison.getProperties()).approximateMessagesCount ?? 0;

  const table = tableCostPer(tableBefore, options.table.counts(), options.messages);
  const hostJson = readHostJson();
  const { batchSize, newBatchThreshold } = hostJson.queues;
  const maxConcurrent = batchSize + newBatchThreshold;
  const ceiling = maxConcurrent / (options.graphLatencyMs / 1000);
  const perSecond = options.messages / drainSeconds;
  const n = options.messages;
  return {
    host,
    row: {
      users: options.users,
      messages: n,
      graphLatencyMs: options.graphLatencyMs,
      batchSize,
      newBatchThreshold,
      maxConcurrentInvocations: maxConcurrent,
      ceilingPerSecond: round(ceiling, 1),
      drainSeconds: round(drainSeconds, 2),
      messagesPerSecond: round(perSecond, 1),
      steadyPerSecond: round((n - 1) / steadySeconds, 1),
      ofCeiling: round(perSecond / ceiling, 3),
      delivered,
      poisoned,
      refreshesPerMessage: round((stack.entra!.count('refresh_token') - refreshesBefore) / n, 4),
      vaultReadsPerMessage: round((stack.keyVault!.count('get') - vaultReadsBefore) / n, 4),
      vaultOpsPerMessage: round((stack.keyVault!.operations.length - vaultBefore) / n, 4),
      identityCallsPerMessage: round((stack.entra!.requests.length - identityBefore) / n, 4),
      tableOpsPerMessage: table.tableOpsPer,
      tableWritesPerMessage: table.tableWritesPer,
      tableMsPerMessage: table.tableMsPer,
    },
  };
}

/** Polls until `messages` Graph deliveries were seen and the queue is empty; times from the call. */
async function waitForDrain(
  stack: LocalStack,
  queue: QueueClient,
  messages: number,
): Promise<{ delivered: number; drainSeconds: number; steadySeconds: number }> {
  const started = Date.now();
  const deadline = started + 180_000;
  let delivered = 0;
  for (;;) {
    delivered = stack.graph!.attempts.filter((a) => a.method === 'POST' && a.status === 201).length;
    if (delivered >= messages && ((await queue.getProperties()).approximateMessagesCount ?? 0) === 0) break;
    if (Date.now() > deadline) throw new Error(`drain did not finish in 180 s (${delivered} delivered)`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const drainSeconds = (Date.now() - started) / 1000;
  const posts = stack.graph!.attempts.filter((a) => a.method === 'POST' && a.status === 201);
  const times = posts.map((a) => Date.parse(a.at)).sort((a, b) => a - b);
  return { delivered, drainSeconds, steadySeconds: (times[times.length - 1]! - times[0]!) / 1000 };
}

export interface DrainFloorRow {
  messages: number;
  drainSeconds: number;
  messagesPerSecond: number;
  steadyPerSecond: number;
  delivered: number;
  /** The floor function's own Graph POST time, mean (the stand-in's latency plus the machine's). */
  graphMsMean: number;
  /** Graph POSTs in flight, time-weighted over first to last delivery (Little: rate × POST time), and the most seen. */
  meanInFlight: number;
  maxInFlight: number;
  /** What the host's cap allows at the floor's own POST time: maxConcurrentInvocations ÷ graphMsMean. */
  capAtMeasuredLatencyPerSecond: number;
  /** Azurite alone: receive (16 at a time, two receivers) and delete, no function, no Graph. */
  azuriteOnlyPerSecond: number;
  /** The app's drain rate as a ratio of this floor's (overall, and steady to steady). */
  appOverFloor: number;
  appSteadyOverFloorSteady: number;
}

async function enqueueRaw(queue: QueueClient, messages: number): Promise<void> {
  const body = Buffer.from(JSON.stringify({ floor: true })).toString('base64');
  const enqueued = await runClosedLoop({
    count: messages,
    concurrency: 32,
    expectStatus: 0,
    send: async () => {
      await queue.sendMessage(body);
      return 0;
    },
  });
  if (enqueued.failed > 0) throw new Error(`enqueueing failed: ${JSON.stringify(enqueued.failures)}`);
}

/**
 * The drain's floor: the same number of messages, on the same local host, Azurite, host.json and Graph
 * stand-in, drained by the floor function app (one Graph POST per message with a token it holds);
 * then the same backlog received and deleted by Azurite alone, to see what limits the floor itself.
 */
export async function measureDrainFloor(options: {
  stack: LocalStack;
  settings: Record<string, string>;
  floorApp: string;
  messages: number;
  app: DrainRow;
}): Promise<DrainFloorRow> {
  const { stack } = options;
  const user = devUser('bench-drain-floor-user');
  const graphToken = await graphTokenFor(stack, await stack.entra!.issueUserToken({ user: user.oid }));
  const queue = new QueueClient(options.settings.AzureWebJobsStorage!, FLOOR_QUEUE);
  await queue.createIfNotExists();
  await queue.clearMessages();
  await enqueueRaw(queue, options.messages);
  stack.graph!.reset();
  const host = await startFunctionHost({
    settings: floorSettings(options.settings, graphToken),
    port: 0,
    appRoot: options.floorApp,
  });
  let timing: Awaited<ReturnType<typeof waitForDrain>>;
  let stats: FloorStats;
  try {
    timing = await waitForDrain(stack, queue, options.messages);
    stats = await floorStats(host.url);
  } finally {
    await host.stop();
  }
  stack.graph!.reset();

  // Azurite alone, as the host's listener uses it (batches of 16, up to two batches in flight).
  await enqueueRaw(queue, options.messages);
  const azuriteStarted = performance.now();
  let left = options.messages;
  const receiver = async (): Promise<void> => {
    while (left > 0) {
      const { receivedMessageItems } = await queue.receiveMessages({ numberOfMessages: 16 });
      if (receivedMessageItems.length === 0) break;
      left -= receivedMessageItems.length;
      await Promise.all(receivedMessageItems.map((m) => queue.deleteMessage(m.messageId, m.popReceipt)));
    }
  };
  await Promise.all([receiver(), receiver()]);
  const azuriteSeconds = (performance.now() - azuriteStarted) / 1000;
  await queue.clearMessages();

  const { batchSize, newBatchThreshold } = readHostJson().queues;
  const perSecond = options.messages / timing.drainSeconds;
  const steady = (options.messages - 1) / timing.steadySeconds;
  return {
    messages: options.messages,
    drainSeconds: round(timing.drainSeconds, 2),
    messagesPerSecond: round(perSecond, 1),
    steadyPerSecond: round(steady, 1),
    delivered: timing.delivered,
    graphMsMean: round(stats.graphMsMean, 1),
    meanInFlight: round((stats.posts * stats.graphMsMean) / 1000 / timing.steadySeconds, 1),
    maxInFlight: stats.maxInFlight,
    capAtMeasuredLatencyPerSecond: round((batchSize + newBatchThreshold) / (stats.graphMsMean / 1000), 1),
    azuriteOnlyPerSecond: round((options.messages - Math.max(left, 0)) / azuriteSeconds, 1),
    appOverFloor: round(options.app.messagesPerSecond / perSecond, 2),
    appSteadyOverFloorSteady: round(options.app.steadyPerSecond / steady, 2),
  };
}
