import { DEV_TENANT_ID, FUNCTION_IDENTITY, devUser } from '../../dev/standins/identities';
import { startKeyVaultStandIn, type KeyVaultStandIn } from '../../dev/standins/keyvault';
import { ensureLocalTls } from '../../dev/tls';
import { DEPENDENCY_BUDGET } from '../../shared/http/dependency-budget';
import { startHangingServer, type HangingServer } from '../support/hanging';
import { startTestApp, type TestApp } from '../support/stack';

// A dependency that accepts connections and never answers, through the whole app: the request
// still answers 503 upstream_unavailable with Retry-After within the request budget, after the
// documented number of tries. The bound is on a wait (nothing asserts how fast an answer is);
// the margin covers a loaded machine.
jest.setTimeout(60_000);

const MARGIN_MS = 5000;
const BOUND_MS = DEPENDENCY_BUDGET.requestMs + MARGIN_MS;

// A hanging Key Vault or identity service is never reached for the token the stand-in credential
// would get, but the app needs a complete Key Vault credential to start.
const functionIdentity = (authorityHost: string): Record<string, string> => ({
  AZURE_TENANT_ID: DEV_TENANT_ID,
  AZURE_CLIENT_ID: FUNCTION_IDENTITY.clientId,
  AZURE_CLIENT_SECRET: FUNCTION_IDENTITY.clientSecret,
  AZURE_AUTHORITY_HOST: authorityHost,
  KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'true',
});

async function userToken(app: TestApp, name: string): Promise<string> {
  return app.stack.entra!.issueUserToken({ user: devUser(name).oid });
}

/** Sends the request and measures how long the app took to answer it. */
async function timed(
  url: string,
  init: RequestInit,
): Promise<{ res: Response; elapsedMs: number; body: unknown }> {
  const started = Date.now();
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(BOUND_MS * 2) });
  const body: unknown = await res.json();
  return { res, elapsedMs: Date.now() - started, body };
}

function expectUnavailable(answer: { res: Response; elapsedMs: number; body: unknown }): void {
  expect(answer.res.status).toBe(503);
  expect(answer.body).toMatchObject({ code: 'upstream_unavailable' });
  expect(Number(answer.res.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(answer.elapsedMs).toBeLessThan(BOUND_MS);
}

describe('Key Vault accepts and never answers', () => {
  let vault: HangingServer;
  let app: TestApp;

  beforeAll(async () => {
    vault = await startHangingServer({ tls: await ensureLocalTls() });
    app = await startTestApp({ settings: { KEY_VAULT_URL: vault.url, ...functionIdentity(vault.url) } });
  });
  afterAll(async () => {
    await app?.stop();
    await vault?.close();
  });

  it('PUT /api/me/registration answers 503 within the budget, after the Key Vault tries', async () => {
    const answer = await timed(`${app.api}/me/registration`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await userToken(app, 'alice')}` },
    });
    expectUnavailable(answer);
    // The SDK's first request (the unauthenticated challenge request), once per try.
    expect(vault.requests).toHaveLength(DEPENDENCY_BUDGET.keyVault.tries);
  });
});

describe('the storage queue accepts and never answers', () => {
  let storage: HangingServer;
  let app: TestApp;

  beforeAll(async () => {
    storage = await startHangingServer();
    const account = 'devstoreaccount1';
    const connection = [
      'DefaultEndpointsProtocol=http',
      `AccountName=${account}`,
      // Azurite's published development key: the requests are signed, never checked here.
      'AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==',
      `QueueEndpoint=${storage.url}/${account}`,
      `BlobEndpoint=${storage.url}/${account}`,
      `TableEndpoint=${storage.url}/${account}`,
    ].join(';');
    app = await startTestApp({ settings: { AzureWebJobsStorage: connection } });
  });
  afterAll(async () => {
    await app?.stop();
    await storage?.close();
  });

  it('a scheduled POST /api/notifications answers 503 within the budget, after the storage tries', async () => {
    const answer = await timed(`${app.api}/notifications`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await userToken(app, 'bob')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        payload: { visualContent: { title: 'Later' } },
        deliverAt: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    });
    expectUnavailable(answer);
    // The host's own queue trigger polls the same endpoint (GET); the app's writes are the PUTs
    // creating the queue and its poison queue on first use, once per try each.
    const creates = storage.requests.filter((r) => r.method === 'PUT');
    expect(creates).toHaveLength(2 * DEPENDENCY_BUDGET.storage.tries);
  });
});

describe("the identity service accepts and never answers the function's Key Vault credential", () => {
  let identity: HangingServer;
  let vault: KeyVaultStandIn;
  let app: TestApp;

  beforeAll(async () => {
    const tls = await ensureLocalTls();
    identity = await startHangingServer({ tls });
    // A vault that challenges as Key Vault does, naming the hanging identity service; no token
    // ever reaches it.
    vault = await startKeyVaultStandIn({
      tls,
      port: 0,
      authorityUrl: identity.url,
      tenantId: DEV_TENANT_ID,
      verifyToken: () => Promise.reject(new Error('no token expected')),
    });
    app = await startTestApp({ settings: { KEY_VAULT_URL: vault.url, ...functionIdentity(identity.url) } });
  });
  afterAll(async () => {
    await app?.stop();
    await vault?.close();
    await identity?.close();
  });

  it('PUT /api/me/registration answers 503 within the budget', async () => {
    const answer = await timed(`${app.api}/me/registration`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await userToken(app, 'carol')}` },
    });
    expectUnavailable(answer);
    expect(identity.requests.length).toBeGreaterThanOrEqual(1);
    expect(identity.requests.length).toBeLessThanOrEqual(DEPENDENCY_BUDGET.keyVault.tries);
  });
});

describe("the identity service accepts and never answers the app's own requests", () => {
  let identity: HangingServer;
  let app: TestApp;

  beforeAll(async () => {
    identity = await startHangingServer({ tls: await ensureLocalTls() });
    app = await startTestApp({
      settings: {
        ENTRA_AUTHORITY_HOST: identity.url,
        ENTRA_TENANT_ID: DEV_TENANT_ID,
        ENTRA_CLIENT_ID: '3f6a2b10-8d4c-4e1f-9a7b-2c5d0e6f1a00',
        ENTRA_CLIENT_SECRET: 'unused',
      },
    });
  });
  afterAll(async () => {
    await app?.stop();
    await identity?.close();
  });

  it('a request answers 503 within the budget, after one try for the OpenID metadata', async () => {
    const answer = await timed(`${app.api}/me/registration`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${await userToken(app, 'alice')}` },
    });
    expectUnavailable(answer);
    expect(identity.requests).toEqual([
      { method: 'GET', path: `/${DEV_TENANT_ID}/v2.0/.well-known/openid-configuration` },
    ]);
  });
});
