// Section 5: RSS of the real token service after many distinct users, in a child process, against
// an Entra stand-in of its own (no added latency: the figure is memory, and 100,000 exchanges at
// 80 ms each would only make the run longer).
import { fork } from 'node:child_process';
import path from 'node:path';
import { startEntraStandIn } from '../dev/standins/entra';
import { API_APP, DEV_TENANT_ID, devUser } from '../dev/standins/identities';
import type { LocalTls } from '../dev/tls';
import { round } from './load';
import type { FromMemoryChild, MemoryBreakdown, MemoryUser, ToMemoryChild } from './memory-child';

export interface MemoryRow extends Omit<MemoryBreakdown, 'resources'> {
  label: string;
  users: number;
  partitions: number;
  maxPartitions: number;
  /** Open sockets (TCPSocketWrap) and all open handles of the child at the measurement. */
  sockets: number;
  handles: number;
}

const BATCH = 500;
const CONCURRENCY = 32;
const DEFAULT_MAX_PARTITIONS = 1000;

export async function measureMemory(options: {
  tls: LocalTls;
  settings: Record<string, string>;
  small: number;
  large: number;
  log: (line: string) => void;
}): Promise<{ rows: MemoryRow[]; seconds: number }> {
  const entra = await startEntraStandIn({ tls: options.tls, port: 0 });
  const child = fork(path.join(__dirname, 'memory-child.js'), [], {
    // BENCH_MEMORY_NODE_FLAGS: for experiments on V8's heap sizing (--max-semi-space-size=1, say).
    execArgv: ['--expose-gc', ...(process.env.BENCH_MEMORY_NODE_FLAGS?.split(' ').filter(Boolean) ?? [])],
    env: {
      PATH: process.env.PATH ?? '',
      // For experiments on the allocator (MALLOC_ARENA_MAX=2, say): passed through when set.
      ...(process.env.BENCH_MEMORY_MALLOC_ARENA_MAX
        ? { MALLOC_ARENA_MAX: process.env.BENCH_MEMORY_MALLOC_ARENA_MAX }
        : {}),
      NODE_EXTRA_CA_CERTS: options.tls.caPath,
      ...options.settings,
      ENTRA_AUTHORITY_HOST: entra.url,
      ENTRA_TENANT_ID: DEV_TENANT_ID,
      ENTRA_CLIENT_ID: API_APP.clientId,
      ENTRA_CLIENT_SECRET: API_APP.clientSecret,
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting: ((m: FromMemoryChild) => void)[] = [];
  child.on('message', (m: FromMemoryChild) => waiting.shift()?.(m));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const next = (): Promise<FromMemoryChild> =>
    Promise.race([
      new Promise<FromMemoryChild>((resolve) => waiting.push(resolve)),
      exited.then(() => Promise.reject(new Error('memory child exited'))),
    ]);
  const request = (m: ToMemoryChild): Promise<FromMemoryChild> => {
    const answer = next();
    child.send(m);
    return answer;
  };
  const rows: MemoryRow[] = [];
  const started = performance.now();
  try {
    await next(); // ready
    const measure = async (label: string): Promise<void> => {
      const m = await request({ type: 'measure', label });
      if (m.type !== 'measured') throw new Error('unexpected answer from the memory child');
      rows.push({
        label,
        users: m.users,
        rssMb: round(m.rssMb, 1),
        heapUsedMb: round(m.heapUsedMb, 1),
        heapTotalMb: round(m.heapTotalMb, 1),
        newSpaceMb: round(m.newSpaceMb, 1),
        externalMb: round(m.externalMb, 1),
        arrayBuffersMb: round(m.arrayBuffersMb, 1),
        rssAnonMb: round(m.rssAnonMb, 1),
        rssFileMb: round(m.rssFileMb, 1),
        partitions: m.partitions,
        maxPartitions: DEFAULT_MAX_PARTITIONS,
        sockets: m.resources.TCPSocketWrap ?? 0,
        handles: Object.values(m.resources).reduce((a, b) => a + b, 0),
      });
    };
    await measure('no user yet');
    let done = 0;
    let failed = 0;
    for (const target of [options.small, options.large]) {
      while (done < target) {
        const size = Math.min(BATCH, target - done);
        const users: MemoryUser[] = await Promise.all(
          Array.from({ length: size }, async (_, j) => {
            const user = devUser(`bench-memory-user-${done + j}`);
            return {
              tenantId: user.tid,
              userId: user.oid,
              assertion: await entra.issueUserToken({ user: user.oid }),
            };
          }),
        );
        const answer = await request({ type: 'users', users, concurrency: CONCURRENCY });
        if (answer.type === 'batch') failed += answer.failed;
        done += size;
        if (Math.floor(done / 10_000) > Math.floor((done - size) / 10_000))
          options.log(`    memory: ${done} users through the token cache`);
      }
      await measure(`after ${target.toLocaleString('en-US')} users`);
    }
    if (failed > 0) throw new Error(`${failed} OBO exchanges failed in the memory run`);
    child.send({ type: 'exit' } satisfies ToMemoryChild);
    await exited;
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await entra.close();
  }
  return { rows, seconds: round((performance.now() - started) / 1000, 1) };
}
