// The refresh-token store against the Key Vault and Entra stand-ins over HTTPS, with the real
// SecretClient and ClientSecretCredential: what is asserted is what the vault holds and saw.
// Needs NODE_EXTRA_CA_CERTS pointing at the local CA (`node dist/dev/with-ca.js jest …`).
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import {
  KeyVaultRefreshTokenStore,
  REFRESH_TOKEN_CONTENT_TYPE,
  refreshTokenSecretName,
} from '../../shared/auth/refresh-token-store';
import { createKeyVaultRefreshTokenStore, keyVaultCredential } from '../../shared/auth/vault-client';
import { AppError } from '../../shared/errors';
import type { UserRef } from '../../shared/notifications/send';
import { startEntraStandIn, type EntraStandIn } from '../../dev/standins/entra';
import { DEV_TENANT_ID, DEV_USERS, FUNCTION_IDENTITY } from '../../dev/standins/identities';
import { startKeyVaultStandIn, type KeyVaultStandIn } from '../../dev/standins/keyvault';
import { freePort } from '../../dev/stack';
import { recordConnections } from '../support/sockets';
import { ensureLocalTls } from '../../dev/tls';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Every host a socket is opened to during the run: only loopback may appear. */
const connections = recordConnections();

let entra: EntraStandIn;
let vault: KeyVaultStandIn;
let credential: TokenCredential;
let store: KeyVaultRefreshTokenStore;
let warnings: string[];

const alice = (): UserRef => ({ tenantId: DEV_USERS[0]!.tid, userId: DEV_USERS[0]!.oid });
const bob = (): UserRef => ({ tenantId: DEV_USERS[1]!.tid, userId: DEV_USERS[1]!.oid });
const nameOf = (u: UserRef): string => `rt-${u.tenantId}-${u.userId}`;
/** A value that can be searched for in anything an error carries. */
const token = (): string => `refresh-token-${randomUUID()}`;

function newStore(): KeyVaultRefreshTokenStore {
  warnings = [];
  return createKeyVaultRefreshTokenStore(
    { keyVaultUrl: vault.url, keyVaultDisableChallengeResourceVerification: true },
    credential,
    {
      pollIntervalMs: 1,
      log: { info: () => undefined, warn: (message) => void warnings.push(message) },
    },
  );
}

async function appError(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

/** Everything an error could show a log or a serializer, causes included. */
function everythingIn(err: unknown): string {
  const parts = [inspect(err, { depth: 20, showHidden: true }), JSON.stringify(err)];
  let e: unknown = err;
  for (let i = 0; e instanceof Error && i < 10; i++, e = e.cause) {
    parts.push(e.message, JSON.stringify(e, Object.getOwnPropertyNames(e)));
  }
  return parts.join('\n');
}

const ops = (): string[] => vault.operations.map((o) => `${o.op}:${o.status}`);

beforeAll(async () => {
  const tls = await ensureLocalTls();
  entra = await startEntraStandIn({ tls, port: 0 });
  vault = await startKeyVaultStandIn({
    tls,
    port: 0,
    authorityUrl: entra.url,
    tenantId: DEV_TENANT_ID,
    verifyToken: (t, a) => entra.verifyIssued(t, a),
  });
  credential = keyVaultCredential({
    AZURE_TENANT_ID: DEV_TENANT_ID,
    AZURE_CLIENT_ID: FUNCTION_IDENTITY.clientId,
    AZURE_CLIENT_SECRET: FUNCTION_IDENTITY.clientSecret,
    AZURE_AUTHORITY_HOST: entra.url,
  });
});

afterAll(async () => {
  await vault?.close();
  await entra?.close();
  const hosts = connections.stop();
  expect(hosts.length).toBeGreaterThan(0);
  expect(hosts.filter((h) => h !== '127.0.0.1')).toEqual([]);
});

beforeEach(() => {
  vault.reset();
  store = newStore();
});

describe('save and load', () => {
  it('stores the token under rt-{tid}-{oid} with tags, content type and a 90-day expiry', async () => {
    const rt = token();
    const before = Date.now();
    await store.save(alice(), rt);

    expect(vault.liveNames()).toEqual([nameOf(alice())]);
    const held = vault.current(nameOf(alice()));
    expect(held).toMatchObject({ value: rt, contentType: REFRESH_TOKEN_CONTENT_TYPE, enabled: true });
    expect(held?.tags).toEqual({
      tenantId: alice().tenantId,
      userId: alice().userId,
      storedAt: held?.tags?.storedAt,
    });
    expect(held?.tags?.storedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const storedAt = Date.parse(held?.tags?.storedAt ?? '');
    expect(storedAt).toBeGreaterThanOrEqual(before - 1000);
    // Key Vault keeps expiry in whole seconds.
    expect(Math.abs(held!.expiresOn!.getTime() - (storedAt + 90 * DAY_MS))).toBeLessThan(1000);
    // The challenge, then one authenticated write, with one client-credentials token (CAE claims).
    expect(ops()).toEqual(['challenge:401', 'set:200']);
    expect(entra.requests.filter((r) => r.grantType === 'client_credentials').at(-1)).toMatchObject({
      clientId: FUNCTION_IDENTITY.clientId,
      claims: true,
      status: 200,
    });
  });

  it('loads what it saved, and the latest of several saves', async () => {
    await store.save(alice(), token());
    const rt = token();
    await store.save(alice(), rt);
    const loaded = await store.load(alice());
    expect(loaded?.refreshToken).toBe(rt);
    expect(loaded?.storedAt.toISOString()).toBe(vault.current(nameOf(alice()))?.tags?.storedAt);
    expect(loaded?.expiresOn).toEqual(vault.current(nameOf(alice()))?.expiresOn);
    expect(vault.versionCount(nameOf(alice()))).toBe(2);
  });

  it('loads an unknown user as undefined (404 SecretNotFound)', async () => {
    await expect(store.load(bob())).resolves.toBeUndefined();
    expect(vault.operations.at(-1)).toEqual({ op: 'get', name: nameOf(bob()), status: 404 });
  });

  it('takes the lifetime from its options', async () => {
    const short = new KeyVaultRefreshTokenStore(
      new SecretClient(vault.url, credential, { disableChallengeResourceVerification: true }),
      { lifetimeDays: 1, now: () => new Date('2030-01-01T00:00:00Z') },
    );
    await short.save(alice(), token());
    expect(vault.current(nameOf(alice()))?.expiresOn).toEqual(new Date('2030-01-02T00:00:00Z'));
    expect(vault.current(nameOf(alice()))?.tags?.storedAt).toBe('2030-01-01T00:00:00.000Z');
  });

  it('lowercases GUIDs and refuses anything else before any request', async () => {
    expect(refreshTokenSecretName({ tenantId: DEV_TENANT_ID.toUpperCase(), userId: alice().userId })).toBe(
      nameOf(alice()),
    );
    for (const user of [
      { tenantId: DEV_TENANT_ID, userId: 'alice' },
      { tenantId: '../secrets/other', userId: alice().userId },
      { tenantId: `${DEV_TENANT_ID}-x`, userId: alice().userId },
      { tenantId: '', userId: '' },
    ]) {
      expect((await appError(store.save(user, token()))).code).toBe('invalid_request');
      expect((await appError(store.load(user))).code).toBe('invalid_request');
      expect((await appError(store.delete(user))).code).toBe('invalid_request');
    }
    expect(vault.operations).toEqual([]);
  });
});

describe('delete (opt-out)', () => {
  it('deletes and purges: no live and no deleted copy remains', async () => {
    await store.save(alice(), token());
    await store.save(bob(), token());
    await store.delete(alice());
    expect(vault.liveNames()).toEqual([nameOf(bob())]);
    expect(vault.deletedNames()).toEqual([]);
    expect(ops().slice(3)).toEqual(['delete:200', 'getDeleted:200', 'purge:204']);
    await expect(store.load(alice())).resolves.toBeUndefined();
  });

  it('resolves for a user who never stored anything', async () => {
    await expect(store.delete(bob())).resolves.toBeUndefined();
    expect(ops()).toEqual(['challenge:401', 'delete:404', 'getDeleted:404']);
  });

  it('finishes the purge of an earlier opt-out that only got as far as deleting', async () => {
    await store.save(alice(), token());
    const raw = new SecretClient(vault.url, credential, { disableChallengeResourceVerification: true });
    await (await raw.beginDeleteSecret(nameOf(alice()), { intervalInMs: 1 })).pollUntilDone();
    expect(vault.deletedNames()).toEqual([nameOf(alice())]);

    await store.delete(alice());
    expect(vault.deletedNames()).toEqual([]);
    expect(vault.count('purge', { status: 204 })).toBe(1);
  });

  it('opt-out then opt-in stores the new token as the only version', async () => {
    await store.save(alice(), token());
    await store.delete(alice());
    const rt = token();
    await store.save(alice(), rt);
    expect(vault.current(nameOf(alice()))?.value).toBe(rt);
    expect(vault.versionCount(nameOf(alice()))).toBe(1);
    // No conflict was met: the purge had already freed the name.
    expect(vault.count('set', { status: 409 })).toBe(0);
  });
});

describe('conditional writes and deletes (another instance, no shared memory)', () => {
  it('replace writes over the version it redeemed, and nothing else', async () => {
    await store.save(alice(), token());
    const loaded = (await store.load(alice()))!;
    const rotated = token();
    await expect(store.replace(alice(), rotated, loaded.version)).resolves.toBe(true);
    expect(vault.current(nameOf(alice()))?.value).toBe(rotated);
    // The stored token moved on (the user stored a new one): a stale write-back does nothing.
    await expect(store.replace(alice(), token(), loaded.version)).resolves.toBe(false);
    expect(vault.current(nameOf(alice()))?.value).toBe(rotated);
  });

  it('replace after an opt-out resurrects nothing, deleted-and-waiting or purged', async () => {
    await store.save(alice(), token());
    const loaded = (await store.load(alice()))!;
    await store.delete(alice());
    await expect(store.replace(alice(), token(), loaded.version)).resolves.toBe(false);
    expect(vault.liveNames()).toEqual([]);
    expect(vault.count('set')).toBe(1);
    expect(vault.count('purge')).toBe(1);
  });

  it('replace racing a delete between its read and its write leaves the deleted copy alone', async () => {
    await store.save(alice(), token());
    const loaded = (await store.load(alice()))!;
    const held = vault.holds.hold((r) => r.op === 'set');
    const replacing = store.replace(alice(), token(), loaded.version);
    await held.reached;
    // Another instance opts the user out, but gets only as far as the soft delete.
    await new SecretClient(vault.url, credential, { disableChallengeResourceVerification: true })
      .beginDeleteSecret(nameOf(alice()))
      .then((poller) => poller.pollUntilDone());
    held.release();
    await expect(replacing).resolves.toBe(false);
    expect(vault.liveNames()).toEqual([]);
    expect(vault.deletedNames()).toEqual([nameOf(alice())]);
    expect(vault.count('purge')).toBe(0);
  });

  it('deleteIfCurrent deletes only the version it names', async () => {
    await store.save(alice(), token());
    const first = (await store.load(alice()))!;
    await store.save(alice(), token());
    await expect(store.deleteIfCurrent(alice(), first.version)).resolves.toBe(false);
    expect(vault.liveNames()).toEqual([nameOf(alice())]);
    const second = (await store.load(alice()))!;
    await expect(store.deleteIfCurrent(alice(), second.version)).resolves.toBe(true);
    expect(vault.liveNames()).toEqual([]);
    expect(vault.deletedNames()).toEqual([]);
  });

  it('takes any 404 while deleting or purging as "nothing there", whatever code the body carries', async () => {
    const notFound = { status: 404, body: { error: { code: 'NotFound', message: 'gone' } } };
    vault.faults.failNext(2, notFound);
    await expect(store.delete(alice())).resolves.toBeUndefined();
    expect(ops()).toEqual(['delete:404', 'getDeleted:404']);
  });
});

describe('save over a soft-deleted copy', () => {
  async function leaveDeletedCopy(user: UserRef): Promise<void> {
    await store.save(user, token());
    const raw = new SecretClient(vault.url, credential, { disableChallengeResourceVerification: true });
    await (await raw.beginDeleteSecret(nameOf(user), { intervalInMs: 1 })).pollUntilDone();
    vault.operations.length = 0;
  }

  it('purges it and sets again', async () => {
    await leaveDeletedCopy(alice());
    const rt = token();
    await store.save(alice(), rt);
    expect(ops()).toEqual(['set:409', 'purge:204', 'set:200']);
    expect(vault.current(nameOf(alice()))?.value).toBe(rt);
    expect(vault.versionCount(nameOf(alice()))).toBe(1);
    expect(vault.deletedNames()).toEqual([]);
  });

  it('recovers and overwrites it when the vault refuses the purge (purge protection)', async () => {
    await leaveDeletedCopy(alice());
    // The stand-in has no purge protection: its answer to the purge is replaced by Key Vault's. The
    // faults answer in order, so the set's conflict (what the stand-in itself would say) goes first.
    vault.faults.failNext(1, {
      status: 409,
      body: {
        error: {
          code: 'Conflict',
          message: `Secret ${nameOf(alice())} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
          innererror: { code: 'ObjectIsDeletedButRecoverable' },
        },
      },
    });
    vault.faults.failNext(1, {
      status: 403,
      body: {
        error: {
          code: 'Forbidden',
          message:
            'Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.',
        },
      },
    });
    const rt = token();
    await store.save(alice(), rt);
    // The recover poller looks for a live secret before it asks for recovery.
    expect(ops()).toEqual(['set:409', 'purge:403', 'get:404', 'recover:200', 'get:200', 'set:200']);
    expect(warnings).toHaveLength(1);
    expect(vault.current(nameOf(alice()))?.value).toBe(rt);
    expect(vault.deletedNames()).toEqual([]);
    // The recovered version stays below the new one (recovery restores every version).
    expect(vault.versionCount(nameOf(alice()))).toBe(2);
  });

  it('waits out a name Key Vault is still purging (409 ObjectIsBeingDeleted)', async () => {
    await store.save(bob(), token());
    vault.operations.length = 0;
    vault.faults.failNext(2, {
      status: 409,
      body: {
        error: {
          code: 'Conflict',
          message: `Secret ${nameOf(alice())} is currently being deleted and cannot be re-created; retry later.`,
          innererror: { code: 'ObjectIsBeingDeleted' },
        },
      },
    });
    const rt = token();
    await store.save(alice(), rt);
    expect(ops()).toEqual(['set:409', 'set:409', 'set:200']);
    expect(vault.current(nameOf(alice()))?.value).toBe(rt);
  });
});

describe('failures', () => {
  beforeEach(async () => {
    // Past the challenge first, so that the faults hit the operation under test.
    await store.load(bob());
    vault.operations.length = 0;
  });

  it('429 beyond the retry budget is upstream_unavailable with the last Retry-After', async () => {
    vault.faults.failNext(1, { status: 429, retryAfter: 0 });
    vault.faults.failNext(1, { status: 429, retryAfter: 7 });
    const rt = token();
    const err = await appError(store.save(alice(), rt));
    expect(err).toMatchObject({
      code: 'upstream_unavailable',
      status: 503,
      retryable: true,
      retryAfterSeconds: 7,
    });
    expect(err.detail).toMatch(/^Key Vault answered 429 Throttled while storing a refresh token/);
    // The SDK retried once on its own (2 tries, the Key Vault budget), then gave up without waiting.
    expect(ops()).toEqual(['set:429', 'set:429']);
    expect(vault.current(nameOf(alice()))).toBeUndefined();
    expect(everythingIn(err)).not.toContain(rt);
  });

  it('503 beyond the retry budget is upstream_unavailable; without Retry-After it suggests 5 s', async () => {
    vault.faults.failNext(1, { status: 503, retryAfter: 0 });
    vault.faults.failNext(1, { status: 503 });
    const err = await appError(store.load(alice()));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 5 });
    expect(ops()).toEqual(['get:503', 'get:503']);

    vault.faults.failNext(2, { status: 503, retryAfter: 0 });
    // "0" would send our callers straight back: at least a second.
    expect((await appError(store.delete(alice()))).retryAfterSeconds).toBe(1);
  });

  it('a 503 within the budget is retried by the SDK and succeeds', async () => {
    vault.faults.failNext(1, { status: 503, retryAfter: 0 });
    await store.save(alice(), token());
    expect(ops()).toEqual(['set:503', 'set:200']);
  });

  it('403 names the missing permission for the operator, in an internal_error', async () => {
    vault.faults.failNext(1, {
      status: 403,
      body: {
        error: {
          code: 'Forbidden',
          message: 'Caller is not authorized to perform action on resource.',
          innererror: { code: 'ForbiddenByRbac' },
        },
      },
    });
    const rt = token();
    const err = await appError(store.save(alice(), rt));
    expect(err.code).toBe('internal_error');
    expect(err.detail).toMatch(/403 Forbidden\/ForbiddenByRbac\).*needs the secrets\/set permission/);
    expect(everythingIn(err)).not.toContain(rt);

    vault.faults.failNext(1, { status: 403 });
    expect((await appError(store.load(alice()))).detail).toMatch(/secrets\/get permission/);
  });

  it('a failed read is an error, never a miss', async () => {
    vault.faults.failNext(1, {
      status: 404,
      body: { error: { code: 'NotFound', message: 'No such path.' } },
    });
    expect((await appError(store.load(alice()))).code).toBe('internal_error');
    vault.faults.failNext(1, { status: 401, body: { error: { code: 'Unauthorized', message: 'AKV10032' } } });
    expect((await appError(store.load(alice()))).detail).toMatch(/refused the function's token/);
  });

  it('an unreachable vault is upstream_unavailable', async () => {
    const port = await freePort();
    const unreachable = new KeyVaultRefreshTokenStore(
      new SecretClient(`https://127.0.0.1:${port}`, credential, {
        disableChallengeResourceVerification: true,
        retryOptions: { maxRetries: 0 },
      }),
    );
    const rt = token();
    const err = await appError(unreachable.save(alice(), rt));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 5 });
    expect(err.detail).toBe('Key Vault could not be reached while storing a refresh token.');
    expect(everythingIn(err)).not.toContain(rt);
  });

  it('keeps no request, response or token in what it throws', async () => {
    const rt = token();
    vault.faults.failNext(3, { status: 503, retryAfter: 0 });
    const err = await appError(store.save(alice(), rt));
    expect(err.cause).toMatchObject({
      name: 'KeyVaultRequestError',
      status: 503,
      code: 'ServiceUnavailable',
    });
    expect(Object.getOwnPropertyNames(err.cause)).not.toContain('request');
    expect(everythingIn(err)).not.toContain(rt);
    expect(everythingIn(err)).not.toMatch(/Bearer|eyJ/);
  });
});

describe('keyVaultCredential', () => {
  it('builds a client-secret credential only with tenant and client id, and an https authority', () => {
    const missing = thrown(() => keyVaultCredential({ AZURE_CLIENT_SECRET: 's', AZURE_CLIENT_ID: 'c' }));
    expect(missing.code).toBe('invalid_config');
    expect(missing.detail).toContain('AZURE_TENANT_ID');
    expect(() =>
      keyVaultCredential({
        AZURE_CLIENT_SECRET: 's',
        AZURE_CLIENT_ID: 'c',
        AZURE_TENANT_ID: DEV_TENANT_ID,
        AZURE_AUTHORITY_HOST: 'http://127.0.0.1:1',
      }),
    ).toThrow(/https/);
  });

  it('uses the managed identity only where the platform advertises one (never the metadata address)', () => {
    expect(thrown(() => keyVaultCredential({})).code).toBe('invalid_config');
    expect(() => keyVaultCredential({ AZURE_CLIENT_ID: FUNCTION_IDENTITY.clientId })).toThrow(
      /IDENTITY_ENDPOINT/,
    );
    const env = { IDENTITY_ENDPOINT: 'http://127.0.0.1:1/msi/token', IDENTITY_HEADER: 'h' };
    expect(keyVaultCredential(env).kind).toBe('managedIdentity');
    // Created at the first token request, or when asked (no network access either way).
    expect(keyVaultCredential(env).instance()).toBeInstanceOf(ManagedIdentityCredential);
    expect(
      keyVaultCredential({ ...env, AZURE_CLIENT_ID: FUNCTION_IDENTITY.clientId }).instance(),
    ).toBeInstanceOf(ManagedIdentityCredential);
  });
});
