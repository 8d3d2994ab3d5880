// Opt-out is final on an instance: whatever is in flight for the user when DELETE arrives stores and
// caches nothing after it. Each case interleaves the operations deterministically: a stand-in holds
// one answer until the test releases it, and the opt-out runs in between. The real msal-node,
// SecretClient and Graph client run against the stand-ins; what is asserted is what the vault holds
// and saw, in order.
import { AbsentUserTokens } from '../../shared/auth/absent-user-tokens';
import type { Caller } from '../../shared/auth/caller';
import { OptOuts } from '../../shared/auth/opt-outs';
import type { KeyVaultRefreshTokenStore } from '../../shared/auth/refresh-token-store';
import { TokenService } from '../../shared/auth/token-service';
import { createKeyVaultRefreshTokenStore, keyVaultCredential } from '../../shared/auth/vault-client';
import { loadConfig } from '../../shared/config';
import { GraphNotificationClient } from '../../shared/graph/client';
import { NotificationService } from '../../shared/notifications/send';
import { startEntraStandIn, type EntraStandIn } from '../../dev/standins/entra';
import { startGraphStandIn, type GraphStandIn } from '../../dev/standins/graph';
import { API_APP, DEV_TENANT_ID, FUNCTION_IDENTITY, devUser } from '../../dev/standins/identities';
import { startKeyVaultStandIn, type KeyVaultStandIn } from '../../dev/standins/keyvault';
import { ensureLocalTls } from '../../dev/tls';

let entra: EntraStandIn;
let vault: KeyVaultStandIn;
let graph: GraphStandIn;
let store: KeyVaultRefreshTokenStore;

const silent = { info: () => undefined, warn: () => undefined };

beforeAll(async () => {
  const tls = await ensureLocalTls();
  entra = await startEntraStandIn({ tls, port: 0 });
  const verifyToken = (t: string, a: string[]) => entra.verifyIssued(t, a);
  vault = await startKeyVaultStandIn({
    tls,
    port: 0,
    authorityUrl: entra.url,
    tenantId: DEV_TENANT_ID,
    verifyToken,
  });
  graph = await startGraphStandIn({ tls, port: 0, verifyToken });
  store = createKeyVaultRefreshTokenStore(
    { keyVaultUrl: vault.url, keyVaultDisableChallengeResourceVerification: true },
    keyVaultCredential({
      AZURE_TENANT_ID: DEV_TENANT_ID,
      AZURE_CLIENT_ID: FUNCTION_IDENTITY.clientId,
      AZURE_CLIENT_SECRET: FUNCTION_IDENTITY.clientSecret,
      AZURE_AUTHORITY_HOST: entra.url,
    }),
    { pollIntervalMs: 1 },
  );
});

afterAll(async () => {
  await graph?.close();
  await vault?.close();
  await entra?.close();
});

/** One instance of the app's services, wired as shared/runtime.ts wires them. */
function instance(options: { rewriteAfterMs?: number } = {}) {
  const config = loadConfig({
    ENTRA_TENANT_ID: DEV_TENANT_ID,
    ENTRA_CLIENT_ID: API_APP.clientId,
    ENTRA_CLIENT_SECRET: API_APP.clientSecret,
    ENTRA_AUTHORITY_HOST: entra.url,
    KEY_VAULT_URL: vault.url,
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  });
  const tokens = new TokenService(config);
  const optOuts = new OptOuts();
  const deferred = new AbsentUserTokens(store, tokens, silent, {
    optOuts,
    ...(options.rewriteAfterMs !== undefined ? { rewriteAfterMs: options.rewriteAfterMs } : {}),
  });
  const notifications = new NotificationService({
    tokens,
    refreshTokens: store,
    graph: new GraphNotificationClient({ baseUrl: graph.baseUrl }),
    queue: { enqueue: () => Promise.reject(new Error('nothing is scheduled here')) },
    deferredTokens: deferred,
    targetHostName: 'graph-notify.test',
    optOuts,
  });
  return { tokens, deferred, notifications };
}

let users = 0;
async function caller(): Promise<Caller> {
  const user = devUser(`opt-out-${++users}`);
  const assertion = await entra.issueUserToken({ user: user.oid });
  return {
    tenantId: user.tid,
    userId: user.oid,
    scopes: ['Notifications.Send'],
    assertion,
    expiresAt: new Date(Date.now() + 3_600_000),
  };
}

const secretName = (c: Caller) => `rt-${c.tenantId}-${c.userId}`;
/** The vault's operations on one user's secret, in order, e.g. `set:200`, `delete:200`, `purge:204`. */
const vaultOps = (c: Caller) =>
  vault.operations.filter((o) => o.name?.toLowerCase() === secretName(c)).map((o) => `${o.op}:${o.status}`);

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

it('a redemption running when the user opts out caches nothing and sends nothing', async () => {
  const app = instance();
  const user = await caller();
  await app.notifications.register(user);
  const held = entra.holds.hold((r) => r.grantType === 'refresh_token' && r.userOid === user.userId);
  const acquiring = rejection(app.deferred.accessTokenFor(user));
  await held.reached;

  await app.notifications.unregister(user);
  held.release();

  expect(await acquiring).toMatchObject({ code: 'not_registered' });
  // Nothing kept: the next ask goes to the vault again and finds nothing, and msal holds no token.
  expect(await rejection(app.deferred.accessTokenFor(user))).toMatchObject({ code: 'not_registered' });
  expect(app.tokens.accessTokensHeld(user)).toBeUndefined();
  expect(vault.current(secretName(user))).toBeUndefined();
  expect(vault.deletedNames()).not.toContain(secretName(user));
});

it('a rotated refresh token being written back when the user opts out does not survive the opt-out', async () => {
  const app = instance({ rewriteAfterMs: 0 });
  const user = await caller();
  await app.notifications.register(user);
  // The write-back reads the stored version, then sets: hold the set until the opt-out has begun.
  const held = vault.holds.hold((r) => r.op === 'set' && r.name?.toLowerCase() === secretName(user));
  const acquiring = rejection(app.deferred.accessTokenFor(user));
  await held.reached;

  const optingOut = app.notifications.unregister(user);
  held.release();
  await optingOut;

  expect(await acquiring).toMatchObject({ code: 'not_registered' });
  expect(vault.current(secretName(user))).toBeUndefined();
  // The write landed before the delete, never after it.
  const ops = vaultOps(user);
  expect(ops.lastIndexOf('set:200')).toBeLessThan(ops.lastIndexOf('delete:200'));
  expect(ops.at(-1)).toBe('purge:204');
});

it('a send whose exchange is still running when the user opts out sends, but stores no refresh token', async () => {
  const app = instance();
  const user = await caller();
  const held = entra.holds.hold((r) => r.grantType.endsWith('jwt-bearer') && r.userOid === user.userId);
  const sending = app.notifications.sendNow(user, { payload: { visualContent: { title: 'Hi' } } }, silent);
  await held.reached;

  await app.notifications.unregister(user);
  held.release();

  await expect(sending).resolves.toMatchObject({ status: 'sent' });
  expect(graph.received(user.userId)).toHaveLength(1);
  expect(vault.current(secretName(user))).toBeUndefined();
  expect(vaultOps(user).filter((o) => o.startsWith('set'))).toEqual([]);
  // And the deferred path agrees.
  expect(await rejection(app.deferred.accessTokenFor(user))).toMatchObject({ code: 'not_registered' });
});

it('a registration whose exchange is still running when the user opts out stores nothing', async () => {
  const app = instance();
  const user = await caller();
  const held = entra.holds.hold((r) => r.grantType.endsWith('jwt-bearer') && r.userOid === user.userId);
  const registering = app.notifications.register(user);
  await held.reached;

  await app.notifications.unregister(user);
  held.release();

  await expect(registering).resolves.toBeUndefined();
  expect(vault.current(secretName(user))).toBeUndefined();
  expect(vaultOps(user).filter((o) => o.startsWith('set'))).toEqual([]);
});

it('a refresh token found revoked does not take with it one the user stored again meanwhile', async () => {
  const app = instance();
  const user = await caller();
  await app.notifications.register(user);
  entra.setUserState(user.userId, 'revoked');
  entra.setUserState(user.userId, 'ok');
  const held = entra.holds.hold((r) => r.grantType === 'refresh_token' && r.userOid === user.userId);
  const acquiring = rejection(app.deferred.accessTokenFor(user));
  await held.reached;

  // The user comes back and registers again (a new token, a new version) on another instance.
  await instance().notifications.register({
    ...user,
    assertion: await entra.issueUserToken({ user: user.userId }),
  });
  const restored = vault.current(secretName(user))!;
  held.release();

  expect(await acquiring).toMatchObject({ code: 'invalid_grant' });
  expect(vault.current(secretName(user))?.version).toBe(restored.version);
  expect(vaultOps(user)).not.toContain('delete:200');
  // And it works: the next deferred send redeems the new token.
  await expect(app.deferred.accessTokenFor(user)).resolves.toEqual(expect.any(String));
});
