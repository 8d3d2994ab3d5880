import { QueueClient } from '@azure/storage-queue';
import type { FunctionHostProcess } from '../dev/host-process';
import type { LocalStack } from '../dev/stack';
import { runClosedLoop } from './load';

/**
 * Prepares a queue backlog row: the users opt in as the client app does it (each one's token through
 * PUT /api/me/registration), the host stops — so the backlog builds up while none runs and the drain
 * starts with all of it waiting — and the deferred queue and its poison queue are emptied.
 */
export async function registerAndEmptyQueues(options: {
  stack: LocalStack;
  host: FunctionHostProcess;
  settings: Record<string, string>;
  users: ReadonlyArray<{ oid: string }>;
  concurrency: number;
}): Promise<{ queue: QueueClient; poison: QueueClient }> {
  const { stack, host, users } = options;
  const tokens = await Promise.all(users.map((u) => stack.entra!.issueUserToken({ user: u.oid })));
  const registered = await runClosedLoop({
    count: users.length,
    concurrency: options.concurrency,
    expectStatus: 204,
    send: async (i) => {
      const res = await fetch(`${host.url}/api/me/registration`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${tokens[i]}` },
        signal: AbortSignal.timeout(30_000),
      });
      await res.arrayBuffer();
      return res.status;
    },
  });
  if (registered.failed > 0) throw new Error(`registration failed: ${JSON.stringify(registered.failures)}`);
  await host.stop();

  const queueName = options.settings.NOTIFICATIONS_QUEUE || 'notifications-deferred';
  const queue = new QueueClient(options.settings.AzureWebJobsStorage!, queueName);
  const poison = new QueueClient(options.settings.AzureWebJobsStorage!, `${queueName}-poison`);
  await queue.clearMessages();
  await poison.clearMessages();
  return { queue, poison };
}
