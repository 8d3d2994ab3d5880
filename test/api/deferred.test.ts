import { devUser } from '../../dev/standins/identities';
import { enqueueDeferredNotification, type DeferredMessage } from '../../shared/queue/enqueue';
import { eventually, startTestApp, type TestApp } from '../support/stack';
import { TestQueues } from '../support/queue';

// The deferred queue through the local host (its queue half polling real Azurite) against the
// stand-ins: every message ends sent or in the poison queue with a reason, and nothing else.

const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/;

let app: TestApp;
let queues: TestQueues;

beforeAll(async () => {
  app = await startTestApp();
  queues = new TestQueues(app.stack.settings.AzureWebJobsStorage!);
});

afterAll(async () => {
  const output = app?.host.output() ?? '';
  await app?.stop();
  expect(output).not.toMatch(JWT);
});

afterEach(async () => {
  // Each case leaves the queue drained and the fault queues empty for the next.
  await queues.drained();
  app.stack.graph!.faults.clear();
  app.stack.entra!.faults.clear();
  app.stack.keyVault!.faults.clear();
  await queues.clearPoison();
});

async function register(name: string): Promise<string> {
  const user = devUser(name);
  const token = await app.stack.entra!.issueUserToken({ user: user.oid });
  const res = await fetch(`${app.api}/me/registration`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(204);
  return user.oid;
}

function messageFor(
  oid: string,
  extra: Partial<DeferredMessage['notification']> = {},
  correlationId?: string,
): DeferredMessage {
  return {
    userId: oid,
    tenantId: devUser(oid).tid,
    notification: { payload: { visualContent: { title: 'Your order shipped' } }, ...extra },
    ...(correlationId ? { correlationId } : {}),
  };
}

const graphPosts = (oid: string): number => app.stack.graph!.attempts.filter((a) => a.userOid === oid).length;

async function poisonFor(messageId: string): Promise<Record<string, unknown>> {
  return eventually(async () => (await queues.poisoned()).find((p) => p.messageId === messageId), {
    what: `message ${messageId} in the poison queue`,
    timeoutMs: 30_000,
  });
}

it('sends a due message once and deletes it, logging the outcome with its ids', async () => {
  const oid = await register('deferred-sent');
  const { messageId } = await enqueueDeferredNotification(queues.queue, messageFor(oid, {}, 'corr-sent-1'));
  const [received] = await eventually(() => {
    const r = app.stack.graph!.received(oid);
    return r.length > 0 ? r : undefined;
  });
  expect(received!.body).toMatchObject({ payload: { visualContent: { title: 'Your order shipped' } } });
  await eventually(async () => ((await queues.pending()) === 0 ? true : undefined));
  expect(graphPosts(oid)).toBe(1);
  const log = app.host.output();
  expect(log).toMatch(new RegExp(`Deferred notification sent.*${messageId}`, 's'));
  expect(log).toContain('corr-sent-1');
  expect(await queues.poisoned()).toEqual([]);
});

it('holds a message with a future deliverAt until then, not sending it early', async () => {
  const oid = await register('deferred-later');
  const deliverAt = new Date(Date.now() + 4000).toISOString();
  await enqueueDeferredNotification(
    queues.queue,
    messageFor(oid, { deliverAt, appNotificationId: 'later-x' }),
  );
  const [received] = await eventually(() => {
    const r = app.stack.graph!.received(oid);
    return r.length > 0 ? r : undefined;
  });
  expect(Date.parse(received!.receivedAt)).toBeGreaterThanOrEqual(Date.parse(deliverAt));
  expect(received!.appNotificationId).toBe('later-x');
  expect(received!.body).not.toHaveProperty('deliverAt');
});

it('POST /api/notifications with a future deliverAt answers 202 and the notification arrives then', async () => {
  const user = devUser('posts-later');
  const token = await app.stack.entra!.issueUserToken({ user: user.oid });
  const deliverAt = new Date(Date.now() + 3000).toISOString();
  const res = await fetch(`${app.api}/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ payload: { visualContent: { title: 'Later' } }, deliverAt }),
  });
  expect(res.status).toBe(202);
  const body = (await res.json()) as { status: string; appNotificationId: string; deliverAt: string };
  expect(body).toMatchObject({ status: 'scheduled', deliverAt });
  const [received] = await eventually(() => {
    const r = app.stack.graph!.received(user.oid);
    return r.length > 0 ? r : undefined;
  });
  expect(received!.appNotificationId).toBe(body.appNotificationId);
  expect(Date.parse(received!.receivedAt)).toBeGreaterThanOrEqual(Date.parse(deliverAt));
});

it('retries after Graph throttles, honouring Retry-After, and delivers once', async () => {
  const oid = await register('deferred-throttled');
  app.stack.graph!.faults.failNext(1, { status: 429, retryAfter: 1 });
  await enqueueDeferredNotification(queues.queue, messageFor(oid));
  const [received] = await eventually(() => {
    const r = app.stack.graph!.received(oid);
    return r.length > 0 ? r : undefined;
  });
  const attempts = app.stack.graph!.attempts.filter((a) => a.userOid === oid);
  expect(attempts.map((a) => a.status)).toEqual([429, 201]);
  // Not before the Retry-After second had passed.
  expect(Date.parse(attempts[1]!.at) - Date.parse(attempts[0]!.at)).toBeGreaterThanOrEqual(900);
  expect(received!.postCount).toBe(1);
  expect(app.host.output()).toContain('put back to retry');
});

it('retries when the identity service or the vault is unavailable', async () => {
  const oid = await register('deferred-flaky-deps');
  const refused = (): number => app.stack.entra!.requests.filter((r) => r.status === 503).length;
  const refusedBefore = refused();
  app.stack.entra!.faults.failNext(1, { status: 503, retryAfter: 1 });
  await enqueueDeferredNotification(queues.queue, messageFor(oid));
  await eventually(() => (app.stack.graph!.received(oid).length === 1 ? true : undefined), {
    timeoutMs: 20_000,
  });
  // The identity service refused one refresh, and the retry a second later worked.
  expect(refused() - refusedBefore).toBe(1);
  const redeemed = app.stack.entra!.requests.filter(
    (r) => r.grantType === 'refresh_token' && r.userOid === oid,
  );
  expect(redeemed.map((r) => r.status)).toEqual([200]);
  expect(app.host.output()).toMatch(new RegExp(`put back to retry[\\s\\S]*${oid}`));

  const other = await register('deferred-vault-down');
  const secret = `rt-${devUser(other).tid}-${other}`;
  // More failures than the SDK's own retries: the message is put back and tried again.
  app.stack.keyVault!.faults.failNext(3, { status: 503, retryAfter: 0 });
  await enqueueDeferredNotification(queues.queue, messageFor(other));
  await eventually(() => (app.stack.graph!.received(other).length === 1 ? true : undefined), {
    timeoutMs: 20_000,
  });
  expect(app.stack.keyVault!.count('get', { name: secret, status: 503 })).toBe(3);
  expect(app.stack.keyVault!.count('get', { name: secret, status: 200 })).toBe(1);
  expect(await queues.poisoned()).toEqual([]);
});

it('ends deferred sends at opt-out: the next message is not_registered', async () => {
  const oid = await register('deferred-opts-out');
  const token = await app.stack.entra!.issueUserToken({ user: oid });
  await enqueueDeferredNotification(queues.queue, messageFor(oid, { appNotificationId: 'before-opt-out' }));
  await eventually(() => (app.stack.graph!.received(oid).length === 1 ? true : undefined));
  const res = await fetch(`${app.api}/me/registration`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(204);
  const { messageId } = await enqueueDeferredNotification(
    queues.queue,
    messageFor(oid, { appNotificationId: 'after-opt-out' }),
  );
  expect(await poisonFor(messageId)).toMatchObject({ reason: 'not_registered' });
  expect(app.stack.graph!.received(oid).map((n) => n.appNotificationId)).toEqual(['before-opt-out']);
});

it('drops a cached access token Graph refuses and retries with a fresh one', async () => {
  const oid = await register('deferred-graph-401');
  await enqueueDeferredNotification(queues.queue, messageFor(oid, { appNotificationId: 'first' }));
  await eventually(() => (app.stack.graph!.received(oid).length === 1 ? true : undefined));
  const redeemed = (): number =>
    app.stack.entra!.requests.filter((r) => r.grantType === 'refresh_token' && r.userOid === oid).length;
  expect(redeemed()).toBe(1);
  app.stack.graph!.faults.failNext(1, { status: 401 });
  await enqueueDeferredNotification(queues.queue, messageFor(oid, { appNotificationId: 'second' }));
  await eventually(() => (app.stack.graph!.received(oid).length === 2 ? true : undefined), {
    timeoutMs: 20_000,
  });
  expect(redeemed()).toBe(2);
  expect(await queues.poisoned()).toEqual([]);
});

it('dead-letters a message that is not JSON, keeping the original', async () => {
  const text = Buffer.from('hello, not json').toString('base64');
  const messageId = await queues.sendRaw(text);
  const record = await poisonFor(messageId);
  expect(record).toMatchObject({ reason: 'invalid_message', message: 'hello, not json' });
  expect(typeof record.failedAt).toBe('string');
});

it('dead-letters a message against the schema with invalid_message', async () => {
  const { messageId } = await queues.queue.sendMessage(
    Buffer.from(JSON.stringify({ userId: 'alice', notification: {} })).toString('base64'),
  );
  expect(await poisonFor(messageId)).toMatchObject({ reason: 'invalid_message' });
});

it('dead-letters a user who never registered with not_registered, asking the identity service nothing', async () => {
  const oid = devUser('never-registered').oid;
  const refreshesBefore = app.stack.entra!.count('refresh_token');
  const { messageId } = await enqueueDeferredNotification(queues.queue, messageFor(oid, {}, 'corr-nr'));
  expect(await poisonFor(messageId)).toMatchObject({ reason: 'not_registered', correlationId: 'corr-nr' });
  expect(app.stack.entra!.count('refresh_token')).toBe(refreshesBefore);
  expect(graphPosts(oid)).toBe(0);
  expect(app.host.output()).toMatch(/dead-lettered[\s\S]*not_registered/);
});

it('dead-letters a revoked grant with invalid_grant and deletes the stored token', async () => {
  const oid = await register('deferred-revoked');
  const secret = `rt-${devUser(oid).tid}-${oid}`;
  expect(app.stack.keyVault!.current(secret)).toBeDefined();
  app.stack.entra!.setUserState(oid, 'revoked');
  const { messageId } = await enqueueDeferredNotification(queues.queue, messageFor(oid));
  expect(await poisonFor(messageId)).toMatchObject({ reason: 'invalid_grant' });
  expect(app.stack.keyVault!.current(secret)).toBeUndefined();
  expect(graphPosts(oid)).toBe(0);
});

it('dead-letters what Graph rejects with upstream_rejected, without retrying', async () => {
  const oid = await register('deferred-rejected');
  app.stack.graph!.faults.failNext(1, { status: 400 });
  const { messageId } = await enqueueDeferredNotification(queues.queue, messageFor(oid));
  expect(await poisonFor(messageId)).toMatchObject({ reason: 'upstream_rejected' });
  expect(graphPosts(oid)).toBe(1);
});

it('gives a message that keeps failing transiently up into the poison queue after maxDequeueCount tries', async () => {
  const oid = await register('deferred-always-busy');
  app.stack.graph!.faults.failNext(5, { status: 503, retryAfter: 1 });
  const { messageId } = await enqueueDeferredNotification(queues.queue, messageFor(oid));
  expect(await poisonFor(messageId)).toMatchObject({ reason: 'upstream_unavailable' });
  expect(graphPosts(oid)).toBe(5);
});

it('20 messages for one user cost one refresh and one vault read', async () => {
  const oid = await register('deferred-twenty');
  const secret = `rt-${devUser(oid).tid}-${oid}`;
  const refreshes = () =>
    app.stack.entra!.requests.filter((r) => r.grantType === 'refresh_token' && r.userOid === oid).length;
  const reads = () => app.stack.keyVault!.count('get', { name: secret });
  const [refreshesBefore, readsBefore] = [refreshes(), reads()];
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      enqueueDeferredNotification(queues.queue, messageFor(oid, { appNotificationId: `bulk-${i}` })),
    ),
  );
  await eventually(() => (app.stack.graph!.received(oid).length === 20 ? true : undefined), {
    timeoutMs: 20_000,
  });
  expect(refreshes() - refreshesBefore).toBe(1);
  expect(reads() - readsBefore).toBe(1);
});
