import { startFunctionHost } from '../../dev/host-process';
import {
  TOKEN_EXCHANGE_APP_ID,
  TOKEN_EXCHANGE_RESOURCE,
  type FederatedCredential,
  type TokenRequestRecord,
} from '../../dev/standins/entra';
import { API_APP, DEV_TENANT_ID, devUser, FUNCTION_IDENTITY } from '../../dev/standins/identities';
import { FUNCTION_USER_ASSIGNED_IDENTITY } from '../../dev/standins/managed-identity';
import { enqueueDeferredNotification } from '../../shared/queue/enqueue';
import { appServiceCertificate, type AppServiceCertificate } from '../support/app-service-certificate';
import { TestQueues } from '../support/queue';
import { eventually, startTestApp, type TestApp } from '../support/stack';
import { hostProbe, nonLoopback, type HostProbe } from '../telemetry/probe';

// The app without a secret in any setting, as it runs in Azure, through the local host: the
// Function App's managed identity (App Service's endpoint, a stand-in) as the OBO / refresh-token
// client assertion and as Key Vault's credential, or a certificate App Service loaded. Assertions
// are on what the Entra stand-in received and on the contract's answers.

const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/;
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const KNOWN_SECRETS = [API_APP.clientSecret, FUNCTION_IDENTITY.clientSecret];

interface Problem {
  status: number;
  code: string;
  detail: string;
}

function noSecretIn(settings: Record<string, string>): void {
  expect(settings.ENTRA_CLIENT_SECRET).toBeUndefined();
  expect(settings.AZURE_CLIENT_SECRET).toBeUndefined();
  for (const value of Object.values(settings))
    for (const secret of KNOWN_SECRETS) expect(value).not.toContain(secret);
}

async function send(app: TestApp, user: string, body: Record<string, unknown> = {}): Promise<Response> {
  const token = await app.stack.entra!.issueUserToken({ user: devUser(user).oid });
  return fetch(`${app.api}/notifications`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ payload: { visualContent: { title: 'No secrets' } }, ...body }),
  });
}

async function register(app: TestApp, user: string): Promise<Response> {
  const token = await app.stack.entra!.issueUserToken({ user: devUser(user).oid });
  return fetch(`${app.api}/me/registration`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}` },
  });
}

/** Send now, registration and a deferred send: the three grants' paths, each through the host. */
async function sendRegisterDefer(app: TestApp, queues: TestQueues, prefix: string): Promise<void> {
  const now = devUser(`${prefix}-now`);
  expect((await send(app, now.name)).status).toBe(201);
  expect(app.stack.graph!.received(now.oid)).toHaveLength(1);

  const later = devUser(`${prefix}-later`);
  expect((await register(app, later.name)).status).toBe(204);
  await enqueueDeferredNotification(queues.queue, {
    userId: later.oid,
    tenantId: DEV_TENANT_ID,
    notification: { payload: { visualContent: { title: 'Deferred, no secrets' } } },
  });
  await eventually(() => (app.stack.graph!.received(later.oid).length > 0 ? true : undefined), {
    what: 'the deferred notification at Graph',
    timeoutMs: 30_000,
  });
}

async function problemOf(res: Response): Promise<Problem> {
  const text = await res.text();
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  expect(text).not.toMatch(JWT);
  return JSON.parse(text) as Problem;
}

function appRequests(app: TestApp, grantType?: string): TokenRequestRecord[] {
  return app.stack.entra!.requests.filter(
    (r) => r.clientId === API_APP.clientId && (grantType === undefined || r.grantType === grantType),
  );
}

describe('managed identity as the client assertion (ENTRA_CLIENT_ASSERTION=managed-identity)', () => {
  let app: TestApp;
  let queues: TestQueues;
  let probe: HostProbe;

  beforeAll(async () => {
    probe = hostProbe();
    app = await startTestApp({ settings: { ...probe.settings, ENTRA_CLIENT_ASSERTION: 'managed-identity' } });
    queues = new TestQueues(app.stack.settings.AzureWebJobsStorage!);
  });

  afterAll(async () => {
    const output = app?.host.output() ?? '';
    await app?.stop();
    expect(output).not.toMatch(JWT);
    // Every socket the host opened went to loopback: the managed identity is App Service's local
    // endpoint, never the instance-metadata address.
    expect(nonLoopback(probe.sockets())).toEqual([]);
  });

  afterEach(() => {
    // Back to the trust the stack set up: the one federated credential for the app's identity.
    app.stack.entra!.clearFederatedCredentials(API_APP.clientId);
    app.stack.entra!.addFederatedCredential(API_APP.clientId, {
      issuer: app.stack.entra!.issuer(DEV_TENANT_ID),
      subject: FUNCTION_USER_ASSIGNED_IDENTITY.objectId,
      audiences: [TOKEN_EXCHANGE_RESOURCE],
    });
  });

  it('runs with no secret in any setting, the managed identity advertised as App Service does', () => {
    noSecretIn(app.stack.settings);
    expect(app.stack.settings).toMatchObject({
      ENTRA_CLIENT_ASSERTION: 'managed-identity',
      ENTRA_MANAGED_IDENTITY_CLIENT_ID: FUNCTION_USER_ASSIGNED_IDENTITY.clientId,
      AZURE_CLIENT_ID: FUNCTION_USER_ASSIGNED_IDENTITY.clientId,
      IDENTITY_ENDPOINT: app.stack.managedIdentity!.endpoint,
    });
  });

  it('sends, registers and delivers a deferred send, each grant authenticated by the federated token', async () => {
    await sendRegisterDefer(app, queues, 'mi');
    const grants = appRequests(app);
    expect(grants.map((r) => r.grantType)).toEqual(
      expect.arrayContaining(['urn:ietf:params:oauth:grant-type:jwt-bearer', 'refresh_token']),
    );
    for (const r of grants) {
      expect(r).toMatchObject({
        status: 200,
        clientAuth: 'federated',
        clientAssertionType: JWT_BEARER,
        // The managed identity's token, as a federated credential sees it.
        federated: {
          iss: app.stack.entra!.issuer(DEV_TENANT_ID),
          sub: FUNCTION_USER_ASSIGNED_IDENTITY.objectId,
          aud: [TOKEN_EXCHANGE_APP_ID],
        },
      });
    }
    // The identity endpoint was asked for the exchange token and for Key Vault's, by client id:
    // the user-assigned identity, not the system-assigned one.
    const asked = app.stack.managedIdentity!.requests;
    expect(asked).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ resource: TOKEN_EXCHANGE_RESOURCE, by: 'client_id', status: 200 }),
        expect.objectContaining({ resource: 'https://vault.azure.net', by: 'client_id', status: 200 }),
      ]),
    );
    expect(asked.every((r) => r.clientId === FUNCTION_USER_ASSIGNED_IDENTITY.clientId)).toBe(true);
    // The credential caches the exchange token: not one identity request per grant.
    expect(asked.filter((r) => r.resource === TOKEN_EXCHANGE_RESOURCE).length).toBeLessThan(grants.length);
    // No client-credentials token for Key Vault from Entra: the vault's token came from the identity.
    expect(app.stack.entra!.requests.filter((r) => r.grantType === 'client_credentials')).toEqual([]);
  });

  const mismatches: Array<[string, number, Partial<FederatedCredential>]> = [
    ['the subject is another identity', 700213, { subject: '11111111-2222-4333-8444-555555555555' }],
    ['the audience is another cloud’s', 700212, { audiences: ['api://AzureADTokenExchangeUSGov'] }],
    ['the issuer is another tenant’s', 700211, { issuer: 'https://login.microsoftonline.com/other/v2.0' }],
  ];
  it.each(mismatches)(
    'answers 500 credential_rejected when %s, Entra refusing with AADSTS%i',
    async (_why, aadsts, change) => {
      const entra = app.stack.entra!;
      entra.clearFederatedCredentials(API_APP.clientId);
      entra.addFederatedCredential(API_APP.clientId, {
        issuer: entra.issuer(DEV_TENANT_ID),
        subject: FUNCTION_USER_ASSIGNED_IDENTITY.objectId,
        audiences: [TOKEN_EXCHANGE_RESOURCE],
        ...change,
      });
      const res = await send(app, `mi-rejected-${aadsts}`);
      expect(res.status).toBe(500);
      const body = await problemOf(res);
      expect(body).toMatchObject({ status: 500, code: 'credential_rejected' });
      expect(body.detail).toContain(`AADSTS${aadsts}`);
      expect(appRequests(app).at(-1)).toMatchObject({
        status: 401,
        error: 'invalid_client',
        errorCode: aadsts,
        clientAuth: 'none',
      });
      // The operator is told what to check.
      await eventually(() =>
        /rejected this app's own credential.*federated identity credential/.test(app.host.output())
          ? true
          : undefined,
      );
    },
  );

  it('answers 500 credential_rejected when the app registration trusts no federated credential (AADSTS70021)', async () => {
    app.stack.entra!.clearFederatedCredentials(API_APP.clientId);
    const res = await send(app, 'mi-untrusted');
    expect(await problemOf(res)).toMatchObject({ status: 500, code: 'credential_rejected' });
    expect(appRequests(app).at(-1)).toMatchObject({
      status: 400,
      error: 'invalid_request',
      errorCode: 70021,
    });
  });
});

describe('a certificate App Service loaded (WEBSITE_LOAD_CERTIFICATES)', () => {
  let app: TestApp;
  let queues: TestQueues;
  let certificate: AppServiceCertificate;

  beforeAll(async () => {
    // Windows and Key Vault exports use PKCS#12's 3DES; OpenSSL 3's AES is covered by the unit test.
    certificate = await appServiceCertificate('3des');
    app = await startTestApp({
      settings: {
        WEBSITE_LOAD_CERTIFICATES: certificate.thumbprint,
        // Where App Service on Linux has /var/ssl/private.
        WEBSITE_PRIVATE_CERTS_PATH: certificate.directory,
      },
    });
    app.stack.entra!.registerClientCertificate(API_APP.clientId, certificate.certPem);
    queues = new TestQueues(app.stack.settings.AzureWebJobsStorage!);
  });

  afterAll(async () => {
    const output = app?.host.output() ?? '';
    await app?.stop();
    expect(output).not.toMatch(JWT);
  });

  it('sends, registers and delivers a deferred send with the certificate, and no secret anywhere', async () => {
    noSecretIn(app.stack.settings);
    await sendRegisterDefer(app, queues, 'cert');
    const grants = appRequests(app);
    expect(grants.length).toBeGreaterThanOrEqual(2);
    for (const r of grants) {
      expect(r).toMatchObject({
        status: 200,
        clientAuth: 'certificate',
        clientAssertionType: JWT_BEARER,
        // msal-node named the certificate by its SHA-256 thumbprint and sent its chain.
        certificateHeader: { x5tS256: true, x5c: true },
      });
    }
  });
});

describe('startup', () => {
  const base = {
    PATH: process.env.PATH ?? '',
    ENTRA_TENANT_ID: DEV_TENANT_ID,
    ENTRA_CLIENT_ID: API_APP.clientId,
    KEY_VAULT_URL: 'https://127.0.0.1:9/',
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  };

  it.each([
    ['no client credential', {}, /one client credential is required/],
    [
      'two client credentials',
      { ENTRA_CLIENT_SECRET: 'x', ENTRA_CLIENT_ASSERTION: 'managed-identity' },
      /set only one of the client credentials: ENTRA_CLIENT_SECRET and ENTRA_CLIENT_ASSERTION are set/,
    ],
    [
      'the managed identity assertion where App Service advertises no identity',
      { ENTRA_CLIENT_ASSERTION: 'managed-identity' },
      /ENTRA_CLIENT_ASSERTION=managed-identity needs a managed identity/,
    ],
    [
      'a loaded certificate that is not there',
      { WEBSITE_LOAD_CERTIFICATES: 'A'.repeat(40), WEBSITE_PRIVATE_CERTS_PATH: '/nonexistent-certs' },
      /WEBSITE_LOAD_CERTIFICATES A{40}.*cannot be read/,
    ],
  ])('refuses to start with %s, naming the problem', async (_why, settings, message) => {
    const started = startFunctionHost({ settings: { ...base, ...settings }, port: 0 });
    await expect(started).rejects.toThrow(message);
  });
});
