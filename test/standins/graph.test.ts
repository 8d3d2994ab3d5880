// The Graph notifications stand-in, spoken to over HTTPS with fetch as the app will.
// Needs NODE_EXTRA_CA_CERTS pointing at the local CA (`node dist/dev/with-ca.js jest …`).
import type { JWTPayload } from 'jose';
import { ensureLocalTls } from '../../dev/tls';
import { API_APP, DEV_TENANT_ID, GRAPH_RESOURCE, devUser } from '../../dev/standins/identities';
import { SigningKeys } from '../../dev/standins/keys';
import { startGraphStandIn, type GraphStandIn } from '../../dev/standins/graph';

const SCOPE = 'Notifications.ReadWrite.CreatedByApp';
const ISSUER = `https://sts.windows.net/${DEV_TENANT_ID}/`;
const DAY = 24 * 60 * 60 * 1000;
const alice = devUser('alice');
const bob = devUser('bob');

let keys: SigningKeys;
let graph: GraphStandIn;

/** A Graph token shaped as Entra ID issues it from the OBO exchange (v1.0 token). */
async function graphToken(overrides: JWTPayload = {}, user = alice, signer?: SigningKeys): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return (signer ?? keys).sign({
    aud: GRAPH_RESOURCE,
    iss: `https://sts.windows.net/${user.tid}/`,
    iat: now,
    nbf: now,
    exp: now + 3600,
    ver: '1.0',
    tid: user.tid,
    oid: user.oid,
    upn: user.upn,
    appid: API_APP.clientId,
    scp: SCOPE,
    ...overrides,
  });
}

function validBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    targetHostName: 'notifications.contoso.com',
    appNotificationId: `order-${Math.random().toString(36).slice(2)}`,
    groupName: 'orders',
    expirationDateTime: new Date(Date.now() + 2 * DAY).toISOString(),
    displayTimeToLive: 60,
    priority: 'High',
    payload: { visualContent: { title: 'Order shipped', body: 'Arrives Tuesday' } },
    targetPolicy: { platformTypes: ['windows', 'ios', 'android'] },
    ...overrides,
  };
}

interface PostOptions {
  token?: string | null;
  headers?: Record<string, string>;
  raw?: string | Uint8Array;
}

async function post(body: unknown, options: PostOptions = {}): Promise<Response> {
  const token = options.token === undefined ? await graphToken() : options.token;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return fetch(`${graph.baseUrl}/me/notifications`, {
    method: 'POST',
    headers,
    body: options.raw ?? JSON.stringify(body),
  });
}

interface GraphErrorBody {
  error: { code: string; message: string; innerError: Record<string, string> };
}

async function expectGraphError(
  res: Response,
  status: number,
  code: string,
): Promise<GraphErrorBody['error']> {
  expect(res.status).toBe(status);
  const body = (await res.json()) as GraphErrorBody;
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.innerError['request-id']).toBe(res.headers.get('request-id'));
  expect(body.error.innerError['client-request-id']).toBe(res.headers.get('client-request-id'));
  expect(body.error.innerError.date).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
  return body.error;
}

beforeAll(async () => {
  keys = new SigningKeys();
  graph = await startGraphStandIn({
    tls: await ensureLocalTls(),
    port: 0,
    verifyToken: async (token, audiences) =>
      (await keys.verify(token, { audience: audiences, issuer: ISSUER })).payload,
  });
});

afterEach(() => {
  graph.reset();
  graph.latencyMs = 0;
});

afterAll(async () => {
  await graph.close();
});

describe('POST /beta/me/notifications', () => {
  it('creates the notification: 201 with Graph headers and body, visible in both views', async () => {
    const token = await graphToken();
    const body = validBody({
      payload: { visualContent: { title: '<script>alert(1)</script> & co', body: 'Arrives "Tuesday"' } },
    });
    const res = await post(body, {
      token,
      headers: { 'client-request-id': 'c0ffee00-0000-4000-8000-000000000001' },
    });

    expect(res.status).toBe(201);
    const created = (await res.json()) as Record<string, unknown>;
    expect(res.headers.get('content-type')).toMatch(/^application\/json;odata\.metadata=minimal/);
    expect(res.headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('client-request-id')).toBe('c0ffee00-0000-4000-8000-000000000001');
    expect(res.headers.get('location')).toBe(`${graph.baseUrl}/me/notifications/${String(created.id)}`);
    expect(created).toMatchObject({
      '@odata.context': `https://graph.microsoft.com/beta/$metadata#users('alice%40graph-notify.local')/notifications/$entity`,
      targetHostName: body.targetHostName,
      appNotificationId: body.appNotificationId,
      groupName: 'orders',
      displayTimeToLive: 60,
      priority: 'High',
      payload: body.payload,
      targetPolicy: { platformTypes: ['windows', 'ios', 'android'] },
    });
    expect(Date.parse(String(created.expirationDateTime))).toBe(Date.parse(String(body.expirationDateTime)));

    const [stored, ...others] = graph.received(alice.oid);
    expect(others).toHaveLength(0);
    expect(stored).toMatchObject({
      id: created.id,
      userOid: alice.oid,
      tenantId: DEV_TENANT_ID,
      postCount: 1,
      body,
      headers: { contentType: 'application/json', clientRequestId: 'c0ffee00-0000-4000-8000-000000000001' },
    });
    expect(graph.received(bob.oid)).toHaveLength(0);
    expect(JSON.stringify(graph.received())).not.toContain(token);
    expect(graph.attempts).toEqual([
      expect.objectContaining({ status: 201, userOid: alice.oid, fault: false }),
    ]);

    const view = await fetch(`${graph.url}/_standin/notifications?user=${alice.oid}`);
    const listed = (await view.json()) as { value: Array<{ id: string }> };
    expect(listed.value.map((n) => n.id)).toEqual([created.id]);
    const empty = (await (await fetch(`${graph.url}/_standin/notifications?user=${bob.oid}`)).json()) as {
      value: unknown[];
    };
    expect(empty.value).toHaveLength(0);

    const page = await fetch(`${graph.url}/`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('<meta http-equiv="refresh" content="2">');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; co');
    expect(html).toContain('Arrives &quot;Tuesday&quot;');
    expect(html).not.toContain('<script>');
    expect(html).toContain(alice.upn);
  });

  it('defaults expirationDateTime to 7 days and reads values as Graph does', async () => {
    const before = Date.now();
    const body = validBody({
      displayTimeToLive: '60',
      priority: 'low',
      targetPolicy: { platformTypes: ['Windows', 'IOS', 'WEBPUSH'] },
      payload: { rawContent: '{"orderId":1234}' },
    });
    delete body.expirationDateTime;
    const res = await post(body);
    expect(res.status).toBe(201);
    const created = (await res.json()) as Record<string, unknown>;
    const expires = Date.parse(String(created.expirationDateTime));
    expect(expires).toBeGreaterThanOrEqual(before + 7 * DAY - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 7 * DAY + 1000);
    expect(created).toMatchObject({
      displayTimeToLive: 60,
      priority: 'Low',
      targetPolicy: { platformTypes: ['windows', 'ios', 'webPush'] },
      payload: { rawContent: '{"orderId":1234}' },
    });
  });

  it('answers 401 InvalidAuthenticationToken for a missing, malformed, expired, foreign or misaddressed token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string | null, string]> = [
      [null, 'Access token is empty.'],
      ['not-a-jwt', 'Access token validation failure.'],
      [await graphToken({ iat: now - 7200, nbf: now - 7200, exp: now - 3600 }), 'Access token has expired'],
      [await graphToken({ aud: 'api://something-else' }), 'Invalid audience.'],
      [await graphToken({}, alice, new SigningKeys()), 'Access token validation failure.'],
      [
        await graphToken({ iss: 'https://sts.windows.net/another-tenant/' }),
        'Access token validation failure.',
      ],
    ];
    for (const [token, message] of cases) {
      const res = await post(validBody(), { token });
      const error = await expectGraphError(res, 401, 'InvalidAuthenticationToken');
      expect(error.message).toContain(message);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
    }
    expect(graph.received()).toHaveLength(0);
    expect(graph.attempts).toHaveLength(cases.length);
    expect(graph.attempts.every((a) => a.status === 401 && a.userOid === undefined)).toBe(true);
  });

  it('answers 403 without the Notifications scope and 400 for an app-only token', async () => {
    const forbidden = await post(validBody(), {
      token: await graphToken({ scp: 'User.Read openid profile' }),
    });
    await expectGraphError(forbidden, 403, 'Forbidden');

    const appOnly = await post(validBody(), {
      token: await graphToken({ scp: undefined, roles: ['Notifications.ReadWrite.All'] }),
    });
    const error = await expectGraphError(appOnly, 400, 'BadRequest');
    expect(error.message).toContain('delegated');

    expect(graph.received()).toHaveLength(0);
    expect(graph.attempts.map((a) => [a.status, a.userOid])).toEqual([
      [403, alice.oid],
      [400, alice.oid],
    ]);
  });

  it('rejects unknown properties the way OData does', async () => {
    const top = await post(validBody({ deliverAt: '2026-12-01T08:00:00Z' }));
    const error = await expectGraphError(top, 400, 'RequestBodyRead');
    expect(error.message).toBe(
      "The property 'deliverAt' does not exist on type 'microsoft.graph.notification'. " +
        'Make sure to only use property names that are defined by the type or mark the type as open type.',
    );

    const nested = await post(validBody({ payload: { visualContent: { title: 't', subtitle: 's' } } }));
    expect((await expectGraphError(nested, 400, 'RequestBodyRead')).message).toContain(
      "'subtitle' does not exist on type 'microsoft.graph.visualProperties'",
    );
    expect(graph.received()).toHaveLength(0);
  });

  it('rejects bodies against the notification contract with 400', async () => {
    const noHost = validBody();
    delete noHost.targetHostName;
    const noAppId = validBody();
    delete noAppId.appNotificationId;
    const cases: Array<[unknown, string, RegExp]> = [
      [noHost, 'BadRequest', /TargetHostName/],
      [noAppId, 'BadRequest', /AppNotificationId/],
      [validBody({ priority: 'Urgent' }), 'RequestBodyRead', /microsoft\.graph\.priority/],
      [
        validBody({ expirationDateTime: new Date(Date.now() + 31 * DAY).toISOString() }),
        'BadRequest',
        /30 days/,
      ],
      [
        validBody({ expirationDateTime: new Date(Date.now() - 60_000).toISOString() }),
        'BadRequest',
        /future/,
      ],
      [validBody({ expirationDateTime: '2026-12-31T00:00:00' }), 'RequestBodyRead', /Edm\.DateTimeOffset/],
      [validBody({ displayTimeToLive: 'a minute' }), 'RequestBodyRead', /Edm\.Int32/],
      [validBody({ payload: {} }), 'BadRequest', /RawContent or Payload\.VisualContent/],
      [validBody({ payload: { visualContent: { body: 'no title' } } }), 'BadRequest', /Title/],
      [validBody({ targetPolicy: { platformTypes: ['blackberry'] } }), 'BadRequest', /blackberry/],
      [validBody({ targetHostName: 42 }), 'RequestBodyRead', /Edm\.String/],
      [[validBody(), validBody()], 'BadRequest', /array/],
    ];
    for (const [body, code, message] of cases) {
      const error = await expectGraphError(await post(body), 400, code);
      expect(error.message).toMatch(message);
    }
    expect(graph.received()).toHaveLength(0);
    expect(graph.attempts).toHaveLength(cases.length);
  });

  it('needs Content-Type: application/json and a JSON body', async () => {
    const body = JSON.stringify(validBody());
    // fetch labels a string body text/plain unless told otherwise.
    const textPlain = await fetch(`${graph.baseUrl}/me/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await graphToken()}` },
      body,
    });
    await expectGraphError(textPlain, 415, 'RequestBodyRead');

    const noType = await fetch(`${graph.baseUrl}/me/notifications`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await graphToken()}` },
      body: new TextEncoder().encode(body),
    });
    await expectGraphError(noType, 400, 'BadRequest');

    await expectGraphError(await post(undefined, { raw: '{"targetHostName":' }), 400, 'BadRequest');
    expect(graph.received()).toHaveLength(0);
  });

  it('plays queued faults (429 with Retry-After, 503, 406, 400) and then recovers', async () => {
    graph.faults.failNext(1, { status: 429, retryAfter: 7 });
    graph.faults.failNext(1, { status: 503, retryAfter: 2 });
    graph.faults.failNext(1, { status: 406 });
    graph.faults.failNext(1, { status: 400 });
    const body = validBody();

    const throttled = await post(body);
    await expectGraphError(throttled, 429, 'TooManyRequests');
    expect(throttled.headers.get('retry-after')).toBe('7');
    const unavailable = await post(body);
    await expectGraphError(unavailable, 503, 'serviceNotAvailable');
    expect(unavailable.headers.get('retry-after')).toBe('2');
    const busy = await post(body);
    expect((await expectGraphError(busy, 406, 'activityLimitReached')).message).toMatch(
      /throttled or the server is busy/,
    );
    await expectGraphError(await post(body), 400, 'BadRequest');
    expect(graph.received()).toHaveLength(0);

    expect((await post(body)).status).toBe(201);
    expect(graph.faults.pending).toBe(0);
    expect(graph.received()).toEqual([expect.objectContaining({ postCount: 1 })]);
    expect(graph.attempts.map((a) => [a.status, a.fault])).toEqual([
      [429, true],
      [503, true],
      [406, true],
      [400, true],
      [201, false],
    ]);
  });

  it('keeps one notification per user and appNotificationId: a repost lands on the same one', async () => {
    const first = validBody({ appNotificationId: 'order-1234-shipped' });
    const again = { ...first, payload: { visualContent: { title: 'Order shipped (updated)' } } };

    const one = (await (await post(first)).json()) as { id: string };
    const two = await post(again);
    expect(two.status).toBe(201);
    expect(((await two.json()) as { id: string }).id).toBe(one.id);
    expect((await post(first, { token: await graphToken({}, bob) })).status).toBe(201);

    const forAlice = graph.received(alice.oid);
    expect(forAlice).toHaveLength(1);
    expect(forAlice[0]).toMatchObject({ id: one.id, postCount: 2, body: again });
    expect(forAlice[0]!.notification.payload.visualContent?.title).toBe('Order shipped (updated)');
    expect(graph.received(bob.oid)).toEqual([expect.objectContaining({ postCount: 1 })]);
    expect(graph.received(bob.oid)[0]!.id).not.toBe(one.id);
    expect(graph.attempts.filter((a) => a.userOid === alice.oid)).toHaveLength(2);
  });

  it('adds the configured latency to each answer', async () => {
    graph.latencyMs = 150;
    const started = Date.now();
    expect((await post(validBody())).status).toBe(201);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('answers other methods and versions as Graph does', async () => {
    const get = await fetch(`${graph.baseUrl}/me/notifications`, {
      headers: { authorization: `Bearer ${await graphToken()}` },
    });
    await expectGraphError(get, 405, 'MethodNotAllowed');
    const v1 = await fetch(`${graph.url}/v1.0/me/notifications`, { method: 'POST' });
    expect(v1.status).toBe(400);
    expect(((await v1.json()) as GraphErrorBody).error.message).toContain("segment 'notifications'");
  });
});
