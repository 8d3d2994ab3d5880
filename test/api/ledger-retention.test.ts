import { TableClient } from '@azure/data-tables';
import { devUser } from '../../dev/standins/identities';
import { eventually, startTestApp, type TestApp } from '../support/stack';

// The retention timer through the local host (its timer half, on an every-second schedule given
// by the setting) against Azurite's table service: entries past NOTIFICATIONS_LEDGER_RETENTION_DAYS
// and idempotency records past their 24 hours are deleted; younger ones stay.

const DAY_MS = 24 * 60 * 60 * 1000;

let app: TestApp;
let table: TableClient;

beforeAll(async () => {
  app = await startTestApp({
    settings: {
      NOTIFICATIONS_LEDGER_RETENTION_DAYS: '7',
      NOTIFICATIONS_LEDGER_RETENTION_SCHEDULE: '*/1 * * * * *',
    },
  });
  table = TableClient.fromConnectionString(app.stack.settings.AzureWebJobsStorage!, 'notificationledger', {
    allowInsecureConnection: true,
  });
  await table.createTable();
});

afterAll(async () => {
  if (process.env.SHOW_HOST) console.log(app?.host.output());
  await app?.stop();
});

const ago = (ms: number): string => new Date(Date.now() - ms).toISOString();

it('deletes expired entries and idempotency records on its schedule, and keeps the rest', async () => {
  const alice = devUser('alice');
  const partitionKey = `${alice.tid}|${alice.oid}`;
  const entry = (rowKey: string, updatedAt: string) => ({
    partitionKey,
    rowKey,
    kind: 'notification',
    channel: 'notifications',
    status: 'sent',
    attempts: 1,
    createdAt: updatedAt,
    updatedAt,
  });
  const idempotency = (rowKey: string, createdAt: string) => ({
    partitionKey,
    rowKey,
    kind: 'idempotency',
    state: 'done',
    createdAt,
    updatedAt: createdAt,
  });
  // 150 expired in one partition: more than one transaction's 100.
  const expired = Array.from({ length: 150 }, (_, i) => entry(`notifications|old-${i}`, ago(8 * DAY_MS + i)));
  const kept = [
    entry('notifications|young', ago(6 * DAY_MS)),
    entry('teams|young', ago(DAY_MS)),
    idempotency('idempotency|recent', ago(23 * 60 * 60 * 1000)),
  ];
  const oldKey = idempotency('idempotency|old', ago(25 * 60 * 60 * 1000));
  const otherTenant = { ...entry('teams|old', ago(30 * DAY_MS)), partitionKey: 'other-tenant|app' };
  for (const row of [...expired, ...kept, oldKey, otherTenant]) await table.upsertEntity(row, 'Replace');

  await eventually(
    async () => {
      const left: string[] = [];
      for await (const row of table.listEntities()) left.push(`${row.partitionKey}/${row.rowKey}`);
      return left.length === kept.length ? left.sort() : undefined;
    },
    { what: 'the sweep to leave only the young rows', timeoutMs: 20_000, intervalMs: 200 },
  ).then((left) => expect(left).toEqual(kept.map((r) => `${r.partitionKey}/${r.rowKey}`).sort()));
  // Sweeps run every second while the rows go in, so several may share the work: each expired row
  // is deleted by exactly one of them.
  const swept = (): number =>
    [...app.host.output().matchAll(/Delivery ledger swept[^\]]*?deleted: (\d+)/g)].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    );
  // The last sweep logs once its deletes are done, so its line may come just after the table shows it.
  await eventually(() => (swept() >= 152 ? true : undefined), { what: 'the sweeps to log 152 deletes' });
  expect(swept()).toBe(152);
  expect(app.host.output()).toContain("ledgerRetention: timerTrigger (schedule '*/1 * * * * *')");
});
