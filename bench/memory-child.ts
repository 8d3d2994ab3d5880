// The token service's memory under many users, in a fresh process: the parent (bench/run.ts)
// sends batches of distinct users' access tokens over IPC; each goes through the real
// TokenService's OBO exchange against the Entra stand-in, as it would in the app. On `measure`
// it reports RSS and heap after a full GC (run with --expose-gc) and the partitions held.
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
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
  | ({ type: 'measured'; label: string; partitions: number; users: number } & MemoryBreakdown);

/** Where the resident memory is: V8's heap, memory V8 knows of outside it, and what the kernel counts. */
export interface MemoryBreakdown {
  rssMb: number;
  heapUsedMb: number;
  /** What V8 holds for its heap (used or not): committed pages count in RSS. */
  heapTotalMb: number;
  /** Of that, the young generation (semi-spaces), which grows under allocation pressure and is not shrunk by a full GC. */
  newSpaceMb: number;
  /** Memory of C++ objects bound to JS ones, ArrayBuffers included (Buffers, TLS state V8 is told of). */
  externalMb: number;
  arrayBuffersMb: number;
  /** /proc/self/status: anonymous (malloc, V8) and file-backed (code, mapped libraries) resident memory. */
  rssAnonMb: number;
  rssFileMb: number;
  /** Open handles and requests by type (TCPSocketWrap = sockets). */
  resources: Record<string, number>;
}

function procStatusMb(field: string): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export function memoryBreakdown(): MemoryBreakdown {
  const memory = process.memoryUsage();
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  return {
    rssMb: memory.rss / 2 ** 20,
    heapUsedMb: memory.heapUsed / 2 ** 20,
    heapTotalMb: memory.heapTotal / 2 ** 20,
    newSpaceMb:
      (getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0) / 2 ** 20,
    externalMb: memory.external / 2 ** 20,
    arrayBuffersMb: memory.arrayBuffers / 2 ** 20,
    rssAnonMb: procStatusMb('RssAnon'),
    rssFileMb: procStatusMb('RssFile'),
    resources,
  };
}

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
      send({
        type: 'measured',
        label: message.label,
        ...memoryBreakdown(),
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
