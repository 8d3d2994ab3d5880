import { devUser, DEV_TENANT_ID, OTHER_TENANT_ID } from '../../dev/standins/identities';
import { enqueueDeferredNotification, type TeamsMessage } from '../../shared/queue/enqueue';
import { TestQueues } from '../support/queue';
import { eventually, startTestApp, type TestApp } from '../support/stack';

// The Teams activity feed channel through the local host against the stand-ins: every row of the
// contract's Teams section (POST /api/activities) and every rule of Teams queue messages. What is
// asserted is what Graph's stand-in received (its recipients' feeds and the attempts it answered)
// and what the poison queue holds.

const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/;
const TEAMS_APP_ID = '5f0c2a8e-1d3b-4c6a-9e8f-7a6b5c4d3e21';
const OBO = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

const alice = devUser('alice');
const bob = devUser('bob');
const carol = devUser('carol');

const text = (value: string) => ({
  activityType: 'systemDefault',
  templateParameters: [{ name: 'systemDefaultText', value }],
  previewText: { content: 'Expense report #42: 120 EUR' },
  topic: { source: 'text', value: 'Expense #42', webUrl: 'https://teams.microsoft.com/l/entity/x/expenses' },
});

/** A distinct text per activity, so each test finds exactly its own in a feed. */
let counter = 0;
const unique = (label: string) => `${label} #${++counter}`;

async function activityFor(app: TestApp, recipientOid: string, value: string) {
  return eventually(() => app.stack.graph!.activities(recipientOid).find((a) => a.text.includes(value)), {
    what: `an activity "${value}" in the feed`,
    timeoutMs: 30_000,
  });
}

function post(app: TestApp, token: string, body: unknown): Promise<Response> {
  return fetch(`${app.api}/activities`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function poisonFor(queues: TestQueues, messageId: string): Promise<Record<string, unknown>> {
  return eventually(async () => (await queues.poisoned()).find((p) => p.messageId === messageId), {
    what: `message ${messageId} in the poison queue`,
    timeoutMs: 30_000,
  });
}

async function register(app: TestApp, oid: string): Promise<void> {
  const token = await app.stack.entra!.issueUserToken({ user: oid });
  const res = await fetch(`${app.api}/me/registration`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(204);
}

function teamsMessage(
  sender: string,
  activity: Record<string, unknown>,
  tenantId = DEV_TENANT_ID,
): TeamsMessage {
  return {
    channel: 'teams',
    ...(sender === 'app' ? { as: 'app' as const } : { userId: sender }),
    tenantId,
    activity: activity as unknown as TeamsMessage['activity'],
  };
}

describe('sending as the app off (the default)', () => {
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
    await queues.drained();
    app.stack.graph!.teamsFaults.clear();
    await queues.clearPoison();
  });

  it("201: alice's activity lands in bob's feed with alice as the actor, by object id or by UPN", async () => {
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    const first = unique('approved your expense report');
    const res = await post(app, token, { recipient: { userId: bob.oid }, ...text(first) });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toEqual({ status: 'sent', channel: 'teams', id: expect.any(String), recipient: bob.oid });
    const delivered = await activityFor(app, bob.oid, first);
    expect(delivered.actor).toMatchObject({ kind: 'user', oid: alice.oid });
    expect(delivered).toMatchObject({
      previewText: 'Expense report #42: 120 EUR',
      topic: { value: 'Expense #42' },
    });

    const second = unique('by UPN');
    const byUpn = await post(app, token, { recipient: { userId: bob.upn.toUpperCase() }, ...text(second) });
    expect(byUpn.status).toBe(201);
    expect(((await byUpn.json()) as { recipient: string }).recipient).toBe(bob.upn.toUpperCase());
    await activityFor(app, bob.oid, second);
    // The caller's refresh token is kept, as for notifications: one secret serves both channels.
    expect(app.stack.keyVault!.current(`rt-${alice.tid}-${alice.oid}`)).toBeDefined();
    // The exchange asked for TEAMS_SCOPES.
    const obo = app.stack.entra!.requests.filter((r) => r.grantType === OBO && r.userOid === alice.oid);
    expect(obo.at(-1)?.scope).toContain('https://graph.microsoft.com/TeamsActivity.Send');
  });

  it.each([
    ['no activityType', { recipient: { userId: bob.oid }, templateParameters: [] }],
    [
      'systemDefault without systemDefaultText',
      { ...text('x'), templateParameters: [], recipient: { userId: bob.oid } },
    ],
    [
      'a text topic without webUrl',
      { ...text('x'), topic: { source: 'text', value: 'T' }, recipient: { userId: bob.oid } },
    ],
    [
      'a webUrl off Teams',
      {
        ...text('x'),
        topic: { source: 'text', value: 'T', webUrl: 'https://evil.example/x' },
        recipient: { userId: bob.oid },
      },
    ],
    [
      'a webUrl over 1,024 characters',
      {
        ...text('x'),
        topic: { source: 'text', value: 'T', webUrl: `https://teams.microsoft.com/${'a'.repeat(1000)}` },
        recipient: { userId: bob.oid },
      },
    ],
    [
      'an entityUrl that is not Graph',
      {
        ...text('x'),
        topic: { source: 'entityUrl', value: 'https://example.com/x' },
        recipient: { userId: bob.oid },
      },
    ],
    ['no topic and no TEAMS_APP_ID', { ...text('x'), topic: undefined, recipient: { userId: bob.oid } }],
    ['a chainId that is not an integer', { ...text('x'), chainId: 1.5, recipient: { userId: bob.oid } }],
    ['an unknown field', { ...text('x'), importance: 'high', recipient: { userId: bob.oid } }],
    ['a recipient that is neither an object id nor a UPN', { ...text('x'), recipient: { userId: 'bob' } }],
    [
      'deliverAt more than 7 days ahead',
      {
        ...text('x'),
        recipient: { userId: bob.oid },
        deliverAt: new Date(Date.now() + 8 * 864e5).toISOString(),
      },
    ],
  ])('400 invalid_request for %s, before any token exchange', async (_label, body) => {
    const user = devUser(`teams-invalid-${++counter}`);
    const token = await app.stack.entra!.issueUserToken({ user: user.oid });
    const res = await post(app, token, body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ code: 'invalid_request' });
    expect(app.stack.entra!.requests.filter((r) => r.userOid === user.oid)).toEqual([]);
  });

  it('400 recipient_is_sender for a self-send, by object id or by UPN in any letter case', async () => {
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    const attempts = app.stack.graph!.teamsAttempts.length;
    for (const userId of [alice.oid, alice.upn, alice.upn.toUpperCase()]) {
      const res = await post(app, token, { recipient: { userId }, ...text('me') });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'recipient_is_sender' });
    }
    expect(app.stack.graph!.teamsAttempts.length).toBe(attempts);
  });

  it('409 teams_app_not_installed when the recipient has no Teams app (carol)', async () => {
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    const res = await post(app, token, { recipient: { userId: carol.oid }, ...text('for carol') });
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ code: 'teams_app_not_installed' });
    expect(app.stack.graph!.activities(carol.oid)).toEqual([]);
  });

  it('404 recipient_not_found for someone Graph does not know', async () => {
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    const res = await post(app, token, { recipient: { userId: 'nobody@graph-notify.local' }, ...text('x') });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 'recipient_not_found' });
  });

  it.each([
    [429, 7],
    [503, 3],
  ])('503 upstream_unavailable with Retry-After when Graph answers %i', async (status, retryAfter) => {
    app.stack.graph!.teamsFaults.failNext(1, { status, retryAfter });
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    const res = await post(app, token, { recipient: { userId: bob.oid }, ...text('x') });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe(String(retryAfter));
    expect(await res.json()).toMatchObject({ code: 'upstream_unavailable' });
  });

  it('202 for a future deliverAt: queued, and in the feed then, not before', async () => {
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    const deliverAt = new Date(Date.now() + 3000).toISOString();
    const value = unique('later');
    const res = await post(app, token, { recipient: { userId: bob.oid }, ...text(value), deliverAt });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({
      status: 'scheduled',
      channel: 'teams',
      id: expect.any(String),
      deliverAt,
    });
    const delivered = await activityFor(app, bob.oid, value);
    expect(Date.parse(delivered.receivedAt)).toBeGreaterThanOrEqual(Date.parse(deliverAt));
    expect(delivered.actor).toMatchObject({ kind: 'user', oid: alice.oid });
  });

  describe('queue messages', () => {
    beforeAll(async () => {
      await register(app, alice.oid);
    });

    it('a registered sender notifies someone later: delivered with the sender as the actor', async () => {
      const value = unique('queued');
      await enqueueDeferredNotification(
        queues.queue,
        teamsMessage(alice.oid, { recipient: { userId: bob.upn }, ...text(value) }),
      );
      const delivered = await activityFor(app, bob.oid, value);
      expect(delivered.actor).toMatchObject({ kind: 'user', oid: alice.oid });
    });

    it('Graph 429 puts the message back for its Retry-After, then it is delivered once', async () => {
      app.stack.graph!.teamsFaults.failNext(1, { status: 429, retryAfter: 1 });
      const value = unique('after a 429');
      await enqueueDeferredNotification(
        queues.queue,
        teamsMessage(alice.oid, { recipient: { userId: bob.oid }, ...text(value) }),
      );
      const delivered = await activityFor(app, bob.oid, value);
      expect(delivered.postCount).toBe(1);
      expect(await queues.poisoned()).toEqual([]);
    });

    it.each([
      [
        'recipient_is_sender',
        () => teamsMessage(alice.oid, { recipient: { userId: alice.oid }, ...text('me') }),
      ],
      [
        'teams_app_not_installed',
        () => teamsMessage(alice.oid, { recipient: { userId: carol.oid }, ...text('x') }),
      ],
      [
        'recipient_not_found',
        () => teamsMessage(alice.oid, { recipient: { userId: 'nobody@graph-notify.local' }, ...text('x') }),
      ],
      [
        'not_registered',
        () =>
          teamsMessage(devUser('teams-never-registered').oid, {
            recipient: { userId: bob.oid },
            ...text('x'),
          }),
      ],
      [
        'app_permission_disabled',
        () => teamsMessage('app', { recipient: { userId: bob.oid }, ...text('x') }),
      ],
    ])('poison %s', async (reason, make) => {
      const { messageId } = await enqueueDeferredNotification(queues.queue, make());
      expect(await poisonFor(queues, messageId)).toMatchObject({ reason, messageId });
    });

    it('poison invalid_message for an activity Graph would refuse (topic link off Teams)', async () => {
      const raw = Buffer.from(
        JSON.stringify(
          teamsMessage(alice.oid, {
            recipient: { userId: bob.oid },
            ...text('x'),
            topic: { source: 'text', value: 'T', webUrl: 'https://evil.example/' },
          }),
        ),
      ).toString('base64');
      const messageId = await queues.sendRaw(raw);
      expect(await poisonFor(queues, messageId)).toMatchObject({ reason: 'invalid_message' });
    });
  });
});

describe('sending as the app on, TEAMS_APP_ID set, 2 sends per second per tenant', () => {
  let app: TestApp;
  let queues: TestQueues;

  beforeAll(async () => {
    app = await startTestApp({
      settings: { TEAMS_SEND_AS_APP: 'true', TEAMS_APP_ID, TEAMS_MAX_RPS_PER_TENANT: '2' },
    });
    // Graph's own limit at the same budget: a send over it would be a 429 there.
    app.stack.graph!.teamsRatePerSecond = 2;
    queues = new TestQueues(app.stack.settings.AzureWebJobsStorage!);
    await register(app, alice.oid);
  });

  afterAll(async () => {
    await app?.stop();
  });

  afterEach(async () => {
    await eventually(async () => ((await queues.pending()) === 0 ? true : undefined), {
      what: 'the queue to drain',
      timeoutMs: 60_000,
    });
    await queues.clearPoison();
  });

  it('a self-send goes out as the app (201), and the topic defaults to the Teams app with its teamsAppId', async () => {
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    const value = unique('reminder to self');
    const { topic: _topic, ...noTopic } = text(value);
    const res = await post(app, token, { recipient: { userId: alice.upn }, ...noTopic });
    expect(res.status).toBe(201);
    const delivered = await activityFor(app, alice.oid, value);
    expect(delivered.actor).toMatchObject({ kind: 'app' });
    expect(delivered.teamsAppId).toBe(TEAMS_APP_ID);
    expect(delivered.topic).toEqual({
      source: 'entityUrl',
      value: `${new URL(app.stack.graph!.baseUrl).origin}/v1.0/appCatalogs/teamsApps/${TEAMS_APP_ID}`,
    });
    expect(app.stack.entra!.requests.at(-1)).toMatchObject({ grantType: 'client_credentials', status: 200 });
  });

  it('"as": "app" queue messages are delivered as the app; to a tenant not allowed they are poison', async () => {
    const value = unique('from the expense system');
    await enqueueDeferredNotification(
      queues.queue,
      teamsMessage('app', { recipient: { userId: bob.oid }, ...text(value) }),
    );
    expect((await activityFor(app, bob.oid, value)).actor).toMatchObject({ kind: 'app' });

    const { messageId } = await enqueueDeferredNotification(
      queues.queue,
      teamsMessage('app', { recipient: { userId: bob.oid }, ...text('x') }, OTHER_TENANT_ID),
    );
    expect(await poisonFor(queues, messageId)).toMatchObject({ reason: 'tenant_not_allowed' });
  });

  it('queue pacing: 8 messages for one tenant all arrive, none early, and Graph never answers 429', async () => {
    const before = app.stack.graph!.teamsAttempts.length;
    const values = Array.from({ length: 8 }, () => unique('paced'));
    await Promise.all(
      values.map((v) =>
        enqueueDeferredNotification(
          queues.queue,
          teamsMessage(alice.oid, { recipient: { userId: bob.oid }, ...text(v) }),
        ),
      ),
    );
    for (const v of values) await activityFor(app, bob.oid, v);
    const attempts = app.stack.graph!.teamsAttempts.slice(before);
    expect(attempts.filter((a) => a.status === 429)).toEqual([]);
    expect(attempts.filter((a) => a.status === 204)).toHaveLength(8);
    // Never more than 2 in any one second, as Graph saw them arrive.
    const times = attempts.map((a) => Date.parse(a.at)).sort((x, y) => x - y);
    for (let i = 2; i < times.length; i++)
      expect(times[i]! - times[i - 2]!).toBeGreaterThanOrEqual(1000 - 50);
    expect(await queues.poisoned()).toEqual([]);
  });

  it('HTTP pacing: beyond a short wait for a slot the answer is 503 with Retry-After, and Graph never answers 429', async () => {
    const token = await app.stack.entra!.issueUserToken({ user: alice.oid });
    // The tenant's budget is per window of a second (and the margin): sends of the tests before this
    // one must have left it, or the burst below starts with a window already partly spent.
    const last = app.stack.graph!.teamsAttempts.at(-1);
    await eventually(() => (!last || Date.now() - Date.parse(last.at) > 1200 ? true : undefined), {
      what: "the previous sends to leave the pacer's window",
    });
    const before = app.stack.graph!.teamsAttempts.length;
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        post(app, token, { recipient: { userId: bob.oid }, ...text(unique('burst')) }),
      ),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(2);
    const refused = answers.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await r.json()).toMatchObject({ code: 'upstream_unavailable' });
    }
    expect(statuses.filter((s) => s !== 201 && s !== 503)).toEqual([]);
    const attempts = app.stack.graph!.teamsAttempts.slice(before);
    expect(attempts.filter((a) => a.status === 429)).toEqual([]);
    expect(attempts).toHaveLength(statuses.filter((s) => s === 201).length);
  });
});
