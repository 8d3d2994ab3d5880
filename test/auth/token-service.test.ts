// The token service driven against the Entra stand-in over HTTPS, with the real msal-node.
// Assertions are on what the stand-in recorded and on the contract's codes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { selfSignedCertificate } from '../support/certificate';
import { ensureLocalTls } from '../../dev/tls';
import { MFA_POLICY_ID, startEntraStandIn, type EntraStandIn } from '../../dev/standins/entra';
import { SigningKeys } from '../../dev/standins/keys';
import { API_APP, DEV_TENANT_ID, GRAPH_RESOURCE, devUser } from '../../dev/standins/identities';
import { TokenService, type TokenServiceOptions } from '../../shared/auth/token-service';
import type { Caller } from '../../shared/auth/caller';
import { loadConfig, type Config } from '../../shared/config';
import { AppError } from '../../shared/errors';
import { toProblem } from '../../shared/http/problem';

const OBO = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

let entra: EntraStandIn;
let tmp: string;
/** Every token, assertion and refresh token the tests saw: none may show up in a log or error. */
const secrets = new Set<string>();
const logLines: string[] = [];
const appErrors: AppError[] = [];
const log = {
  info: (message: string, properties?: Record<string, unknown>) =>
    logLines.push(`${message} ${JSON.stringify(properties ?? {})}`),
  warn: (message: string, properties?: Record<string, unknown>) =>
    logLines.push(`${message} ${JSON.stringify(properties ?? {})}`),
};

beforeAll(async () => {
  const tls = await ensureLocalTls();
  entra = await startEntraStandIn({ tls, port: 0 });
  tmp = mkdtempSync(path.join(tmpdir(), 'token-service-'));
});

afterAll(async () => {
  await entra.close();
  rmSync(tmp, { recursive: true, force: true });
});

function config(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    ENTRA_TENANT_ID: DEV_TENANT_ID,
    ENTRA_CLIENT_ID: API_APP.clientId,
    ENTRA_CLIENT_SECRET: API_APP.clientSecret,
    ENTRA_AUTHORITY_HOST: entra.url,
    KEY_VAULT_URL: 'https://vault.invalid',
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
    ...overrides,
  });
}

function service(options: TokenServiceOptions = {}, overrides: Record<string, string> = {}): TokenService {
  return new TokenService(config(overrides), { log, ...options });
}

/** A fresh user name per test keeps per-user states (and msal's throttling) from leaking. */
let userCounter = 0;
function freshUser(label: string): string {
  return `${label}-${++userCounter}`;
}

async function callerFor(
  user: string,
  overrides: Omit<Parameters<EntraStandIn['issueUserToken']>[0], 'user'> = {},
): Promise<Caller> {
  const assertion = await entra.issueUserToken({ user, ...overrides });
  secrets.add(assertion);
  const u = devUser(user);
  return {
    tenantId: u.tid,
    userId: u.oid,
    scopes: ['Notifications.Send'],
    assertion,
    expiresAt: new Date(Date.now() + 3600_000),
  };
}

async function obo(tokens: TokenService, caller: Caller) {
  const result = await tokens.onBehalfOf(caller);
  secrets.add(result.accessToken);
  if (result.refreshToken) secrets.add(result.refreshToken);
  return result;
}

async function appError(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    appErrors.push(err);
    return err;
  }
  throw new Error('expected an AppError');
}

/** Redeems a refresh token at the stand-in directly, as another client of the same app would. */
async function standInAccepts(refreshToken: string): Promise<boolean> {
  const res = await fetch(entra.tokenEndpoint(), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      client_id: API_APP.clientId,
      client_secret: API_APP.clientSecret,
      refresh_token: refreshToken,
      scope: `${GRAPH_RESOURCE}/Notifications.ReadWrite.CreatedByApp offline_access`,
    }),
  });
  const body = (await res.json()) as { access_token?: string; refresh_token?: string };
  if (body.access_token) secrets.add(body.access_token);
  if (body.refresh_token) secrets.add(body.refresh_token);
  return res.status === 200;
}

function lastRequest() {
  const last = entra.requests.at(-1);
  if (!last) throw new Error('the stand-in saw no token request');
  return last;
}

describe('on-behalf-of', () => {
  it('returns a Graph token for the caller and a refresh token the identity service redeems', async () => {
    const tokens = service();
    const caller = await callerFor('alice');
    const before = entra.count(OBO);
    const result = await obo(tokens, caller);
    expect(entra.count(OBO) - before).toBe(1);
    expect(await entra.verifyIssued(result.accessToken, [GRAPH_RESOURCE])).toMatchObject({
      aud: GRAPH_RESOURCE,
      scp: 'Notifications.ReadWrite.CreatedByApp',
      oid: devUser('alice').oid,
      tid: DEV_TENANT_ID,
      appid: API_APP.clientId,
    });
    expect(lastRequest()).toMatchObject({ clientAuth: 'secret', userOid: devUser('alice').oid, status: 200 });
    expect(result.refreshToken).toEqual(expect.any(String));
    expect(await standInAccepts(result.refreshToken!)).toBe(true);
  });

  it('msal-node still keeps the OBO refresh token in its serialized cache (if this fails, re-check refresh-token extraction after a msal upgrade)', async () => {
    const tokens = service();
    const result = await obo(tokens, await callerFor(freshUser('pin')));
    // msal-node 7.2.3 hands the refresh token only to its cache; deferred sends depend on reading it.
    expect(result.refreshToken).toMatch(/^\S{20,}$/);
    expect(await standInAccepts(result.refreshToken!)).toBe(true);
  });

  it('serves the same assertion a second time without calling the identity service', async () => {
    const tokens = service();
    const caller = await callerFor(freshUser('twice'));
    const before = entra.count(OBO);
    const first = await obo(tokens, caller);
    const second = await obo(tokens, caller);
    expect(entra.count(OBO) - before).toBe(1);
    expect(second).toEqual(first);
  });

  it('makes 20 concurrent calls with one assertion share a single exchange', async () => {
    const tokens = service();
    const caller = await callerFor(freshUser('burst'));
    const before = entra.count(OBO);
    const results = await Promise.all(Array.from({ length: 20 }, () => obo(tokens, caller)));
    expect(entra.count(OBO) - before).toBe(1);
    expect(new Set(results.map((r) => r.accessToken)).size).toBe(1);
    expect(results.every((r) => r.refreshToken === results[0]?.refreshToken)).toBe(true);
  });

  it('reads the OpenID metadata once, however many users get a partition', async () => {
    const discoveries = entra.hits.openidConfiguration;
    const tokens = service();
    const callers = await Promise.all(Array.from({ length: 12 }, () => callerFor(freshUser('disc'))));
    await Promise.all(callers.map((c) => obo(tokens, c)));
    expect(tokens.partitionCount).toBe(12);
    expect(entra.hits.openidConfiguration - discoveries).toBe(1);
  });

  it('forget() drops the user: the next call with the same assertion goes to the identity service', async () => {
    const tokens = service();
    const caller = await callerFor(freshUser('forget'));
    await obo(tokens, caller);
    tokens.forget(caller);
    expect(tokens.partitionCount).toBe(0);
    const before = entra.count(OBO);
    await obo(tokens, caller);
    expect(entra.count(OBO) - before).toBe(1);
  });
});

describe('memory bound', () => {
  it('keeps at most maxPartitions users, least recently used first out, with correct results', async () => {
    const tokens = service({ maxPartitions: 100 });
    const users = Array.from({ length: 2000 }, () => freshUser('many'));
    const keep = users[0]!;
    const keepCaller = await callerFor(keep);
    await obo(tokens, keepCaller);
    const before = entra.count(OBO);
    const batch = 50;
    for (let i = 1; i < users.length; i += batch) {
      const slice = users.slice(i, i + batch);
      const results = await Promise.all(
        slice.map(async (user) => ({ user, result: await tokens.onBehalfOf(await callerFor(user)) })),
      );
      for (const { user, result } of results) {
        // Each user gets their own token, whatever was evicted around them.
        expect(decodeJwt(result.accessToken).oid).toBe(devUser(user).oid);
        expect(result.refreshToken).toEqual(expect.any(String));
      }
      expect(tokens.partitionCount).toBeLessThanOrEqual(100);
      // Touching one user keeps it among the most recently used.
      await obo(tokens, keepCaller);
    }
    expect(entra.count(OBO) - before).toBe(users.length - 1);
    expect(tokens.partitionCount).toBe(100);
    // The touched user was never evicted: its assertion is still served from its cache.
    const again = entra.count(OBO);
    await obo(tokens, keepCaller);
    expect(entra.count(OBO)).toBe(again);
    // An evicted user is exchanged again, correctly.
    const evicted = await obo(tokens, await callerFor(users[1]!));
    expect(decodeJwt(evicted.accessToken).oid).toBe(devUser(users[1]!).oid);
  }, 180_000);

  it('does not let one user with many assertions grow their cache', async () => {
    const tokens = service({ maxTokensPerPartition: 2 });
    const user = freshUser('sessions');
    const before = entra.count(OBO);
    for (let i = 0; i < 30; i++) {
      const caller = await callerFor(user);
      const result = await obo(tokens, caller);
      expect(decodeJwt(result.accessToken).oid).toBe(devUser(user).oid);
      expect(tokens.accessTokensHeld(caller)).toBeLessThanOrEqual(2);
    }
    expect(entra.count(OBO) - before).toBe(30);
    expect(tokens.partitionCount).toBe(1);
  });
});

describe('errors', () => {
  it('turns a step-up demand into interaction_required with the claims challenge, base64', async () => {
    const tokens = service();
    const user = freshUser('mfa');
    entra.setUserState(user, 'interaction_required');
    const err = await appError(tokens.onBehalfOf(await callerFor(user)));
    expect(lastRequest()).toMatchObject({ status: 400, error: 'interaction_required', errorCode: 50076 });
    const claims = JSON.stringify({
      access_token: { capolids: { essential: true, values: [MFA_POLICY_ID] } },
    });
    expect(err).toMatchObject({ code: 'interaction_required', status: 401 });
    expect(err.authenticate).toEqual({
      error: 'insufficient_claims',
      claims: Buffer.from(claims).toString('base64'),
    });
    expect(err.detail).toMatch(/basic_action/);
    expect(toProblem(err).headers).toMatchObject({
      'www-authenticate': `Bearer error="insufficient_claims", claims="${Buffer.from(claims).toString('base64')}"`,
    });
    entra.setUserState(user, 'ok');
  });

  it('turns missing consent into interaction_required without claims', async () => {
    const tokens = service();
    const user = freshUser('consent');
    entra.setUserState(user, 'consent_required');
    const err = await appError(tokens.onBehalfOf(await callerFor(user)));
    expect(lastRequest()).toMatchObject({ status: 400, error: 'invalid_grant', errorCode: 65001 });
    expect(err).toMatchObject({ code: 'interaction_required', status: 401 });
    expect(err.authenticate).toEqual({
      error: 'interaction_required',
      error_description: 'consent_required',
    });
    expect(err.detail).toMatch(/consent_required/);
  });

  it.each([
    ['expired', { expiresInSec: -600 }, 500133],
    ['signed by a foreign key', { signingKeys: new SigningKeys() }, 50013],
    ['meant for another app', { audience: 'api://someone-else' }, 500131],
  ] as const)('answers an assertion %s with invalid_token', async (_label, overrides, code) => {
    const tokens = service();
    const err = await appError(tokens.onBehalfOf(await callerFor(freshUser('bad'), overrides)));
    expect(lastRequest()).toMatchObject({ status: 400, error: 'invalid_grant', errorCode: code });
    expect(err).toMatchObject({ code: 'invalid_token', status: 401 });
    expect(err.detail).toContain(`AADSTS${code}`);
  });

  it('answers a 503 with upstream_unavailable for msal’s throttling window, for that user only', async () => {
    const tokens = service();
    const user = freshUser('busy');
    entra.faults.failNext(1, { status: 503 });
    const err = await appError(tokens.onBehalfOf(await callerFor(user)));
    expect(lastRequest()).toMatchObject({ status: 503, error: 'temporarily_unavailable' });
    // No Retry-After: msal refuses the same request for 60 s, so coming back sooner is pointless.
    expect(err).toMatchObject({
      code: 'upstream_unavailable',
      status: 503,
      retryable: true,
      retryAfterSeconds: 60,
    });

    // msal refuses the user's next request by itself: no request reaches the stand-in.
    const before = entra.count();
    const again = await appError(tokens.onBehalfOf(await callerFor(user)));
    expect(entra.count()).toBe(before);
    expect(again.code).toBe('upstream_unavailable');
    expect(again.retryAfterSeconds).toBeGreaterThan(0);
    expect(again.retryAfterSeconds).toBeLessThanOrEqual(60);

    // Other users have their own msal client, so their requests still go out.
    await expect(obo(tokens, await callerFor(freshUser('calm')))).resolves.toBeTruthy();
    expect(entra.count() - before).toBe(1);
  });

  it('answers a 429 with upstream_unavailable and the identity service’s Retry-After', async () => {
    const tokens = service();
    entra.faults.failNext(1, { status: 429, retryAfter: 7 });
    const err = await appError(tokens.onBehalfOf(await callerFor(freshUser('throttled'))));
    expect(lastRequest()).toMatchObject({ status: 429, errorCode: 90055 });
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 7 });
  });

  it('answers an unreachable identity service with upstream_unavailable', async () => {
    const other = await startEntraStandIn({ tls: await ensureLocalTls(), port: 0 });
    const tokens = service({}, { ENTRA_AUTHORITY_HOST: other.url });
    const issue = async (user: string): Promise<Caller> => {
      const assertion = await other.issueUserToken({ user });
      secrets.add(assertion);
      return {
        tenantId: DEV_TENANT_ID,
        userId: devUser(user).oid,
        scopes: [],
        assertion,
        expiresAt: new Date(),
      };
    };
    await obo(tokens, await issue(freshUser('warm')));
    const late = await issue(freshUser('late'));
    await other.close();
    // The metadata is already known: this is msal's own token request failing to connect.
    const err = await appError(tokens.onBehalfOf(late));
    expect(err).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 5 });
    // Before any metadata, the discovery fetch fails the same way.
    const cold = await appError(service({}, { ENTRA_AUTHORITY_HOST: other.url }).onBehalfOf(late));
    expect(cold).toMatchObject({ code: 'upstream_unavailable', retryAfterSeconds: 5 });
  });

  it('answers a rejected client secret with credential_rejected and tells the operator', async () => {
    const tokens = service({}, { ENTRA_CLIENT_SECRET: 'not-the-secret' });
    const lines = logLines.length;
    const err = await appError(tokens.onBehalfOf(await callerFor(freshUser('wrongsecret'))));
    expect(lastRequest()).toMatchObject({ status: 401, error: 'invalid_client', errorCode: 7000215 });
    expect(err).toMatchObject({ code: 'credential_rejected', status: 500 });
    const said = logLines.slice(lines).join('\n');
    expect(said).toMatch(/rejected this app's own credential \(invalid_client \(AADSTS7000215\)\)/);
    expect(said).toMatch(/ENTRA_CLIENT_SECRET/);
    expect(said).not.toContain('not-the-secret');
  });
});

describe('redeem', () => {
  it('redeems a stored refresh token for a Graph token and returns the rotated one', async () => {
    const user = freshUser('later');
    const caller = await callerFor(user);
    const { refreshToken } = await obo(service(), caller);
    const worker = service();
    const before = entra.count('refresh_token');
    const redeemed = await worker.redeem(caller, refreshToken!);
    secrets.add(redeemed.accessToken);
    if (redeemed.refreshToken) secrets.add(redeemed.refreshToken);
    expect(entra.count('refresh_token') - before).toBe(1);
    expect(lastRequest()).toMatchObject({
      grantType: 'refresh_token',
      userOid: devUser(user).oid,
      status: 200,
    });
    expect(await entra.verifyIssued(redeemed.accessToken, [GRAPH_RESOURCE])).toMatchObject({
      oid: devUser(user).oid,
      scp: 'Notifications.ReadWrite.CreatedByApp',
    });
    expect(redeemed.expiresOn.getTime()).toBeGreaterThan(Date.now() + 30 * 60_000);
    expect(redeemed.refreshToken).toEqual(expect.any(String));
    expect(redeemed.refreshToken).not.toBe(refreshToken);
    expect(await standInAccepts(redeemed.refreshToken!)).toBe(true);
  });

  it('answers a revoked refresh token with invalid_grant', async () => {
    const user = freshUser('revoked');
    const caller = await callerFor(user);
    const { refreshToken } = await obo(service(), caller);
    entra.setUserState(user, 'revoked');
    const err = await appError(service().redeem(caller, refreshToken!));
    expect(lastRequest()).toMatchObject({ grantType: 'refresh_token', status: 400, errorCode: 50173 });
    expect(err).toMatchObject({ code: 'invalid_grant', status: 401, retryable: false });
    expect(err.detail).toContain('AADSTS50173');
  });

  it('answers a refresh token expired by inactivity with invalid_grant', async () => {
    const user = freshUser('idle');
    const caller = await callerFor(user);
    const { refreshToken } = await obo(service(), caller);
    entra.ageRefreshTokens(91 * 24 * 60 * 60, user);
    const err = await appError(service().redeem(caller, refreshToken!));
    expect(lastRequest()).toMatchObject({ status: 400, errorCode: 700082 });
    expect(err.code).toBe('invalid_grant');
  });
});

describe('client certificate', () => {
  it('authenticates with the certificate and key from ENTRA_CLIENT_CERTIFICATE_PATH', async () => {
    const { pem, certPem } = await selfSignedCertificate();
    entra.registerClientCertificate(API_APP.clientId, certPem);
    const file = path.join(tmp, 'client.pem');
    writeFileSync(file, pem, { mode: 0o600 });
    const tokens = service({}, { ENTRA_CLIENT_SECRET: '', ENTRA_CLIENT_CERTIFICATE_PATH: file });
    const result = await obo(tokens, await callerFor(freshUser('cert')));
    expect(lastRequest()).toMatchObject({ clientAuth: 'certificate', status: 200 });
    expect((await entra.verifyIssued(result.accessToken, [GRAPH_RESOURCE])).appidacr).toBe('2');
  });

  it('refuses an unreadable or incomplete certificate file at construction, as invalid_config', async () => {
    const missing = path.join(tmp, 'missing.pem');
    const certOnly = path.join(tmp, 'cert-only.pem');
    const { certPem, keyPem } = await selfSignedCertificate();
    const other = await selfSignedCertificate();
    writeFileSync(certOnly, certPem);
    const mismatched = path.join(tmp, 'mismatched.pem');
    writeFileSync(mismatched, certPem + other.keyPem);
    for (const [file, why] of [
      [missing, /cannot be read \(ENOENT\)/],
      [certOnly, /no PEM private key/],
      [mismatched, /does not belong to the certificate/],
    ] as const) {
      const err = (() => {
        try {
          service({}, { ENTRA_CLIENT_SECRET: '', ENTRA_CLIENT_CERTIFICATE_PATH: file });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({ code: 'invalid_config' });
      expect((err as AppError).detail).toMatch(why);
      expect((err as AppError).detail).not.toContain(keyPem.slice(40, 80));
    }
  });
});

describe('secrets', () => {
  it('puts no token, assertion or refresh token in any error or msal log line, even at verbose level', async () => {
    // Its own traffic at msal's most talkative level, so the check stands when run alone.
    const tokens = service({ msalLogLevel: 'verbose' });
    const user = freshUser('quiet');
    const caller = await callerFor(user);
    const { refreshToken } = await obo(tokens, caller);
    await obo(tokens, caller);
    const redeemed = await tokens.redeem(caller, refreshToken!);
    secrets.add(redeemed.accessToken);
    if (redeemed.refreshToken) secrets.add(redeemed.refreshToken);
    entra.setUserState(user, 'interaction_required');
    await appError(tokens.onBehalfOf(await callerFor(user)));
    entra.setUserState(user, 'revoked');
    await appError(tokens.redeem(caller, refreshToken!));
    await appError(tokens.onBehalfOf(await callerFor(freshUser('bad'), { expiresInSec: -600 })));

    expect(logLines.filter((line) => line.startsWith('msal: ')).length).toBeGreaterThan(10);
    const said = [
      ...logLines,
      ...appErrors.flatMap((e) => [e.message, e.detail, JSON.stringify(e.authenticate ?? {})]),
    ].join('\n');
    for (const secret of secrets) expect(said.includes(secret)).toBe(false);
    expect(said).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  });
});
