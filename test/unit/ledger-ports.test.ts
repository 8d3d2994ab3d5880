import type { Caller } from '../../shared/auth/caller';
import { notificationsChannel } from '../../shared/channels/notifications';
import { DeferredDelivery, type DeliveryRecords } from '../../shared/deferred/deliver';
import { AppError } from '../../shared/errors';
import type { Claim } from '../../shared/ledger/ledger';
import type { GraphNotification } from '../../shared/notifications/request';
import { NotificationService, type IdempotencyPort, type Logger } from '../../shared/notifications/send';
import type { QueueMessage } from '../../shared/queue/message';
import type { PoisonRecord } from '../../shared/queue/deferred-queue';
import type { Telemetry, TelemetryEventName } from '../../shared/telemetry';

// The sends' side of the delivery ledger with hand-written fakes of its ports: what happens when the
// ledger answers "duplicate" or "busy", and when its writes fail. The real table is exercised in
// test/api/ledger.test.ts.

const TENANT = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
const USER = '0a11ce00-0000-4000-8000-000000000001';
const NOW = new Date('2026-11-30T10:00:00Z');
const warnings: string[] = [];
const log: Logger = { info: () => undefined, warn: (m) => void warnings.push(m) };
const unavailable = () =>
  new AppError('upstream_unavailable', { detail: 'table down', retryAfterSeconds: 5 });

function recordingTelemetry(): Telemetry & { events: TelemetryEventName[] } {
  const events: TelemetryEventName[] = [];
  return {
    events,
    trackEvent: (name) => void events.push(name),
    trackMetric: () => undefined,
    flush: () => Promise.resolve(),
  };
}

function graphChannel(sent: GraphNotification[], failWith?: Error) {
  return notificationsChannel({
    graph: {
      send: (_token, notification) => {
        if (failWith) return Promise.reject(failWith);
        sent.push(notification);
        return Promise.resolve({ id: `g-${sent.length}`, expirationDateTime: '2026-12-07T10:00:00Z' });
      },
    },
    scopes: [],
    targetHostName: 'app.example',
  });
}

describe('the queue and the ledger', () => {
  function setup(ledger: Partial<DeliveryRecords>, failWith?: Error) {
    const enqueued: { message: QueueMessage; delaySec: number }[] = [];
    const poisoned: PoisonRecord[] = [];
    const sent: GraphNotification[] = [];
    const telemetry = recordingTelemetry();
    const delivery = new DeferredDelivery({
      tokens: { accessTokenFor: () => Promise.resolve('at'), forget: () => undefined },
      channels: [graphChannel(sent, failWith)],
      queue: {
        enqueue: (message, delaySec) => Promise.resolve(void enqueued.push({ message, delaySec })),
        poison: (record) => Promise.resolve(void poisoned.push(record)),
      },
      ledger: {
        scheduled: () => Promise.resolve(),
        claim: () => Promise.resolve<Claim>({ kind: 'claimed' }),
        settled: () => Promise.resolve(),
        ...ledger,
      },
      telemetry,
      now: () => NOW,
    });
    return { delivery, enqueued, poisoned, sent, telemetry };
  }
  const message = {
    userId: USER,
    tenantId: TENANT,
    notification: { payload: { visualContent: { title: 'Hi' } } },
  };
  const meta = { messageId: 'm-1', dequeueCount: 2 };

  it('removes a copy the ledger calls a duplicate: nothing sent, put back or poisoned', async () => {
    const { delivery, enqueued, poisoned, sent, telemetry } = setup({
      claim: () => Promise.resolve({ kind: 'duplicate', status: 'sent' }),
    });
    expect(await delivery.deliver(message, meta, log)).toEqual({ kind: 'duplicate', status: 'sent' });
    expect([sent, enqueued, poisoned]).toEqual([[], [], []]);
    expect(telemetry.events).toContain('NotificationDuplicateDropped');
  });

  it('puts a copy back until the lease of the invocation holding it runs out, not as a try', async () => {
    const { delivery, enqueued, sent } = setup({
      claim: () => Promise.resolve({ kind: 'busy', retryAfterSec: 42 }),
    });
    expect(await delivery.deliver(message, meta, log)).toEqual({ kind: 'held', delaySec: 42 });
    expect(sent).toEqual([]);
    expect(enqueued).toHaveLength(1);
    expect(enqueued[0]!.delaySec).toBe(42);
    expect(enqueued[0]!.message).toMatchObject({ originalMessageId: 'm-1' });
    expect(enqueued[0]!.message).not.toHaveProperty('attempt');
  });

  it('retries a message whose claim could not be made (table down), without sending it', async () => {
    const { delivery, enqueued, sent } = setup({ claim: () => Promise.reject(unavailable()) });
    expect(await delivery.deliver(message, meta, log)).toMatchObject({
      kind: 'retry',
      reason: 'upstream_unavailable',
    });
    expect(sent).toEqual([]);
    expect(enqueued[0]!.message).toMatchObject({ attempt: 2, originalMessageId: 'm-1' });
  });

  it('counts a message sent even when recording it fails: never sent again for a ledger write', async () => {
    const { delivery, enqueued, sent, telemetry } = setup({ settled: () => Promise.reject(unavailable()) });
    expect(await delivery.deliver(message, meta, log)).toMatchObject({ kind: 'sent' });
    expect(sent).toHaveLength(1);
    expect(enqueued).toEqual([]);
    expect(telemetry.events).toEqual(expect.arrayContaining(['LedgerWriteFailed', 'NotificationSent']));
    expect(warnings).toContain('Writing the delivery ledger failed');
  });

  it('lifts its claim when a try fails in a way the host retries, and records the last one as given up', async () => {
    const records: string[] = [];
    const settled: DeliveryRecords['settled'] = (_owner, _channel, _id, _messageId, s) =>
      Promise.resolve(void records.push(`${s.status}:${'code' in s ? s.code : ''}`));
    const boom = new Error('unexpected');
    const { delivery } = setup({ settled }, boom);
    await expect(delivery.deliver(message, { messageId: 'm-1', dequeueCount: 1 }, log)).rejects.toBe(boom);
    await expect(delivery.deliver(message, { messageId: 'm-1', dequeueCount: 5 }, log)).rejects.toBe(boom);
    expect(records).toEqual(['retrying:internal_error', 'dead_lettered:internal_error']);
  });
});

describe('an HTTP send and the ledger', () => {
  const caller: Caller = {
    tenantId: TENANT,
    userId: USER,
    scopes: ['Notifications.Send'],
    assertion: 'assertion',
    expiresAt: new Date(NOW.getTime() + 3600_000),
  };
  function setup(options: { idempotency?: IdempotencyPort; failLedger?: boolean }) {
    const sent: GraphNotification[] = [];
    const telemetry = recordingTelemetry();
    const service = new NotificationService({
      tokens: {
        onBehalfOf: () => Promise.resolve({ accessToken: 'at', refreshToken: undefined }),
        forget: () => undefined,
      },
      refreshTokens: { save: () => Promise.resolve(), delete: () => Promise.resolve() },
      graph: { send: () => Promise.reject(new Error('unused')) },
      notifications: graphChannel(sent),
      queue: { enqueue: () => Promise.resolve() },
      targetHostName: 'app.example',
      telemetry,
      ledger: {
        scheduled: () => Promise.resolve(),
        sentNow: () => (options.failLedger ? Promise.reject(unavailable()) : Promise.resolve()),
      },
      ...(options.idempotency ? { idempotency: options.idempotency } : {}),
      now: () => NOW,
    });
    return { service, sent, telemetry };
  }
  const body = { payload: { visualContent: { title: 'Hi' } } };

  it('answers 201 when the ledger write after the send fails, and counts it', async () => {
    const { service, sent, telemetry } = setup({ failLedger: true });
    const channel = graphChannel(sent);
    const answer = await service.request(channel, caller, body, log, 'r-1', null);
    expect(answer).toMatchObject({ status: 201, replayed: false });
    expect(sent).toHaveLength(1);
    expect(telemetry.events).toContain('LedgerWriteFailed');
  });

  it('sends nothing when the Idempotency-Key cannot be claimed (table down): 503', async () => {
    const sent: GraphNotification[] = [];
    const { service } = setup({
      idempotency: {
        begin: () => Promise.reject(unavailable()),
        finish: () => Promise.resolve(),
        release: () => Promise.resolve(),
      },
    });
    await expect(
      service.request(graphChannel(sent), caller, body, log, 'r-2', 'key-1'),
    ).rejects.toMatchObject({
      code: 'upstream_unavailable',
      status: 503,
    });
    expect(sent).toEqual([]);
  });

  it('answers 201 when recording the answer under its key fails (the notification is out)', async () => {
    const sent: GraphNotification[] = [];
    const { service, telemetry } = setup({
      idempotency: {
        begin: () => Promise.resolve({ kind: 'first', etag: 'e1' }),
        finish: () => Promise.reject(unavailable()),
        release: () => Promise.resolve(),
      },
    });
    const answer = await service.request(graphChannel(sent), caller, body, log, 'r-3', 'key-2');
    expect(answer).toMatchObject({ status: 201, replayed: false });
    expect(sent).toHaveLength(1);
    expect(telemetry.events).toContain('LedgerWriteFailed');
  });
});
