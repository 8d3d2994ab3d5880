// Section 7: what one delivery-ledger operation costs the app itself — its CPU (the storage SDK's
// pipeline, signing, HTTP) and the time to Azurite and back — through the app's own ledger module,
// in this process, against the stack's Azurite (its own process, so its CPU is not counted here).
import { DeliveryLedger } from '../shared/ledger/ledger';
import { ledgerTableFrom } from '../shared/ledger/table';
import { round } from './load';

export interface LedgerCostRow {
  operations: number;
  concurrency: number;
  /** A send now's one write (`sentNow`). */
  sendNowCpuMsPerOp: number;
  sendNowMsPerOp: number;
  /** A queued message's claim (a conditional insert) and its `sent` record: two table requests. */
  queuedCpuMsPerMessage: number;
  queuedMsPerMessage: number;
}

export async function measureLedgerCost(options: {
  connectionString: string;
  operations: number;
  concurrency: number;
}): Promise<LedgerCostRow> {
  const table = ledgerTableFrom(
    { kind: 'connectionString', connectionString: options.connectionString },
    {},
    'benchledger',
  );
  const ledger = new DeliveryLedger(table, { retentionDays: 30, leaseSeconds: 60 });
  const user = (i: number) => ({ tenantId: 'bench', userId: `user-${i % 100}` });
  const measure = async (work: (i: number) => Promise<void>) => {
    for (let i = 0; i < 200; i++) await work(-1 - i); // warm: the table, the client, the connections
    const cpu = process.cpuUsage();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: options.concurrency }, async (_, k) => {
        for (let i = k; i < options.operations; i += options.concurrency) await work(i);
      }),
    );
    const used = process.cpuUsage(cpu);
    return {
      cpuMs: (used.user + used.system) / 1000 / options.operations,
      // Time per operation seen by one of `concurrency` callers.
      ms: ((performance.now() - started) / options.operations) * options.concurrency,
    };
  };
  const run = `${Date.now()}`;
  const now = await measure((i) =>
    ledger.sentNow(user(i), 'notifications', `now-${run}-${i}`, { status: 'sent', graphId: 'g' }),
  );
  const queued = await measure(async (i) => {
    const owner = { kind: 'user' as const, user: user(i) };
    const id = `queued-${run}-${i}`;
    const claim = await ledger.claim(owner, 'notifications', id, `m-${id}`);
    if (claim.kind !== 'claimed') throw new Error(`claim answered ${claim.kind}`);
    await ledger.settled(owner, 'notifications', id, `m-${id}`, { status: 'sent', graphId: 'g' });
  });
  return {
    operations: options.operations,
    concurrency: options.concurrency,
    sendNowCpuMsPerOp: round(now.cpuMs, 3),
    sendNowMsPerOp: round(now.ms, 2),
    queuedCpuMsPerMessage: round(queued.cpuMs, 3),
    queuedMsPerMessage: round(queued.ms, 2),
  };
}
