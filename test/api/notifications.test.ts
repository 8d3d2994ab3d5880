import { QueueClient } from '@azure/storage-queue';
import type { IssueUserTokenOptions } from '../../dev/standins/entra';
import { SigningKeys } from '../../dev/standins/keys';
import { devUser, DEV_TENANT_ID, OTHER_TENANT_ID } from '../../dev/standins/identities';
import { startTestApp, type TestApp } from '../support/stack';

// Every HTTP row of the contract, driven through the local host against the stand-ins, with the
// real msal-node, @azure/identity and @azure/keyvault-secrets underneath. Assertions are on what
// the caller got and on what the stand-ins saw.

const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/;

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}

let app: TestApp;
/** Every secret the test saw go by, to search the app's output for at the end. */
const secretsSeen = new Set<string>();

beforeAll(async () => {
  app = await startTestApp();
});

afterAll(async () => {
  const output = app?.host.output() ?? '';
  await app?.stop();
  // No token, assertion or refresh token in anything the app logged, over the whole run.
  expect(output).not.toMatch(JWT);
  for (const secret of secretsSeen) expect(output).not.toContain(secret);
});

function secretName(oid: string, tid = DEV_TENANT_ID): string {
  return `rt-${tid}-${oid}`;
}

async function tokenFor(user: string, options: Omit<IssueUserTokenOptions, 'user'> = {}): Promise<string> {
  const token = await app.stack.entra!.issueUserToken({ user, ...options });
  secretsSeen.add(token);
  return token;
}

async function send(
  token: string | undefined,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${app.api}/notifications`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function problem(res: Response, status: number, code: string): Promise<Problem> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`expected ${status} ${code}, got ${res.status}: ${text}`);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  expect(text).not.toMatch(JWT);
  const body = JSON.parse(text) as Problem;
  expect(body).toMatchObject({ status, code, type: `urn:graph-notify:problem:${code}` });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  return body;
}

const hello = { payload: { visualContent: { title: 'Hello', body: 'from the tests' } } };

function graphAttemptsFor(oid: string): number {
  return app.stack.graph!.attempts.filter((a) => a.userOid === oid).length;
}

function oboRequestsFor(oid: string): number {
  return app.stack.entra!.requests.filter(
    (r) => r.grantType === 'urn:ietf:params:oauth:grant-type:jwt-bearer' && r.userOid === oid,
  ).length;
}

describe('POST /api/notifications — sent now', () => {
  it('exchanges the token, posts to Graph, stores the refresh token and answers 201', async () => {
    const alice = devUser('alice');
    const res = await send(await tokenFor('alice'), { ...hello, appNotificationId: 'order-1234-shipped' });
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, string>;
    expect(body).toEqual({
      status: 'sent',
      id: expect.any(String),
      appNotificationId: 'order-1234-shipped',
      expirationDateTime: expect.any(String),
    });
    const [received] = app.stack.graph!.received(alice.oid);
    expect(received).toMatchObject({
      id: body.id,
      appNotificationId: 'order-1234-shipped',
      targetHostName: 'graph-notify.local',
    });
    // Our own field never reaches Graph, and the body is Graph's resource.
    expect(received!.body).toEqual({
      ...hello,
      appNotificationId: 'order-1234-shipped',
      targetHostName: 'graph-notify.local',
    });
    const stored = app.stack.keyVault!.current(secretName(alice.oid));
    expect(stored?.tags).toMatchObject({ tenantId: DEV_TENANT_ID, userId: alice.oid });
    secretsSeen.add(stored!.value);
  });

  it('generates appNotificationId when absent', async () => {
    const bob = devUser('bob');
    const res = await send(await tokenFor('bob'), hello);
    expect(res.status).toBe(201);
    const body = (await res.json()) as { appNotificationId: string };
    expect(body.appNotificationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(app.stack.graph!.received(bob.oid).map((n) => n.appNotificationId)).toContain(
      body.appNotificationId,
    );
  });

  it('20 sends with one user token cost one OBO exchange and at most one Key Vault write', async () => {
    const user = devUser('twenty-sends');
    const token = await tokenFor(user.oid);
    const kvWritesBefore = app.stack.keyVault!.count('set', { name: secretName(user.oid) });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => send(token, { ...hello, appNotificationId: `n-${i}` })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(201));
    expect(oboRequestsFor(user.oid)).toBe(1);
    expect(app.stack.keyVault!.count('set', { name: secretName(user.oid) }) - kvWritesBefore).toBe(1);
    expect(app.stack.graph!.received(user.oid)).toHaveLength(20);
  });
});

describe('POST /api/notifications — the error table', () => {
  it('no Authorization → 401 missing_token with a Bearer challenge', async () => {
    const res = await send(undefined, hello);
    await problem(res, 401, 'missing_token');
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('a malformed Authorization → 401 missing_token', async () => {
    for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer not-a-jwt', 'Bearer']) {
      await problem(await send(undefined, hello, { authorization }), 401, 'missing_token');
    }
  });

  const invalid: [string, Omit<IssueUserTokenOptions, 'user'>][] = [
    ['a foreign signature', { signingKeys: new SigningKeys() }],
    ['an expired token', { expiresInSec: -600 }],
    ['a wrong issuer', { extraClaims: { iss: 'https://login.example.com/evil/v2.0' } }],
    ['a wrong audience', { audience: 'api://someone-else' }],
  ];
  it.each(invalid)('%s → 401 invalid_token', async (_name, options) => {
    const user = devUser(`invalid-${_name.replace(/\W/g, '')}`);
    const res = await send(await tokenFor(user.oid, options), hello);
    await problem(res, 401, 'invalid_token');
    expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(oboRequestsFor(user.oid)).toBe(0);
    expect(graphAttemptsFor(user.oid)).toBe(0);
  });

  it('a v1.0 token of an allowed tenant is accepted', async () => {
    const res = await send(await tokenFor('carol', { version: 1 }), hello);
    expect(res.status).toBe(201);
  });

  it('required scope missing → 403 insufficient_scope', async () => {
    const user = devUser('no-scope');
    await problem(
      await send(await tokenFor(user.oid, { scopes: ['User.Read'] }), hello),
      403,
      'insufficient_scope',
    );
    expect(graphAttemptsFor(user.oid)).toBe(0);
  });

  it('tenant not allowed → 403 tenant_not_allowed', async () => {
    const mallory = devUser('mallory');
    expect(mallory.tid).toBe(OTHER_TENANT_ID);
    await problem(
      await send(await tokenFor('mallory', { tenantId: OTHER_TENANT_ID }), hello),
      403,
      'tenant_not_allowed',
    );
    expect(oboRequestsFor(mallory.oid)).toBe(0);
  });

  it('a body that is not JSON → 400, a wrong content type → 415, both invalid_request', async () => {
    const token = await tokenFor('alice');
    await problem(await send(token, '{"payload":'), 400, 'invalid_request');
    await problem(
      await send(token, JSON.stringify(hello), { 'content-type': 'text/plain' }),
      415,
      'invalid_request',
    );
  });

  const againstSchema: [string, unknown][] = [
    ['no payload', { appNotificationId: 'x' }],
    ['an unknown property', { ...hello, colour: 'blue' }],
    ['a visualContent without title', { payload: { visualContent: { body: 'b' } } }],
    ['a bad priority', { ...hello, priority: 'Urgent' }],
    ['a bad platform', { ...hello, targetPolicy: { platformTypes: ['blackberry'] } }],
    [
      'an expiration over 30 days ahead',
      { ...hello, expirationDateTime: new Date(Date.now() + 31 * 864e5).toISOString() },
    ],
    [
      'a deliverAt over 7 days ahead',
      { ...hello, deliverAt: new Date(Date.now() + 8 * 864e5).toISOString() },
    ],
  ];
  it.each(againstSchema)('%s → 400 invalid_request and Graph receives nothing', async (_name, body) => {
    const user = devUser('schema-user');
    const before = graphAttemptsFor(user.oid);
    const res = await send(await tokenFor(user.oid), body);
    await problem(res, 400, 'invalid_request');
    expect(graphAttemptsFor(user.oid)).toBe(before);
  });

  it('platform types are read case-insensitively, as Graph does', async () => {
    const res = await send(await tokenFor('alice'), {
      ...hello,
      targetPolicy: { platformTypes: ['Windows', 'IOS'] },
    });
    expect(res.status).toBe(201);
  });

  it('a body over 64 KiB → 413 payload_too_large', async () => {
    const big = { payload: { rawContent: 'x'.repeat(65 * 1024) } };
    await problem(await send(await tokenFor('alice'), big), 413, 'payload_too_large');
  });

  it('the identity service needs the user (MFA) → 401 interaction_required with a claims challenge', async () => {
    const user = devUser('needs-mfa');
    app.stack.entra!.setUserState(user.oid, 'interaction_required');
    const res = await send(await tokenFor(user.oid), hello);
    const body = await problem(res, 401, 'interaction_required');
    const header = res.headers.get('www-authenticate') ?? '';
    expect(header).toMatch(/^Bearer /);
    expect(header).toContain('error="insufficient_claims"');
    const claims = /claims="([^"]+)"/.exec(header)?.[1];
    expect(claims).toBeDefined();
    expect(JSON.parse(Buffer.from(claims!, 'base64').toString('utf8'))).toHaveProperty('access_token');
    expect(body.detail).not.toMatch(JWT);
    expect(graphAttemptsFor(user.oid)).toBe(0);
  });

  it('consent missing → 401 interaction_required', async () => {
    const user = devUser('needs-consent');
    app.stack.entra!.setUserState(user.oid, 'consent_required');
    const res = await send(await tokenFor(user.oid), hello);
    await problem(res, 401, 'interaction_required');
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });

  it('the identity service is down → 503 upstream_unavailable with Retry-After', async () => {
    const user = devUser('identity-down');
    app.stack.entra!.faults.failNext(1, { status: 503 });
    const res = await send(await tokenFor(user.oid), hello);
    await problem(res, 503, 'upstream_unavailable');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(graphAttemptsFor(user.oid)).toBe(0);
  });

  it.each([
    [429, 7],
    [406, undefined],
    [503, 3],
  ])('Graph answers %s → 503 upstream_unavailable passing Retry-After on', async (status, retryAfter) => {
    const user = devUser(`graph-${status}`);
    app.stack.graph!.faults.failNext(1, { status, ...(retryAfter ? { retryAfter } : {}) });
    const res = await send(await tokenFor(user.oid), hello);
    await problem(res, 503, 'upstream_unavailable');
    const header = Number(res.headers.get('retry-after'));
    if (retryAfter) expect(header).toBe(retryAfter);
    else expect(header).toBeGreaterThan(0);
  });

  it('Graph refuses the access token → 503, and the retry gets a fresh token', async () => {
    const user = devUser('graph-401');
    const token = await tokenFor(user.oid);
    app.stack.graph!.faults.failNext(1, { status: 401 });
    const res = await send(token, hello);
    await problem(res, 503, 'upstream_unavailable');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await send(token, hello)).status).toBe(201);
    // The cached Graph token was dropped: the same user token was exchanged again.
    expect(oboRequestsFor(user.oid)).toBe(2);
  });

  it('Graph refuses the notification → 502 upstream_rejected with its error code', async () => {
    const user = devUser('graph-400');
    app.stack.graph!.faults.failNext(1, { status: 400 });
    const body = await problem(await send(await tokenFor(user.oid), hello), 502, 'upstream_rejected');
    expect(body.detail).toContain('BadRequest');
  });

  it('a future deliverAt → 202 scheduled: on the queue, stored for later, nothing sent yet', async () => {
    const user = devUser('schedules');
    const deliverAt = new Date(Date.now() + 3_600_000).toISOString();
    const queue = new QueueClient(app.stack.settings.AzureWebJobsStorage!, 'notifications-deferred');
    const before =
      (await queue.getProperties().catch(() => ({ approximateMessagesCount: 0 }))).approximateMessagesCount ??
      0;
    const res = await send(await tokenFor(user.oid), { ...hello, deliverAt, appNotificationId: 'later-1' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'scheduled', appNotificationId: 'later-1', deliverAt });
    expect((await queue.getProperties()).approximateMessagesCount).toBe(before + 1);
    expect(app.stack.keyVault!.current(secretName(user.oid))).toBeDefined();
    expect(graphAttemptsFor(user.oid)).toBe(0);
  });
});

describe('PUT and DELETE /api/me/registration', () => {
  async function registration(method: 'PUT' | 'DELETE', token?: string): Promise<Response> {
    return fetch(`${app.api}/me/registration`, {
      method,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  }

  it('opt-in stores the refresh token without sending; opt-out deletes it; both work twice', async () => {
    const user = devUser('registering');
    const token = await tokenFor(user.oid);
    const name = secretName(user.oid);

    expect((await registration('PUT', token)).status).toBe(204);
    const stored = app.stack.keyVault!.current(name);
    expect(stored?.tags).toMatchObject({ tenantId: DEV_TENANT_ID, userId: user.oid });
    secretsSeen.add(stored!.value);
    // The stored token is one the identity service will redeem.
    expect(graphAttemptsFor(user.oid)).toBe(0);

    expect((await registration('DELETE', token)).status).toBe(204);
    expect(app.stack.keyVault!.current(name)).toBeUndefined();
    expect((await registration('DELETE', token)).status).toBe(204);

    // Opt-out followed by opt-in (a soft-deleted secret must not block it).
    expect((await registration('PUT', token)).status).toBe(204);
    expect(app.stack.keyVault!.current(name)).toBeDefined();
  });

  it('answers the same auth errors', async () => {
    await problem(await registration('PUT'), 401, 'missing_token');
    await problem(await registration('DELETE'), 401, 'missing_token');
    await problem(
      await registration('PUT', await tokenFor('mallory', { tenantId: OTHER_TENANT_ID })),
      403,
      'tenant_not_allowed',
    );
  });
});
