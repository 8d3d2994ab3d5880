// The token service's memory under many users, in a fresh process: the parent (bench/run.ts)
// sends batches of distinct users' access tokens over IPC; each goes through the real
// TokenService's OBO exchange against the Entra stand-in, as it would in the app. On `measure`
// it reports RSS and heap after a full GC (run with --expose-gc) and the partitions held.
import { TokenService } from '../shared/auth/token-service';
import { loadConfig } from '../shared/config';

export interface MemoryUser {
  tenantId: string;
  userId: string;
  assertion: string;
}

export type ToMemoryChild =
  | { type: 'users'; users: MemoryUser[]; concurrency: number }
  | { type: 'measure'; label: string }
  | { type: 'exit' };

export type FromMemoryChild =
  | { type: 'ready' }
  | { type: 'batch'; exchanged: number; failed: number }
  | { type: 'measured'; label: string; rssMb: number; heapUsedMb: number; partitions: number; users: number };

const config = loadConfig(process.env);
const maxPartitions = process.env.BENCH_MAX_PARTITIONS ? Number(process.env.BENCH_MAX_PARTITIONS) : undefined;
const tokens = new TokenService(config, maxPartitions ? { maxPartitions } : {});
let users = 0;

function send(message: FromMemoryChild): void {
  process.send?.(message);
}

async function exchange(batch: MemoryUser[], concurrency: number): Promise<{ failed: number }> {
  let next = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < batch.length; i = next++) {
      const user = batch[i]!;
      try {
        await tokens.onBehalfOf({
          ...user,
          scopes: ['Notifications.Send'],
          expiresAt: new Date(Date.now() + 3600_000),
        });
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  users += batch.length;
  return { failed };
}

process.on('message', (message: ToMemoryChild) => {
  switch (message.type) {
    case 'users':
      void exchange(message.users, message.concurrency).then(({ failed }) =>
        send({ type: 'batch', exchanged: message.users.length - failed, failed }),
      );
      return;
    case 'measure': {
      // Twice: the first collection can leave finalizable objects for the second.
      global.gc?.();
      global.gc?.();
      const memory = process.memoryUsage();
      send({
        type: 'measured',
        label: message.label,
        rssMb: memory.rss / 2 ** 20,
        heapUsedMb: memory.heapUsed / 2 ** 20,
        partitions: tokens.partitionCount,
        users,
      });
      return;
    }
    case 'exit':
      process.exit(0);
  }
});
send({ type: 'ready' });
