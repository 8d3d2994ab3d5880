import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { devUser } from '../../dev/standins/identities';
import { enqueueDeferredNotification, type DeferredMessage } from '../../shared/queue/enqueue';
import { TestQueues } from '../support/queue';
import { eventually, startTestApp, type TestApp } from '../support/stack';

// The delivery ledger through the local host, against real Azurite's table service: what a caller
// reads back after a send, a schedule, a retry and a dead letter; Idempotency-Key replays, reuse and
// in-flight answers; and the queue's claim (a copy of a sent message removed unsent, a crashed
// claim taken over after its lease). Asserted on what Graph's stand-in received and what the table holds.

const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/;
const LEASE_SECONDS = 2;

// Every status answer is checked against the published schema.
const ajv = new Ajv({ strict: true, allErrors: true });
addFormats(ajv, ['date-time']);
const validStatus = ajv.compile(
  JSON.parse(
    readFileSync(path.join(__dirname, '..', '..', 'schemas', 'notification-status.schema.json'), 'utf8'),
  ) as object,
);

let app: TestApp;
let queues: TestQueues;
let table: TableClient;

beforeAll(async () => {
  app = await startTestApp({ settings: { NOTIFICATIONS_LEDGER_LEASE_SECONDS: String(LEASE_SECONDS) } });
  queues = new TestQueues(app.stack.settings.AzureWebJobsStorage!);
  table = TableClient.fromConnectionString(app.stack.settings.AzureWebJobsStorage!, 'notificationledger', {
    allowInsecureConnection: true,
  });
});

afterAll(async () => {
  const output = app?.host.output() ?? '';
  await app?.stop();
  expect(output).not.toMatch(JWT);
});

afterEach(async () => {
  await queues.drained();
  app.stack.graph!.faults.clear();
  app.stack.graph!.teamsFaults.clear();
  await queues.clearPoison();
});

const tokenFor = (name: string): Promise<string> =>
  app.stack.entra!.issueUserToken({ user: devUser(name).oid });

function request(
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${app.api}/${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

const notification = (title: string, extra: Record<string, unknown> = {}) => ({
  payload: { visualContent: { title } },
  ...extra,
});

const activity = (to: string, value: string) => ({
  recipient: { userId: devUser(to).oid },
  activityType: 'systemDefault',
  templateParameters: [{ name: 'systemDefaultText', value }],
  topic: { source: 'text', value: 'Order', webUrl: 'https://teams.microsoft.com/l/entity/x/orders' },
});

async function status(path: string, token: string): Promise<Record<string, unknown>> {
  const res = await request('GET', path, token);
  expect(res.status).toBe(200);
  const body = (await res.json()) as Record<string, unknown>;
  expect([validStatus(body), validStatus.errors]).toEqual([true, null]);
  return body;
}

/** Polls the caller's status of `path` until it says `wanted`. */
function statusBecomes(path: string, token: string, wanted: string): Promise<Record<string, unknown>> {
  return eventually(
    async () => {
      const res = await request('GET', path, token);
      if (res.status !== 200) return undefined;
      const body = (await res.json()) as Record<string, unknown>;
      expect([validStatus(body), validStatus.errors]).toEqual([true, null]);
      return body.status === wanted ? body : undefined;
    },
    { what: `${path} to be ${wanted}`, timeoutMs: 30_000 },
  );
}

const postsFor = (appNotificationId: string): number =>
  app.stack.graph!.attempts.filter((a) => a.method === 'POST' && a.appNotificationId === appNotificationId)
    .length;

async function register(name: string): Promise<string> {
  const res = await request('PUT', 'me/registration', await tokenFor(name));
  expect(res.status).toBe(204);
  return devUser(name).oid;
}

function queued(
  oid: string,
  appNotificationId: string,
  extra: Record<string, unknown> = {},
): DeferredMessage {
  return {
    userId: oid,
    tenantId: devUser(oid).tid,
    notification: { appNotificationId, ...notification(`Queued ${appNotificationId}`), ...extra },
  };
}

describe('status for the caller', () => {
  it('reports a send made now, to its caller only, and nothing of the notification or the token', async () => {
    const token = await tokenFor('ledger-now');
    const res = await request(
      'POST',
      'notifications',
      token,
      notification('Shipped', { appNotificationId: 'order-1/shipped?#' }),
    );
    expect(res.status).toBe(201);
    const sent = (await res.json()) as { id: string; appNotificationId: string };

    const entry = await status(`notifications/${encodeURIComponent(sent.appNotificationId)}`, token);
    expect(entry).toEqual({
      id: 'order-1/shipped?#',
      channel: 'notifications',
      status: 'sent',
      attempts: 1,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      updatedAt: expect.any(String),
      sentAt: expect.any(String),
    });
    // What the table holds: ids, states and times, never the title or a token.
    const rows = [];
    for await (const row of table.listEntities()) rows.push(row);
    const text = JSON.stringify(rows);
    expect(text).not.toContain('Shipped');
    expect(text).not.toMatch(JWT);
    expect(text).toContain(sent.id); // Graph's id is kept for operators

    // Another user, a wrong id, no token.
    const other = await request(
      'GET',
      `notifications/${encodeURIComponent(sent.appNotificationId)}`,
      await tokenFor('ledger-other'),
    );
    expect(other.status).toBe(404);
    expect(other.headers.get('content-type')).toContain('application/problem+json');
    expect(await other.json()).toMatchObject({ code: 'not_found', status: 404 });
    expect((await request('GET', 'notifications/no-such-id', token)).status).toBe(404);
    const anonymous = await request(
      'GET',
      `notifications/${encodeURIComponent(sent.appNotificationId)}`,
      undefined,
    );
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ code: 'missing_token' });
  });

  it('reports a send Graph refused as failed, with the code the caller was answered', async () => {
    const token = await tokenFor('ledger-refused');
    app.stack.graph!.faults.failNext(1, { status: 400 });
    const res = await request(
      'POST',
      'notifications',
      token,
      notification('No', { appNotificationId: 'refused-1' }),
    );
    expect(res.status).toBe(502);
    expect(await status('notifications/refused-1', token)).toMatchObject({
      status: 'failed',
      attempts: 1,
      lastError: { code: 'upstream_rejected', at: expect.any(String) },
    });
  });

  it('reports a scheduled send as scheduled, then sent once the queue delivered it', async () => {
    const token = await tokenFor('ledger-later');
    const deliverAt = new Date(Date.now() + 2000).toISOString();
    const res = await request(
      'POST',
      'notifications',
      token,
      notification('Later', { appNotificationId: 'later-1', deliverAt }),
    );
    expect(res.status).toBe(202);
    expect(await status('notifications/later-1', token)).toMatchObject({
      status: 'scheduled',
      attempts: 0,
      deliverAt,
    });
    const sent = await statusBecomes('notifications/later-1', token, 'sent');
    expect(sent).toMatchObject({ attempts: 1, deliverAt, sentAt: expect.any(String) });
    expect(postsFor('later-1')).toBe(1);
  });

  it('reports a queued message through a retry (last error kept) to sent, counting the tries', async () => {
    const oid = await register('ledger-retry');
    const token = await tokenFor('ledger-retry');
    app.stack.graph!.faults.failNext(1, { status: 503, retryAfter: 2 });
    await enqueueDeferredNotification(queues.queue, queued(oid, 'retry-1'));
    const retrying = await statusBecomes('notifications/retry-1', token, 'retrying');
    expect(retrying).toMatchObject({ attempts: 1, lastError: { code: 'upstream_unavailable' } });
    const sent = await statusBecomes('notifications/retry-1', token, 'sent');
    expect(sent).toMatchObject({ attempts: 2, lastError: { code: 'upstream_unavailable' } });
  });

  it('reports a dead-lettered message with its reason', async () => {
    const oid = await register('ledger-dead');
    const token = await tokenFor('ledger-dead');
    app.stack.graph!.faults.failNext(1, { status: 400 });
    await enqueueDeferredNotification(queues.queue, queued(oid, 'dead-1'));
    const dead = await statusBecomes('notifications/dead-1', token, 'dead_lettered');
    expect(dead).toMatchObject({ attempts: 1, lastError: { code: 'upstream_rejected' } });
  });

  it('reports a message given up before any try (the sender never registered) as dead-lettered', async () => {
    const oid = devUser('ledger-never').oid;
    await enqueueDeferredNotification(queues.queue, queued(oid, 'never-1'));
    const dead = await statusBecomes(
      'notifications/never-1',
      await tokenFor('ledger-never'),
      'dead_lettered',
    );
    expect(dead).toMatchObject({ attempts: 0, lastError: { code: 'not_registered' } });
  });

  it('answers a Teams send with the id to ask about, and reports it under /api/activities', async () => {
    const token = await tokenFor('alice');
    const res = await request('POST', 'activities', token, activity('bob', 'ledger teams'));
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    expect(await status(`activities/${id}`, token)).toMatchObject({ id, channel: 'teams', status: 'sent' });
    // The same id under the other channel is another entry.
    expect((await request('GET', `notifications/${id}`, token)).status).toBe(404);
  });
});

describe('Idempotency-Key', () => {
  it('answers a repeat with the first answer, marked, without sending again', async () => {
    const token = await tokenFor('idem-repeat');
    const key = { 'idempotency-key': 'order-77-shipped' };
    const body = notification('Order 77 shipped');
    const first = await request('POST', 'notifications', token, body, key);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotency-replayed')).toBeNull();
    const firstBody = (await first.json()) as { appNotificationId: string };

    // The same body, its keys in another order: the same request.
    const again = await request('POST', 'notifications', token, { payload: body.payload }, key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotency-replayed')).toBe('true');
    expect(await again.json()).toEqual(firstBody);
    expect(postsFor(firstBody.appNotificationId)).toBe(1);

    // Keys belong to their caller: another user's same key is a request of its own.
    const other = await request('POST', 'notifications', await tokenFor('idem-other'), body, key);
    expect(other.status).toBe(201);
    expect(other.headers.get('idempotency-replayed')).toBeNull();
  });

  it('refuses the key with another body (422) or on the other route, and a malformed key (400)', async () => {
    const token = await tokenFor('idem-reuse');
    const key = { 'idempotency-key': '"quoted-key-1"' };
    expect((await request('POST', 'notifications', token, notification('One'), key)).status).toBe(201);
    const reused = await request('POST', 'notifications', token, notification('Two'), key);
    expect(reused.status).toBe(422);
    expect(await reused.json()).toMatchObject({ code: 'idempotency_key_reused', status: 422 });
    const elsewhere = await request('POST', 'activities', token, activity('bob', 'x'), key);
    expect(elsewhere.status).toBe(422);
    for (const bad of ['', 'caf\u00e9', 'x'.repeat(256), 'tab\there']) {
      const res = await request('POST', 'notifications', token, notification('Bad key'), {
        'idempotency-key': bad,
      });
      expect([bad, res.status]).toEqual([bad, 400]);
      expect(await res.json()).toMatchObject({ code: 'invalid_request' });
    }
  });

  it('answers 409 with Retry-After while the first is still in flight, then replays its answer', async () => {
    const token = await tokenFor('alice');
    const key = { 'idempotency-key': 'teams-in-flight-1' };
    const body = activity('bob', 'in flight once');
    const held = app.stack.graph!.teamsHolds.hold((info) => info.recipientOid === devUser('bob').oid);
    const first = request('POST', 'activities', token, body, key);
    await held.reached;
    const during = await request('POST', 'activities', token, body, key);
    expect(during.status).toBe(409);
    expect(Number(during.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await during.json()).toMatchObject({ code: 'request_in_progress' });
    held.release();
    const firstAnswer = await first;
    expect(firstAnswer.status).toBe(201);
    const firstBody = (await firstAnswer.json()) as { id: string };
    const after = await request('POST', 'activities', token, body, key);
    expect(after.status).toBe(201);
    expect(after.headers.get('idempotency-replayed')).toBe('true');
    expect(await after.json()).toEqual(firstBody);
    const feed = app.stack
      .graph!.activities(devUser('bob').oid)
      .filter((a) => a.text.includes('in flight once'));
    expect(feed).toHaveLength(1);
  });

  it('lets a failed first request be retried under its key, landing on the same notification id', async () => {
    const token = await tokenFor('idem-fail');
    const key = { 'idempotency-key': 'retry-after-503' };
    const body = notification('Retry me');
    app.stack.graph!.faults.failNext(1, { status: 503, retryAfter: 1 });
    const failed = await request('POST', 'notifications', token, body, key);
    expect(failed.status).toBe(503);
    const retried = await request('POST', 'notifications', token, body, key);
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotency-replayed')).toBeNull();
    const { appNotificationId } = (await retried.json()) as { appNotificationId: string };
    const oid = devUser('idem-fail').oid;
    expect(app.stack.graph!.attempts.filter((a) => a.userOid === oid)).toHaveLength(2);
    expect(app.stack.graph!.received(oid).map((n) => n.appNotificationId)).toEqual([appNotificationId]);
  });
});

describe('the queue never sends a message twice once the ledger says sent', () => {
  it('removes a retried copy of a sent message without sending it', async () => {
    const oid = await register('ledger-dup');
    const { messageId } = await enqueueDeferredNotification(queues.queue, queued(oid, 'dup-1'));
    await statusBecomes('notifications/dup-1', await tokenFor('ledger-dup'), 'sent');
    // A copy as the app writes one to retry, or a second delivery of the message would be.
    await enqueueDeferredNotification(queues.queue, {
      ...queued(oid, 'dup-1'),
      originalMessageId: messageId,
    });
    await eventually(
      () =>
        new RegExp(`already handled: this copy is removed[^\\]]*messageId: '${messageId}'`).test(
          app.host.output(),
        )
          ? true
          : undefined,
      {
        what: 'the copy to be removed',
      },
    );
    await eventually(async () => ((await queues.pending()) === 0 ? true : undefined));
    expect(postsFor('dup-1')).toBe(1);
    expect(await queues.poisoned()).toEqual([]);
  });

  it('sends a new message under an id already sent (a new notification replacing it)', async () => {
    const oid = await register('ledger-again');
    const token = await tokenFor('ledger-again');
    await enqueueDeferredNotification(queues.queue, queued(oid, 'again-1'));
    await statusBecomes('notifications/again-1', token, 'sent');
    await enqueueDeferredNotification(
      queues.queue,
      queued(oid, 'again-1', { payload: { visualContent: { title: 'Update' } } }),
    );
    await eventually(() => (postsFor('again-1') === 2 ? true : undefined), {
      what: 'the second message sent',
    });
  });

  it('takes over a message whose claim was left by a crashed invocation once its lease has run out', async () => {
    const oid = await register('ledger-crashed');
    const token = await tokenFor('ledger-crashed');
    const messageId = 'crashed-message-1';
    // What a crash after claiming leaves: `sending`, with a lease that has yet to run out.
    const leaseUntil = new Date(Date.now() + LEASE_SECONDS * 1000).toISOString();
    const now = new Date().toISOString();
    await table.createTable();
    await table.createEntity({
      partitionKey: `${devUser(oid).tid}|${oid}`,
      rowKey: 'notifications|crashed-1',
      kind: 'notification',
      channel: 'notifications',
      status: 'sending',
      attempts: 1,
      createdAt: now,
      updatedAt: now,
      messageId,
      leaseUntil,
    });
    await enqueueDeferredNotification(queues.queue, {
      ...queued(oid, 'crashed-1'),
      originalMessageId: messageId,
    });
    const sent = await statusBecomes('notifications/crashed-1', token, 'sent');
    expect(sent).toMatchObject({ attempts: 2 });
    expect(postsFor('crashed-1')).toBe(1);
    // It waited for the lease rather than sending beside the (presumed) running invocation.
    expect(app.host.output()).toMatch(/held by another invocation[^\]]*messageId: 'crashed-message-1'/);
    const graphAt = app.stack.graph!.attempts.find((a) => a.appNotificationId === 'crashed-1')!.at;
    expect(Date.parse(graphAt)).toBeGreaterThanOrEqual(Date.parse(leaseUntil));
  });
});
