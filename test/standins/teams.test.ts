// The Graph stand-in's Teams activity feed endpoint (`userTeamwork: sendActivityNotification`),
// spoken to over HTTPS with fetch, with Graph tokens the Entra stand-in issues to msal-node (OBO
// for delegated calls, client credentials for app-only ones). Assertions are on what the stand-in
// recorded and answered. Needs NODE_EXTRA_CA_CERTS pointing at the local CA (`node dist/dev/with-ca.js jest …`).
import { ConfidentialClientApplication, type AuthenticationResult } from '@azure/msal-node';
import { decodeJwt } from 'jose';
import { ensureLocalTls, type LocalTls } from '../../dev/tls';
import { startEntraStandIn, type EntraStandIn } from '../../dev/standins/entra';
import { startGraphStandIn, type GraphStandIn } from '../../dev/standins/graph';
import {
  API_APP,
  DEV_TENANT_ID,
  GRAPH_APP_ID,
  GRAPH_RESOURCE,
  OTHER_TENANT_ID,
  devUser,
} from '../../dev/standins/identities';
import { escapeHtml } from '../../dev/standins/graph-page';
import { activityTypesFromManifest } from '../../dev/standins/teams-body';
import { eventually } from '../support/stack';

const TEAMS_SCOPE = `${GRAPH_RESOURCE}/TeamsActivity.Send`;
const NOTIFICATIONS_SCOPE = `${GRAPH_RESOURCE}/Notifications.ReadWrite.CreatedByApp`;
const alice = devUser('alice');
const bob = devUser('bob');
const carol = devUser('carol');
const gina = devUser('gina');
const mallory = devUser('mallory');

let tls: LocalTls;
let entra: EntraStandIn;
let graph: GraphStandIn;
/** The Teams rate window's clock: each request moves it a second on unless a test holds it still. */
let clockMs = Date.parse('2026-01-05T09:00:00Z');
let ticking = true;

beforeAll(async () => {
  tls = await ensureLocalTls();
  entra = await startEntraStandIn({ tls, port: 0 });
  graph = await startGraphStandIn({
    tls,
    port: 0,
    verifyToken: (token, audiences) => entra.verifyIssued(token, audiences),
    clock: () => clockMs,
  });
});

afterEach(() => {
  graph.reset();
  ticking = true;
});

afterAll(async () => {
  await graph.close();
  await entra.close();
});

function oboApp(tenantId = DEV_TENANT_ID): ConfidentialClientApplication {
  return new ConfidentialClientApplication({
    auth: {
      clientId: API_APP.clientId,
      clientSecret: API_APP.clientSecret,
      authority: `${entra.url}/${tenantId}`,
      knownAuthorities: [`127.0.0.1:${entra.port}`],
    },
  });
}

async function must(result: Promise<AuthenticationResult | null>): Promise<AuthenticationResult> {
  const value = await result;
  if (!value) throw new Error('msal returned no result');
  return value;
}

/** A delegated Graph token for `user`, through OBO as the app gets it. */
async function delegated(
  user: string,
  scopes = [TEAMS_SCOPE, 'offline_access'],
  tenantId?: string,
): Promise<AuthenticationResult> {
  const assertion = await entra.issueUserToken({ user, ...(tenantId ? { tenantId } : {}) });
  return must(oboApp(tenantId).acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes }));
}

/** An app-only Graph token (client credentials), from a fresh msal app so nothing is cached. */
async function appOnly(tenantId = DEV_TENANT_ID): Promise<string> {
  const result = await must(
    oboApp(tenantId).acquireTokenByClientCredential({ scopes: [`${GRAPH_RESOURCE}/.default`] }),
  );
  return result.accessToken;
}

function systemDefault(text: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    topic: {
      source: 'text',
      value: 'Expense #42',
      webUrl: 'https://teams.microsoft.com/l/entity/00000000-0000-0000-0000-000000000000/expenses',
    },
    activityType: 'systemDefault',
    previewText: { content: 'Expense report #42: 120 EUR' },
    templateParameters: [{ name: 'systemDefaultText', value: text }],
    ...overrides,
  };
}

interface SendOptions {
  token: string;
  version?: 'v1.0' | 'beta';
  action?: string;
  headers?: Record<string, string>;
  raw?: string;
}

async function send(recipient: string, body: unknown, options: SendOptions): Promise<Response> {
  if (ticking) clockMs += 1000;
  const action = options.action ?? 'sendActivityNotification';
  const path = `/${options.version ?? 'v1.0'}/users/${encodeURIComponent(recipient)}/teamwork/${action}`;
  return fetch(`${graph.url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${options.token}`,
      'content-type': 'application/json',
      ...options.headers,
    },
    body: options.raw ?? JSON.stringify(body),
  });
}

interface GraphErrorBody {
  error: { code: string; message: string; innerError: Record<string, string> };
}

async function expectGraphError(res: Response, status: number, code: string): Promise<string> {
  const body = (await res.json()) as GraphErrorBody;
  expect({ status: res.status, code: body.error.code }).toEqual({ status, code });
  expect(body.error.innerError['request-id']).toBe(res.headers.get('request-id'));
  return body.error.message;
}

describe('Entra stand-in: Graph tokens for the Teams endpoint', () => {
  it('OBO and refresh grants for TeamsActivity.Send carry it in scp and echo the scope resource-qualified', async () => {
    const app = oboApp();
    const assertion = await entra.issueUserToken({ user: 'alice' });
    const first = await must(
      app.acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes: [TEAMS_SCOPE, 'offline_access'] }),
    );
    expect(decodeJwt(first.accessToken)).toMatchObject({
      scp: 'TeamsActivity.Send',
      oid: alice.oid,
      aud: GRAPH_RESOURCE,
    });
    expect(first.scopes).toEqual([TEAMS_SCOPE]);
    // msal caches the result only because the echo is resource-qualified, as Entra's is.
    const again = await must(app.acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes: [TEAMS_SCOPE] }));
    expect(again.fromCache).toBe(true);

    const cache = JSON.parse(app.getTokenCache().serialize()) as {
      RefreshToken?: Record<string, { secret: string }>;
    };
    const [refreshToken] = Object.values(cache.RefreshToken ?? {}).map((rt) => rt.secret);
    const refreshed = await must(
      oboApp().acquireTokenByRefreshToken({
        refreshToken: refreshToken!,
        scopes: [TEAMS_SCOPE],
        forceCache: true,
      }),
    );
    expect(decodeJwt(refreshed.accessToken)).toMatchObject({ scp: 'TeamsActivity.Send', oid: alice.oid });
    expect(entra.requests.at(-1)).toMatchObject({
      grantType: 'refresh_token',
      scope: expect.stringContaining(TEAMS_SCOPE),
      status: 200,
    });
  });

  it('client-credentials Graph tokens carry the granted application permissions in roles', async () => {
    expect(decodeJwt(await appOnly())).toMatchObject({
      aud: GRAPH_RESOURCE,
      idtyp: 'app',
      appid: API_APP.clientId,
      roles: ['TeamsActivity.Send'],
    });
    entra.setAppRoles(API_APP.clientId, GRAPH_APP_ID, []);
    try {
      expect(decodeJwt(await appOnly()).roles).toBeUndefined();
    } finally {
      entra.setAppRoles(API_APP.clientId, GRAPH_RESOURCE, ['TeamsActivity.Send']);
    }
  });
});

describe('POST /v1.0/users/{id}/teamwork/sendActivityNotification', () => {
  it('answers 204 with no body and puts the activity in the recipient feed, actor the signed-in user', async () => {
    const { accessToken } = await delegated('alice');
    const body = systemDefault('approved your expense report', { chainId: 42 });
    const res = await send(bob.oid, body, {
      token: accessToken,
      headers: { 'client-request-id': 'c0ffee00-0000-4000-8000-000000000042' },
    });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect(res.headers.get('client-request-id')).toBe('c0ffee00-0000-4000-8000-000000000042');

    const [activity, ...others] = graph.activities(bob.oid);
    expect(others).toHaveLength(0);
    expect(activity).toMatchObject({
      recipientOid: bob.oid,
      recipientUpn: bob.upn,
      tenantId: DEV_TENANT_ID,
      actor: { kind: 'user', oid: alice.oid, upn: alice.upn, name: alice.displayName },
      appId: API_APP.clientId,
      activityType: 'systemDefault',
      text: 'approved your expense report',
      previewText: 'Expense report #42: 120 EUR',
      topic: body.topic,
      chainId: 42,
      postCount: 1,
      body,
    });
    expect(graph.activities(alice.oid)).toEqual([]);
    expect(graph.teamsAttempts).toEqual([
      expect.objectContaining({
        status: 204,
        recipient: bob.oid,
        recipientOid: bob.oid,
        tenantId: DEV_TENANT_ID,
        appId: API_APP.clientId,
        delegated: true,
        actor: expect.objectContaining({ kind: 'user', oid: alice.oid }),
        fault: false,
      }),
    ]);
    // The same view over HTTP, by UPN.
    const listed = (await (await fetch(`${graph.url}/_standin/activities?user=${bob.upn}`)).json()) as {
      value: unknown[];
    };
    expect(listed.value).toEqual([
      expect.objectContaining({ id: activity!.id, text: 'approved your expense report' }),
    ]);
  });

  it('takes the recipient by UPN (case-insensitively), on beta and in the SDK action form too', async () => {
    const { accessToken } = await delegated('alice');
    const forms: SendOptions[] = [
      { token: accessToken },
      { token: accessToken, version: 'beta' },
      { token: accessToken, action: 'microsoft.graph.sendActivityNotification' },
    ];
    for (const form of forms) {
      expect((await send('Bob@Graph-Notify.LOCAL', systemDefault('by upn'), form)).status).toBe(204);
    }
    expect(graph.activities(bob.upn)).toHaveLength(3);
    expect(graph.teamsAttempts.map((a) => a.recipient)).toEqual(Array(3).fill('Bob@Graph-Notify.LOCAL'));
    expect(graph.teamsAttempts.every((a) => a.recipientOid === bob.oid)).toBe(true);
  });

  it('renders a declared activity type from its template and replaces an item by chainId', async () => {
    const { accessToken } = await delegated('alice');
    const body = (title: string) => ({
      topic: { source: 'text', value: 'Deploy', webUrl: 'https://teams.cloud.microsoft/l/app/1' },
      activityType: 'approvalRequired',
      chainId: 7,
      templateParameters: [{ name: 'approvalTitle', value: title }],
    });
    expect((await send(bob.upn, body('release 1.0'), { token: accessToken })).status).toBe(204);
    expect((await send(bob.upn, body('release 1.1'), { token: accessToken })).status).toBe(204);
    const feed = graph.activities(bob.oid);
    expect(feed).toHaveLength(1);
    expect(feed[0]).toMatchObject({
      text: 'Alice Local needs your approval: release 1.1',
      chainId: 7,
      postCount: 2,
    });
  });

  it('answers 404 Request_ResourceNotFound for a recipient not in the caller tenant', async () => {
    const { accessToken } = await delegated('alice');
    for (const recipient of ['nobody@graph-notify.local', devUser('nobody').oid, mallory.oid, mallory.upn]) {
      await expectGraphError(
        await send(recipient, systemDefault('hi'), { token: accessToken }),
        404,
        'Request_ResourceNotFound',
      );
    }
    expect(graph.activities()).toEqual([]);
    // Once added (as a load test adds its made-up users), the same user is found.
    const added = graph.addTeamsUser('nobody');
    expect(added.oid).toBe(devUser('nobody').oid);
    expect(
      (await send('nobody@graph-notify.local', systemDefault('hi'), { token: accessToken })).status,
    ).toBe(204);
  });

  it('answers 403 when the Teams app is not installed for the recipient (carol), with the reported text', async () => {
    const { accessToken } = await delegated('alice');
    const message = await expectGraphError(
      await send(carol.oid, systemDefault('hi'), { token: accessToken }),
      403,
      'Forbidden',
    );
    expect(message).toMatch(
      new RegExp(
        `^Application with AAD App Id '${API_APP.clientId}' is not authorized to generate custom text notifications about '.+' to the recipient\\. Ensure that the expected Teams app is installed in the target scope \\(user, team, or chat\\)\\.$`,
      ),
    );
    graph.setTeamsAppInstalled('carol', true);
    expect((await send(carol.upn, systemDefault('now installed'), { token: accessToken })).status).toBe(204);
    graph.setTeamsAppInstalled(bob.upn, false);
    await expectGraphError(
      await send(bob.oid, systemDefault('hi'), { token: accessToken }),
      403,
      'Forbidden',
    );
    // Gina, a guest, has it.
    expect((await send(gina.upn, systemDefault('hi guest'), { token: accessToken })).status).toBe(204);
    // reset() puts the install states back.
    graph.reset();
    await expectGraphError(
      await send(carol.oid, systemDefault('hi'), { token: accessToken }),
      403,
      'Forbidden',
    );
    expect((await send(bob.oid, systemDefault('hi'), { token: accessToken })).status).toBe(204);
  });

  it('answers 403 to a delegated token without TeamsActivity.Send', async () => {
    const { accessToken } = await delegated('alice', [NOTIFICATIONS_SCOPE, 'offline_access']);
    const message = await expectGraphError(
      await send(bob.oid, systemDefault('hi'), { token: accessToken }),
      403,
      'Forbidden',
    );
    expect(message).toMatch(
      /^Missing scope permissions on the request\. API requires one of 'TeamsActivity\.Send'\./,
    );
    expect(graph.activities()).toEqual([]);
    expect(graph.teamsAttempts[0]).toMatchObject({ status: 403, code: 'Forbidden', delegated: true });
  });

  it('lets an app token with the role notify anyone (actor: the app), and refuses one without', async () => {
    const token = await appOnly();
    expect((await send(alice.upn, systemDefault('your report is ready'), { token })).status).toBe(204);
    expect(graph.activities(alice.oid)).toEqual([
      expect.objectContaining({
        actor: { kind: 'app', appId: API_APP.clientId, name: 'graph-notify' },
        text: 'your report is ready',
      }),
    ]);
    expect(graph.teamsAttempts[0]).toMatchObject({ delegated: false, appId: API_APP.clientId, status: 204 });

    entra.setAppRoles(API_APP.clientId, GRAPH_RESOURCE, []);
    try {
      const message = await expectGraphError(
        await send(alice.upn, systemDefault('hi'), { token: await appOnly() }),
        403,
        'Forbidden',
      );
      expect(message).toMatch(/^Missing role permissions on the request\./);
    } finally {
      entra.setAppRoles(API_APP.clientId, GRAPH_RESOURCE, ['TeamsActivity.Send']);
    }
  });

  it('answers 204 to a user notifying themselves with a delegated token, and shows nothing', async () => {
    const { accessToken } = await delegated('alice');
    expect((await send(alice.upn, systemDefault('note to self'), { token: accessToken })).status).toBe(204);
    expect(graph.activities()).toEqual([]);
    expect(graph.teamsAttempts[0]).toMatchObject({ status: 204, dropped: 'self', recipientOid: alice.oid });
  });

  it('answers 401 without a valid Graph token', async () => {
    await expectGraphError(
      await send(bob.oid, systemDefault('hi'), { token: 'not-a-jwt' }),
      401,
      'InvalidAuthenticationToken',
    );
    // A token for this API, not for Graph.
    const apiToken = await entra.issueUserToken({ user: 'alice' });
    await expectGraphError(
      await send(bob.oid, systemDefault('hi'), { token: apiToken }),
      401,
      'InvalidAuthenticationToken',
    );
  });

  it('refuses bodies against the activity feed rules with 400', async () => {
    const { accessToken } = await delegated('alice');
    const topic = systemDefault('x').topic as Record<string, unknown>;
    const cases: Array<[string, unknown, string, RegExp]> = [
      [
        'recipient in the body',
        systemDefault('x', { recipient: { userId: bob.oid } }),
        'RequestBodyRead',
        /parameter 'recipient'/,
      ],
      [
        'unknown property',
        systemDefault('x', { deliverAt: '2026-01-01T00:00:00Z' }),
        'RequestBodyRead',
        /parameter 'deliverAt'/,
      ],
      [
        'unknown topic property',
        systemDefault('x', { topic: { ...topic, name: 'x' } }),
        'RequestBodyRead',
        /property 'name'/,
      ],
      ['no topic', systemDefault('x', { topic: undefined }), 'BadRequest', /topic/i],
      [
        'bad topic source',
        systemDefault('x', { topic: { ...topic, source: 'url' } }),
        'RequestBodyRead',
        /Cannot convert/,
      ],
      [
        'text topic without webUrl',
        systemDefault('x', { topic: { source: 'text', value: 'x' } }),
        'BadRequest',
        /webUrl/,
      ],
      [
        'webUrl not https',
        systemDefault('x', { topic: { ...topic, webUrl: 'http://teams.microsoft.com/l/x' } }),
        'BadRequest',
        /webUrl/,
      ],
      [
        'webUrl off Teams',
        systemDefault('x', { topic: { ...topic, webUrl: 'https://example.com/x' } }),
        'BadRequest',
        /webUrl/,
      ],
      [
        'webUrl over 1,024 characters',
        systemDefault('x', {
          topic: { ...topic, webUrl: `https://teams.microsoft.com/l/${'a'.repeat(1000)}` },
        }),
        'BadRequest',
        /1024/,
      ],
      [
        'entityUrl not Graph',
        systemDefault('x', {
          topic: { source: 'entityUrl', value: 'https://example.com/v1.0/appCatalogs/teamsApps/1' },
        }),
        'BadRequest',
        /Graph URL/,
      ],
      [
        'entityUrl of another resource',
        systemDefault('x', { topic: { source: 'entityUrl', value: 'https://graph.microsoft.com/v1.0/me' } }),
        'BadRequest',
        /not supported/,
      ],
      ['no activityType', systemDefault('x', { activityType: undefined }), 'BadRequest', /activityType/],
      [
        'undeclared activityType',
        systemDefault('x', { activityType: 'taskCreated' }),
        'BadRequest',
        /not declared/,
      ],
      [
        'systemDefault without its text',
        systemDefault('x', { templateParameters: [] }),
        'BadRequest',
        /systemDefaultText/,
      ],
      [
        'template value not a string',
        systemDefault('x', { templateParameters: [{ name: 'systemDefaultText', value: 5 }] }),
        'RequestBodyRead',
        /Cannot convert/,
      ],
      ['previewText a string', systemDefault('x', { previewText: 'hi' }), 'RequestBodyRead', /previewText/],
      ['chainId not an integer', systemDefault('x', { chainId: 1.5 }), 'RequestBodyRead', /Edm\.Int64/],
    ];
    for (const [name, body, code, message] of cases) {
      const res = await send(bob.oid, body, { token: accessToken });
      const text = await expectGraphError(res, 400, code).catch((err: unknown) => {
        throw new Error(`${name}: ${String(err)}`);
      });
      expect({ name, text }).toEqual({ name, text: expect.stringMatching(message) });
    }
    expect(graph.activities()).toEqual([]);

    // What is accepted: an entityUrl topic on Graph's host or on the stand-in's own origin.
    for (const value of [
      'https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/3f6a2b10',
      `${graph.url}/v1.0/appCatalogs/teamsApps/3f6a2b10`,
      `https://graph.microsoft.com/beta/users/${bob.oid}/teamwork/installedApps/abc`,
    ]) {
      const res = await send(
        bob.oid,
        systemDefault('ok', { topic: { source: 'entityUrl', value }, teamsAppId: 'x', iconId: 'y' }),
        {
          token: accessToken,
        },
      );
      expect({ value, status: res.status }).toEqual({ value, status: 204 });
    }
    await expectGraphError(await send(bob.oid, null, { token: accessToken, raw: '{' }), 400, 'BadRequest');
  });

  it('allows 5 requests per second per app per tenant, then 429 with Retry-After until the window moves', async () => {
    const { accessToken } = await delegated('alice');
    ticking = false;
    for (let i = 0; i < 5; i++)
      expect((await send(bob.oid, systemDefault(`n${i}`), { token: accessToken })).status).toBe(204);
    const throttled = await send(bob.oid, systemDefault('n5'), { token: accessToken });
    await expectGraphError(throttled, 429, 'TooManyRequests');
    expect(throttled.headers.get('retry-after')).toBe('1');

    // Another tenant has its own budget.
    const other = await delegated('mallory', undefined, OTHER_TENANT_ID);
    const tenantUser = graph.addTeamsUser('otto', { tenantId: OTHER_TENANT_ID });
    expect(
      (await send(tenantUser.upn, systemDefault('elsewhere'), { token: other.accessToken })).status,
    ).toBe(204);

    clockMs += 999;
    expect((await send(bob.oid, systemDefault('n6'), { token: accessToken })).status).toBe(429);
    clockMs += 1;
    expect((await send(bob.oid, systemDefault('n7'), { token: accessToken })).status).toBe(204);

    const statuses = graph.teamsAttempts.filter((a) => a.tenantId === DEV_TENANT_ID).map((a) => a.status);
    expect(statuses).toEqual([204, 204, 204, 204, 204, 429, 429, 204]);
    expect(graph.activities(bob.oid)).toHaveLength(6);
  });

  it('throttles on the real clock by default, and lets the request through after Retry-After', async () => {
    const realClock = await startGraphStandIn({
      tls,
      port: 0,
      verifyToken: (token, audiences) => entra.verifyIssued(token, audiences),
    });
    try {
      const token = await appOnly();
      const post = () =>
        fetch(`${realClock.url}/v1.0/users/${bob.oid}/teamwork/sendActivityNotification`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(systemDefault('burst')),
        });
      const burst = await Promise.all(Array.from({ length: 7 }, post));
      expect(burst.map((r) => r.status).sort()).toEqual([204, 204, 204, 204, 204, 429, 429]);
      // Poll (no fixed sleep) until the window lets one through again.
      await eventually(async () => ((await post()).status === 204 ? true : undefined), {
        timeoutMs: 5000,
        intervalMs: 100,
        what: 'the Teams rate window to move',
      });
      expect(realClock.activities(bob.oid).length).toBe(6);
    } finally {
      await realClock.close();
    }
  });

  it('plays injected faults, then recovers', async () => {
    const { accessToken } = await delegated('alice');
    graph.teamsFaults.failNext(1, { status: 429, retryAfter: 3 });
    graph.teamsFaults.failNext(1, { status: 503 });
    const first = await send(bob.oid, systemDefault('x'), { token: accessToken });
    await expectGraphError(first, 429, 'TooManyRequests');
    expect(first.headers.get('retry-after')).toBe('3');
    await expectGraphError(
      await send(bob.oid, systemDefault('x'), { token: accessToken }),
      503,
      'serviceNotAvailable',
    );
    expect((await send(bob.oid, systemDefault('x'), { token: accessToken })).status).toBe(204);
    expect(graph.teamsAttempts.map((a) => [a.status, a.fault])).toEqual([
      [429, true],
      [503, true],
      [204, false],
    ]);
    // The notifications endpoint's own fault queue is separate.
    expect(graph.faults.pending).toBe(0);
  });

  it('holds an answer until the test releases it, the activity already delivered', async () => {
    const { accessToken } = await delegated('alice');
    const held = graph.teamsHolds.hold((info) => info.recipientOid === bob.oid);
    const pending = send(bob.upn, systemDefault('held'), { token: accessToken });
    await held.reached;
    expect(graph.activities(bob.oid)).toHaveLength(1);
    held.release();
    expect((await pending).status).toBe(204);
  });

  it('answers other methods with 405', async () => {
    const res = await fetch(`${graph.url}/v1.0/users/${bob.oid}/teamwork/sendActivityNotification`);
    await expectGraphError(res, 405, 'MethodNotAllowed');
  });
});

describe('the page', () => {
  it("shows each user's activity feed, newest first, escaped, with the topic as a link", async () => {
    const { accessToken } = await delegated('alice');
    const preview = `<img src=x onerror=alert(1)> ${'p'.repeat(200)}`;
    await send(bob.oid, systemDefault('older item'), { token: accessToken });
    await send(bob.oid, systemDefault('<b>approved</b> "Q3" & more', { previewText: { content: preview } }), {
      token: accessToken,
    });
    await send(alice.upn, systemDefault('from the app'), { token: await appOnly() });
    const res = await fetch(`${graph.url}/`);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain('Teams activity feed');
    expect(html).toContain('&lt;b&gt;approved&lt;/b&gt; &quot;Q3&quot; &amp; more');
    expect(html).not.toContain('<b>approved</b>');
    expect(html).not.toContain('<img');
    // Teams shows the first 150 characters of the preview.
    expect(html).toContain(`${escapeHtml(preview.slice(0, 150))}…`);
    expect(html).not.toContain(escapeHtml(preview.slice(0, 151)));
    expect(html).toContain(
      '<a href="https://teams.microsoft.com/l/entity/00000000-0000-0000-0000-000000000000/expenses" rel="noopener noreferrer" target="_blank">Expense #42</a>',
    );
    expect(html).toContain('Alice Local');
    expect(html).toContain('graph-notify</span> <span class="small">(app)</span>');
    expect(html.indexOf('&lt;b&gt;approved')).toBeLessThan(html.indexOf('older item'));
    expect(html).toContain(`<meta http-equiv="refresh" content="2">`);
  });
});

describe('activityTypesFromManifest', () => {
  it('reads the declared types and their templates from a Teams app manifest', () => {
    expect(
      activityTypesFromManifest({
        activities: {
          activityTypes: [
            { type: 'taskAssigned', description: 'd', templateText: '{actor} assigned {task}' },
          ],
        },
      }),
    ).toEqual([{ type: 'taskAssigned', templateText: '{actor} assigned {task}' }]);
    expect(activityTypesFromManifest({})).toEqual([]);
  });
});
