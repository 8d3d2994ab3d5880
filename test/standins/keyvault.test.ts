// The Key Vault stand-in, driven by the real SecretClient over HTTPS so that what is tested is what the
// app will meet: the SDK's challenge flow, its retry policy, its pollers and its error mapping.
// Needs NODE_EXTRA_CA_CERTS pointing at the local CA (`node dist/dev/with-ca.js jest …`).
import { ClientSecretCredential } from '@azure/identity';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import type { JWTPayload } from 'jose';
import { recordConnections } from '../support/sockets';
import { ensureLocalTls, type LocalTls } from '../../dev/tls';
import {
  DEV_TENANT_ID,
  FUNCTION_IDENTITY,
  KEY_VAULT_RESOURCE,
  OTHER_TENANT_ID,
} from '../../dev/standins/identities';
import { startEntraStandIn, type EntraStandIn } from '../../dev/standins/entra';
import { SigningKeys } from '../../dev/standins/keys';
import { startKeyVaultStandIn, type KeyVaultStandIn } from '../../dev/standins/keyvault';

type TokenCredential = ConstructorParameters<typeof SecretClient>[1];
type GetToken = TokenCredential['getToken'];

// Never contacted by the test-local credential; named in the challenge only.
const AUTHORITY = 'https://127.0.0.1:9';

/** An app token minted locally, so the SDK's challenge flow runs for real without Entra. */
class LocalAppCredential implements TokenCredential {
  readonly requests: Array<{ scopes: string[]; tenantId: string | undefined }> = [];

  constructor(
    private readonly keys: SigningKeys,
    private readonly overrides: JWTPayload = {},
  ) {}

  getToken: GetToken = async (scopes, options) => {
    this.requests.push({ scopes: Array.isArray(scopes) ? scopes : [scopes], tenantId: options?.tenantId });
    const now = Math.floor(Date.now() / 1000);
    const token = await this.keys.sign({
      aud: KEY_VAULT_RESOURCE,
      iss: `${AUTHORITY}/${DEV_TENANT_ID}/`,
      tid: DEV_TENANT_ID,
      appid: FUNCTION_IDENTITY.clientId,
      oid: FUNCTION_IDENTITY.clientId,
      iat: now,
      nbf: now,
      exp: now + 3600,
      ...this.overrides,
    });
    return { token, expiresOnTimestamp: (now + 3600) * 1000 };
  };
}

const FAST_RETRIES: SecretClientOptions['retryOptions'] = {
  maxRetries: 2,
  retryDelayInMs: 1,
  maxRetryDelayInMs: 5,
};

/** Every host a socket is opened to during the run: only loopback may appear. */
const connections = recordConnections();

let tls: LocalTls;
const keys = new SigningKeys();
let vault: KeyVaultStandIn;
let cred: LocalAppCredential;
let client: SecretClient;

function newClient(credential: TokenCredential, options: SecretClientOptions = {}): SecretClient {
  return new SecretClient(vault.url, credential, {
    disableChallengeResourceVerification: true,
    retryOptions: FAST_RETRIES,
    ...options,
  });
}

/** The SDK's RestError, recognised by name (its class lives in a transitive dependency). */
interface RestError extends Error {
  statusCode?: number;
  code?: string;
  details?: unknown;
}

async function restError(p: Promise<unknown>): Promise<RestError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error && err.name === 'RestError') return err;
    throw err;
  }
  throw new Error('expected a RestError');
}

function innerCode(err: RestError): unknown {
  const details = err.details as { error?: { code?: string; innerError?: { code?: string } } } | undefined;
  return details?.error?.innerError?.code;
}

beforeAll(async () => {
  tls = await ensureLocalTls();
  vault = await startKeyVaultStandIn({
    tls,
    port: 0,
    authorityUrl: AUTHORITY,
    tenantId: DEV_TENANT_ID,
    verifyToken: async (token, audiences) => (await keys.verify(token, { audience: audiences })).payload,
  });
});

afterAll(async () => {
  await vault.close();
  const hosts = connections.stop();
  expect(hosts.length).toBeGreaterThan(0);
  expect(hosts.filter((h) => h !== '127.0.0.1')).toEqual([]);
});

beforeEach(() => {
  vault.reset();
  cred = new LocalAppCredential(keys);
  client = newClient(cred);
});

describe('challenge-based auth', () => {
  it('answers the first, bodiless request with the challenge the SDK parses, once per client', async () => {
    await client.setSecret('first', 'one');
    await client.getSecret('first');
    await client.setSecret('second', 'two');

    expect(vault.operations.map((o) => `${o.op}:${o.status}`)).toEqual([
      'challenge:401',
      'set:200',
      'get:200',
      'set:200',
    ]);
    // Asked with the resource and tenant named in the challenge.
    expect(cred.requests[0]).toEqual({ scopes: [`${KEY_VAULT_RESOURCE}/.default`], tenantId: DEV_TENANT_ID });

    // A second client has its own challenge.
    await newClient(cred).getSecret('first');
    expect(vault.count('challenge')).toBe(2);
  });

  it('sends the challenge header exactly, with no spaces inside values, before reading a body', async () => {
    const res = await fetch(`${vault.url}/secrets/x?api-version=7.5`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'never read' }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(
      `Bearer authorization="${AUTHORITY}/${DEV_TENANT_ID}", resource="https://vault.azure.net"`,
    );
    expect(await res.json()).toEqual({
      error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' },
    });
    expect(vault.current('x')).toBeUndefined();
  });

  it('refuses a token for another audience (AKV10022) and the SDK surfaces the 401', async () => {
    const wrong = newClient(new LocalAppCredential(keys, { aud: 'https://graph.microsoft.com' }));
    const err = await restError(wrong.getSecret('anything'));
    expect(err.statusCode).toBe(401);
    expect(err.code).toBe('Unauthorized');
    expect(err.message).toMatch(/^AKV10022: Invalid audience/);
    // The refused token arrives on the retry that follows the challenge; the SDK does not try again.
    expect(vault.operations.map((o) => `${o.op}:${o.status}`)).toEqual(['challenge:401', 'get:401']);
  });

  it('refuses a token signed by a key Entra never published (AKV10046)', async () => {
    const foreign = newClient(new LocalAppCredential(new SigningKeys()));
    const err = await restError(foreign.getSecret('anything'));
    expect(err.statusCode).toBe(401);
    expect(err.message).toMatch(/^AKV10046/);
  });

  it('refuses a token of another tenant (AKV10032)', async () => {
    const other = newClient(new LocalAppCredential(keys, { tid: OTHER_TENANT_ID }));
    const err = await restError(other.setSecret('anything', 'v'));
    expect(err.statusCode).toBe(401);
    expect(err.message).toMatch(/^AKV10032: Invalid issuer/);
    expect(vault.current('anything')).toBeUndefined();
  });

  it('requires api-version once authenticated', async () => {
    const { token } = (await cred.getToken([`${KEY_VAULT_RESOURCE}/.default`]))!;
    const res = await fetch(`${vault.url}/secrets/x/`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BadParameter');
  });
});

describe('secrets', () => {
  it('sets new versions, gets the latest or a given one, and updates tags', async () => {
    const v1 = await client.setSecret('refresh-alice', 'rt-1', {
      tags: { oid: 'alice' },
      contentType: 'text/plain',
    });
    const v2 = await client.setSecret('refresh-alice', 'rt-2', { tags: { oid: 'alice', gen: '2' } });
    expect(v1.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(v2.properties.version).not.toBe(v1.properties.version);
    expect(v2.properties.id).toBe(`${vault.url}/secrets/refresh-alice/${v2.properties.version}`);
    expect(v2.properties.vaultUrl).toBe(vault.url);
    expect(v2.properties.createdOn).toBeInstanceOf(Date);
    expect(v2.properties.recoveryLevel).toBe('Recoverable+Purgeable');
    expect(v2.properties.recoverableDays).toBe(90);

    const latest = await client.getSecret('refresh-alice');
    expect(latest.value).toBe('rt-2');
    expect(latest.properties.tags).toEqual({ oid: 'alice', gen: '2' });
    const old = await client.getSecret('refresh-alice', { version: v1.properties.version! });
    expect(old.value).toBe('rt-1');
    expect(old.properties.contentType).toBe('text/plain');
    expect(vault.count('getVersion')).toBe(1);

    await client.updateSecretProperties('refresh-alice', v2.properties.version!, {
      tags: { revoked: 'true' },
    });
    expect(vault.current('refresh-alice')).toMatchObject({
      value: 'rt-2',
      version: v2.properties.version,
      tags: { revoked: 'true' },
    });
    expect(vault.versionCount('refresh-alice')).toBe(2);
  });

  it('keeps expiry in Unix seconds and still returns an expired secret, as Key Vault does', async () => {
    const past = new Date(Math.floor(Date.now() / 1000 - 60) * 1000);
    await client.setSecret('expired', 'still-readable', { expiresOn: past });
    expect(vault.current('expired')?.expiresOn).toEqual(past);
    const got = await client.getSecret('expired');
    expect(got.value).toBe('still-readable');
    expect(got.properties.expiresOn).toEqual(past);
  });

  it('refuses to return a disabled secret (403 SecretDisabled)', async () => {
    await client.setSecret('disabled', 'hidden', { enabled: false });
    const err = await restError(client.getSecret('disabled'));
    expect(err.statusCode).toBe(403);
    expect(err.code).toBe('Forbidden');
    expect(innerCode(err)).toBe('SecretDisabled');
  });

  it('lists without values, in pages', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) await client.setSecret(`list-${n}`, `value-${n}`);
    await client.setSecret('list-a', 'value-a2');

    const names: string[] = [];
    for await (const p of client.listPropertiesOfSecrets()) {
      names.push(p.name);
      expect(p.version).toBeUndefined();
      expect(p.id).toBe(`${vault.url}/secrets/${p.name}`);
    }
    expect(names).toEqual(['list-a', 'list-b', 'list-c', 'list-d', 'list-e']);

    const pages: number[] = [];
    for await (const pg of client.listPropertiesOfSecrets().byPage({ maxPageSize: 2 })) pages.push(pg.length);
    expect(pages).toEqual([2, 2, 1]);

    const versions: string[] = [];
    for await (const p of client.listPropertiesOfSecretVersions('list-a')) versions.push(p.version ?? '');
    expect(versions).toHaveLength(2);
    expect(vault.count('listVersions')).toBe(1);
    // Key Vault lists versions of an unknown name as empty rather than 404.
    const none: unknown[] = [];
    for await (const p of client.listPropertiesOfSecretVersions('nobody')) none.push(p);
    expect(none).toEqual([]);
  });

  it('answers a missing secret with 404 SecretNotFound', async () => {
    const err = await restError(client.getSecret('missing'));
    expect(err.statusCode).toBe(404);
    expect(err.code).toBe('SecretNotFound');
    expect(vault.operations.at(-1)).toEqual({ op: 'get', name: 'missing', status: 404 });
  });

  it('refuses an invalid name with 400 BadParameter', async () => {
    const err = await restError(client.setSecret('not_valid', 'v'));
    expect(err.statusCode).toBe(400);
    expect(err.code).toBe('BadParameter');
  });

  it('treats names case-insensitively', async () => {
    await client.setSecret('Refresh-Bob', 'rt');
    expect((await client.getSecret('refresh-bob')).value).toBe('rt');
  });
});

describe('soft delete', () => {
  it('deletes softly: gone for get, visible as deleted, name blocked until purged', async () => {
    await client.setSecret('opt-out', 'rt');
    const poller = await client.beginDeleteSecret('opt-out', { intervalInMs: 1 });
    const deleted = await poller.pollUntilDone();
    expect(deleted.recoveryId).toBe(`${vault.url}/deletedsecrets/opt-out`);
    expect(deleted.deletedOn).toBeInstanceOf(Date);
    expect(deleted.scheduledPurgeDate!.getTime() - deleted.deletedOn!.getTime()).toBe(90 * 24 * 3600 * 1000);
    expect(deleted.value).toBeUndefined();
    expect(vault.deletedNames()).toEqual(['opt-out']);
    expect(vault.current('opt-out')).toBeUndefined();

    expect((await restError(client.getSecret('opt-out'))).code).toBe('SecretNotFound');
    expect((await client.getDeletedSecret('opt-out')).name).toBe('opt-out');

    const conflict = await restError(client.setSecret('opt-out', 'again'));
    expect(conflict.statusCode).toBe(409);
    expect(conflict.code).toBe('Conflict');
    expect(innerCode(conflict)).toBe('ObjectIsDeletedButRecoverable');

    // Opt-out followed by opt-in.
    await client.purgeDeletedSecret('opt-out');
    expect(vault.deletedNames()).toEqual([]);
    await client.setSecret('opt-out', 'fresh');
    expect(vault.current('opt-out')?.value).toBe('fresh');
    expect(vault.versionCount('opt-out')).toBe(1);
    expect(vault.count('purge', { status: 204 })).toBe(1);
  });

  it('recovers a deleted secret with its versions', async () => {
    await client.setSecret('back', 'v1');
    await client.setSecret('back', 'v2');
    await (await client.beginDeleteSecret('back', { intervalInMs: 1 })).pollUntilDone();
    const recovered = await (
      await client.beginRecoverDeletedSecret('back', { intervalInMs: 1 })
    ).pollUntilDone();
    expect(recovered.name).toBe('back');
    expect((await client.getSecret('back')).value).toBe('v2');
    expect(vault.versionCount('back')).toBe(2);
    expect(vault.count('recover', { status: 200 })).toBe(1);
  });

  it('answers purge and getDeleted of an unknown name with 404', async () => {
    expect((await restError(client.purgeDeletedSecret('never'))).statusCode).toBe(404);
    expect((await restError(client.getDeletedSecret('never'))).code).toBe('SecretNotFound');
  });
});

describe('faults', () => {
  beforeEach(async () => {
    // Past the challenge first, so the faults hit the operation under test.
    await client.setSecret('faulty', 'v');
    vault.operations.length = 0;
  });

  it('429 with Retry-After is retried by the SDK on its own', async () => {
    vault.faults.failNext(2, { status: 429, retryAfter: 0 });
    expect((await client.getSecret('faulty')).value).toBe('v');
    expect(vault.operations.map((o) => `${o.op}:${o.status}`)).toEqual(['get:429', 'get:429', 'get:200']);
  });

  it('429 without Retry-After is not retried: the caller gets Throttled', async () => {
    vault.faults.failNext(1, { status: 429 });
    const err = await restError(client.getSecret('faulty'));
    expect(err.statusCode).toBe(429);
    expect(err.code).toBe('Throttled');
    expect(vault.count('get')).toBe(1);
  });

  it('503 is retried up to maxRetries, then surfaces', async () => {
    vault.faults.failNext(1, { status: 503 });
    expect((await client.getSecret('faulty')).value).toBe('v');
    expect(vault.operations.map((o) => o.status)).toEqual([503, 200]);

    vault.operations.length = 0;
    vault.faults.failNext(3, { status: 503, retryAfter: 0 });
    const err = await restError(client.getSecret('faulty'));
    expect(err.statusCode).toBe(503);
    expect(vault.count('get', { status: 503 })).toBe(3);
    expect(vault.faults.pending).toBe(0);
  });
});

describe('latency', () => {
  it('delays every answer by latencyMs', async () => {
    const slow = await startKeyVaultStandIn({
      tls,
      authorityUrl: AUTHORITY,
      tenantId: DEV_TENANT_ID,
      verifyToken: async (token, audiences) => (await keys.verify(token, { audience: audiences })).payload,
      latencyMs: 40,
    });
    try {
      const started = performance.now();
      const res = await fetch(`${slow.url}/secrets?api-version=7.5`);
      expect(res.status).toBe(401);
      expect(performance.now() - started).toBeGreaterThanOrEqual(39);
    } finally {
      await slow.close();
    }
  });
});

describe('with the Entra stand-in and ClientSecretCredential (the function identity in the stack)', () => {
  let entra: EntraStandIn;
  let wired: KeyVaultStandIn;

  const functionCredential = (): ClientSecretCredential =>
    new ClientSecretCredential(DEV_TENANT_ID, FUNCTION_IDENTITY.clientId, FUNCTION_IDENTITY.clientSecret, {
      authorityHost: entra.url,
      disableInstanceDiscovery: true,
    });

  beforeAll(async () => {
    entra = await startEntraStandIn({ tls, port: 0 });
    wired = await startKeyVaultStandIn({
      tls,
      authorityUrl: entra.url,
      tenantId: DEV_TENANT_ID,
      verifyToken: (token, audiences) => entra.verifyIssued(token, audiences),
    });
  });

  afterAll(async () => {
    await wired.close();
    await entra.close();
  });

  it('gets one client-credentials token (with CAE claims) for the challenged vault and uses it', async () => {
    const kv = new SecretClient(wired.url, functionCredential(), {
      disableChallengeResourceVerification: true,
      retryOptions: FAST_RETRIES,
    });
    await kv.setSecret('refresh-carol', 'rt');
    expect((await kv.getSecret('refresh-carol')).value).toBe('rt');
    await (await kv.beginDeleteSecret('refresh-carol', { intervalInMs: 1 })).pollUntilDone();
    await kv.purgeDeletedSecret('refresh-carol');

    expect(wired.count('challenge')).toBe(1);
    expect(wired.operations.filter((o) => o.status === 401)).toHaveLength(1);
    const grants = entra.requests.filter((r) => r.grantType === 'client_credentials');
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({
      tenant: DEV_TENANT_ID,
      clientId: FUNCTION_IDENTITY.clientId,
      scope: `${KEY_VAULT_RESOURCE}/.default`,
      claims: true,
      status: 200,
    });
  });

  it('a vault of another tenant makes the credential refuse before asking Entra', async () => {
    const foreignVault = await startKeyVaultStandIn({
      tls,
      authorityUrl: entra.url,
      tenantId: OTHER_TENANT_ID,
      verifyToken: (token, audiences) => entra.verifyIssued(token, audiences),
    });
    try {
      const before = entra.count('client_credentials');
      const kv = new SecretClient(foreignVault.url, functionCredential(), {
        disableChallengeResourceVerification: true,
        retryOptions: FAST_RETRIES,
      });
      await expect(kv.getSecret('anything')).rejects.toThrow(/not configured to acquire tokens for tenant/);
      expect(entra.count('client_credentials')).toBe(before);
      expect(foreignVault.operations).toEqual([{ op: 'challenge', name: 'anything', status: 401 }]);
    } finally {
      await foreignVault.close();
    }
  });
});
