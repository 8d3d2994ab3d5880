import { readFileSync } from 'node:fs';
import path from 'node:path';
import { AbsentUserTokens, type StoredRefreshTokens } from '../../shared/auth/absent-user-tokens';
import { notificationsChannel } from '../../shared/channels/notifications';
import { DeferredDelivery, MAX_ATTEMPTS, type DeferredQueuePort } from '../../shared/deferred/deliver';
import { AppError } from '../../shared/errors';
import type { GraphNotification } from '../../shared/notifications/request';
import type { Logger, UserRef } from '../../shared/notifications/send';
import type { DeferredMessage, QueueMessage } from '../../shared/queue/message';
import type { PoisonRecord } from '../../shared/queue/deferred-queue';

// The deferred service with hand-written fakes of its ports; the real queue, vault, identity
// service and Graph are exercised in test/api/deferred.test.ts.

const TENANT = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
const USER = '0a11ce00-0000-4000-8000-000000000001';
const NOW = new Date('2026-11-30T10:00:00Z');
const silent: Logger = { info: () => undefined, warn: () => undefined };

class FakeQueue implements DeferredQueuePort {
  readonly enqueued: { message: DeferredMessage; delaySec: number }[] = [];
  readonly poisoned: PoisonRecord[] = [];
  enqueue(message: QueueMessage, delaySec: number): Promise<void> {
    this.enqueued.push({ message: message as DeferredMessage, delaySec });
    return Promise.resolve();
  }
  poison(record: PoisonRecord): Promise<void> {
    this.poisoned.push(record);
    return Promise.resolve();
  }
}

function setup(options: { tokenError?: AppError; graphError?: AppError } = {}) {
  const queue = new FakeQueue();
  const sent: GraphNotification[] = [];
  const delivery = new DeferredDelivery({
    tokens: {
      accessTokenFor: () => (options.tokenError ? Promise.reject(options.tokenError) : Promise.resolve('at')),
      forget: () => undefined,
    },
    channels: [
      notificationsChannel({
        graph: {
          send: (_token, notification) => {
            if (options.graphError) return Promise.reject(options.graphError);
            sent.push(notification);
            return Promise.resolve({ id: `g-${sent.length}`, expirationDateTime: '2026-12-07T10:00:00Z' });
          },
        },
        scopes: [],
        targetHostName: 'app.example',
      }),
    ],
    queue,
    now: () => NOW,
  });
  return { queue, sent, delivery };
}

const message = (
  extra: Partial<DeferredMessage['notification']> = {},
  rest: Partial<DeferredMessage> = {},
) => ({
  userId: USER,
  tenantId: TENANT,
  notification: { payload: { visualContent: { title: 'Hi' } }, ...extra },
  ...rest,
});
const meta = { messageId: 'm-1', dequeueCount: 1 };

describe('DeferredDelivery', () => {
  it('sends a due message once, with an appNotificationId derived from the message id', async () => {
    const { delivery, sent } = setup();
    const first = await delivery.deliver(message(), meta, silent);
    await delivery.deliver(message(), { ...meta, dequeueCount: 2 }, silent);
    expect(first).toMatchObject({ kind: 'sent' });
    expect(sent).toHaveLength(2);
    expect(sent[0]!.appNotificationId).toBe(sent[1]!.appNotificationId);
    expect(sent[0]).toEqual({
      payload: { visualContent: { title: 'Hi' } },
      targetHostName: 'app.example',
      appNotificationId: sent[0]!.appNotificationId,
    });
    const other = await setup().delivery.deliver(message(), { ...meta, messageId: 'm-2' }, silent);
    expect(other).toMatchObject({ kind: 'sent' });
    expect((other as { appNotificationId: string }).appNotificationId).not.toBe(sent[0]!.appNotificationId);
  });

  it('puts a message with a future deliverAt back with that delay, pinning its appNotificationId', async () => {
    const { delivery, queue, sent } = setup();
    const deliverAt = new Date(NOW.getTime() + 90_000).toISOString();
    expect(await delivery.deliver(message({ deliverAt }), meta, silent)).toMatchObject({
      kind: 'scheduled',
      delaySec: 90,
    });
    expect(sent).toHaveLength(0);
    expect(queue.enqueued[0]!.delaySec).toBe(90);
    expect(queue.enqueued[0]!.message.notification.appNotificationId).toEqual(expect.any(String));
  });

  it.each([
    ['not JSON', 'not json', 'invalid_message'],
    ['against the schema', { userId: USER }, 'invalid_message'],
    ['a bad user id', { ...message(), userId: 'alice' }, 'invalid_message'],
  ])('dead-letters a message %s with reason invalid_message', async (_name, raw, reason) => {
    const { delivery, queue, sent } = setup();
    expect(await delivery.deliver(raw, meta, silent)).toEqual({ kind: 'dead-lettered', reason });
    expect(queue.poisoned[0]).toMatchObject({ reason, messageId: 'm-1', message: raw });
    expect(sent).toHaveLength(0);
  });

  it.each(['not_registered', 'invalid_grant'] as const)(
    'dead-letters %s from the token source',
    async (code) => {
      const { delivery, queue } = setup({ tokenError: new AppError(code) });
      expect(await delivery.deliver(message(), meta, silent)).toEqual({
        kind: 'dead-lettered',
        reason: code,
      });
      expect(queue.poisoned[0]!.reason).toBe(code);
      expect(queue.enqueued).toHaveLength(0);
    },
  );

  it('dead-letters what Graph rejects', async () => {
    const { delivery, queue } = setup({ graphError: new AppError('upstream_rejected') });
    expect(await delivery.deliver(message(), meta, silent)).toEqual({
      kind: 'dead-lettered',
      reason: 'upstream_rejected',
    });
    expect(queue.poisoned).toHaveLength(1);
  });

  it('puts a transient failure back honouring Retry-After, then gives up after the last attempt', async () => {
    const busy = new AppError('upstream_unavailable', { retryAfterSeconds: 7 });
    const { delivery, queue } = setup({ graphError: busy });
    expect(await delivery.deliver(message(), meta, silent)).toMatchObject({
      kind: 'retry',
      delaySec: 7,
      attempt: 1,
    });
    const copy = queue.enqueued[0]!.message;
    expect(copy.attempt).toBe(2);
    expect(copy.notification.appNotificationId).toEqual(expect.any(String));

    const last = message({}, { attempt: MAX_ATTEMPTS });
    expect(await delivery.deliver(last, meta, silent)).toEqual({
      kind: 'dead-lettered',
      reason: 'upstream_unavailable',
    });
    expect(queue.poisoned[0]!.reason).toBe('upstream_unavailable');
  });

  it('tries as often as host.json lets the host', () => {
    const hostJson = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'host.json'), 'utf8')) as {
      extensions: { queues: { maxDequeueCount: number } };
    };
    expect(hostJson.extensions.queues.maxDequeueCount).toBe(MAX_ATTEMPTS);
  });
});

describe('AbsentUserTokens', () => {
  const user: UserRef = { tenantId: TENANT, userId: USER };

  function fakes(storedAt: Date) {
    const calls = { load: 0, redeem: 0, save: 0, delete: 0 };
    let now = NOW.getTime();
    const store: StoredRefreshTokens = {
      load: async () => {
        calls.load++;
        return { refreshToken: 'rt-1', storedAt, version: 'v1' };
      },
      replace: async () => {
        calls.save++;
        return true;
      },
      deleteIfCurrent: async () => {
        calls.delete++;
        return true;
      },
    };
    let redeemError: AppError | undefined;
    const tokens = new AbsentUserTokens(
      store,
      {
        redeem: async () => {
          calls.redeem++;
          if (redeemError) throw redeemError;
          return {
            accessToken: `at-${calls.redeem}`,
            expiresOn: new Date(now + 3_600_000),
            refreshToken: 'rt-2',
          };
        },
        forget: () => undefined,
      },
      silent,
      { now: () => now },
    );
    return {
      calls,
      tokens,
      advance: (ms: number) => (now += ms),
      failRedeem: (e: AppError) => (redeemError = e),
    };
  }

  it('20 concurrent requests for one user cost one vault read and one refresh', async () => {
    const { calls, tokens } = fakes(NOW);
    const all = await Promise.all(Array.from({ length: 20 }, () => tokens.accessTokenFor(user)));
    expect(new Set(all)).toEqual(new Set(['at-1']));
    expect(calls).toMatchObject({ load: 1, redeem: 1, save: 0 });
  });

  it('keeps the access token until shortly before it expires', async () => {
    const { calls, tokens, advance } = fakes(NOW);
    await tokens.accessTokenFor(user);
    advance(50 * 60_000);
    expect(await tokens.accessTokenFor(user)).toBe('at-1');
    advance(6 * 60_000);
    expect(await tokens.accessTokenFor(user)).toBe('at-2');
    expect(calls.redeem).toBe(2);
  });

  it('writes the rotated refresh token back only when the stored one is older than a day', async () => {
    const fresh = fakes(new Date(NOW.getTime() - 3_600_000));
    await fresh.tokens.accessTokenFor(user);
    expect(fresh.calls.save).toBe(0);
    const old = fakes(new Date(NOW.getTime() - 25 * 3_600_000));
    await old.tokens.accessTokenFor(user);
    expect(old.calls.save).toBe(1);
  });

  it('deletes a revoked refresh token and says invalid_grant', async () => {
    const { calls, tokens, failRedeem } = fakes(NOW);
    failRedeem(new AppError('invalid_grant'));
    await expect(tokens.accessTokenFor(user)).rejects.toMatchObject({ code: 'invalid_grant' });
    expect(calls.delete).toBe(1);
  });

  it('says not_registered when no token is stored', async () => {
    const tokens = new AbsentUserTokens(
      { load: async () => undefined, replace: async () => false, deleteIfCurrent: async () => false },
      { redeem: () => Promise.reject(new Error('must not be called')), forget: () => undefined },
      silent,
    );
    await expect(tokens.accessTokenFor(user)).rejects.toMatchObject({ code: 'not_registered' });
  });
});
