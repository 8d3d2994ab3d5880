// Section 3: a deferred backlog drained by a freshly started host (cold per-user token caches, as
// after a scale-out or a restart), against the ceiling the host's queue settings allow.
import { QueueClient } from '@azure/storage-queue';
import { startFunctionHost, type FunctionHostProcess } from '../dev/host-process';
import { readHostJson } from '../dev/settings';
import type { LocalStack } from '../dev/stack';
import { devUser } from '../dev/standins/identities';
import { enqueueDeferredNotification } from '../shared/queue/enqueue';
import { round, runClosedLoop } from './load';

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
}

export async function measureDrain(options: {
  stack: LocalStack;
  /** A running host of the app, to register the users through (stopped before the drain). */
  host: FunctionHostProcess;
  settings: Record<string, string>;
  users: number;
  messages: number;
  graphLatencyMs: number;
}): Promise<{ row: DrainRow; host: FunctionHostProcess }> {
  const { stack } = options;
  const users = Array.from({ length: options.users }, (_, i) => devUser(`bench-drain-user-${i}`));
  // Opt-in as the client app does it: each user's token through PUT /api/me/registration.
  const tokens = await Promise.all(users.map((u) => stack.entra!.issueUserToken({ user: u.oid })));
  const registered = await runClosedLoop({
    count: users.length,
    concurrency: 10,
    expectStatus: 204,
    send: async (i) => {
      const res = await fetch(`${options.host.url}/api/me/registration`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${tokens[i]}` },
        signal: AbortSignal.timeout(30_000),
      });
      await res.arrayBuffer();
      return res.status;
    },
  });
  if (registered.failed > 0) throw new Error(`registration failed: ${JSON.stringify(registered.failures)}`);
  // The backlog builds up while no host runs, so the drain starts with all of it waiting.
  await options.host.stop();

  const queueName = options.settings.NOTIFICATIONS_QUEUE || 'notifications-deferred';
  const queue = new QueueClient(options.settings.AzureWebJobsStorage!, queueName);
  const poison = new QueueClient(options.settings.AzureWebJobsStorage!, `${queueName}-poison`);
  await queue.clearMessages();
  await poison.clearMessages();
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

  const host = await startFunctionHost({ settings: options.settings, port: 0 });
  const started = Date.now();
  const deadline = started + 180_000;
  let delivered = 0;
  for (;;) {
    delivered = stack.graph!.attempts.filter((a) => a.method === 'POST' && a.status === 201).length;
    if (delivered >= options.messages && ((await queue.getProperties()).approximateMessagesCount ?? 0) === 0)
      break;
    if (Date.now() > deadline) throw new Error(`drain did not finish in 180 s (${delivered} delivered)`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const drainSeconds = (Date.now() - started) / 1000;
  const posts = stack.graph!.attempts.filter((a) => a.method === 'POST' && a.status === 201);
  const times = posts.map((a) => Date.parse(a.at)).sort((a, b) => a - b);
  const steadySeconds = (times[times.length - 1]! - times[0]!) / 1000;
  const poisoned = (await poison.getProperties()).approximateMessagesCount ?? 0;

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
    },
  };
}
