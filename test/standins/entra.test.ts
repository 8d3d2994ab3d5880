// The Entra stand-in, driven by the real client libraries over HTTPS (msal-node, @azure/identity,
// jose), and the `npm run token` CLI against it. Assertions are on what the stand-in recorded.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  ConfidentialClientApplication,
  InteractionRequiredAuthError,
  ServerError,
  type AuthenticationResult,
} from '@azure/msal-node';
import { ClientSecretCredential } from '@azure/identity';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { selfSignedCertificate } from '../support/certificate';
import { ensureLocalTls, type LocalTls } from '../../dev/tls';
import { startEntraStandIn, MFA_POLICY_ID, type EntraStandIn } from '../../dev/standins/entra';
import { startHttps } from '../../dev/standins/https';
import { SigningKeys } from '../../dev/standins/keys';
import {
  API_APP,
  CLIENT_APP,
  DEV_TENANT_ID,
  FUNCTION_IDENTITY,
  GRAPH_RESOURCE,
  KEY_VAULT_RESOURCE,
  OTHER_TENANT_ID,
  devUser,
} from '../../dev/standins/identities';

const GRAPH_SCOPE = `${GRAPH_RESOURCE}/Notifications.ReadWrite.CreatedByApp`;
const OBO = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const DAY = 24 * 60 * 60;
const run = promisify(execFile);

let tls: LocalTls;
let entra: EntraStandIn;

beforeAll(async () => {
  tls = await ensureLocalTls();
  entra = await startEntraStandIn({ tls, port: 0 });
});

afterAll(async () => {
  await entra.close();
});

function oboApp(
  auth: { clientSecret?: string; clientCertificate?: { thumbprintSha256: string; privateKey: string } } = {
    clientSecret: API_APP.clientSecret,
  },
): ConfidentialClientApplication {
  return new ConfidentialClientApplication({
    auth: {
      clientId: API_APP.clientId,
      authority: `${entra.url}/${DEV_TENANT_ID}`,
      // Without this msal asks login.microsoftonline.com for instance discovery.
      knownAuthorities: [`127.0.0.1:${entra.port}`],
      ...auth,
    },
  });
}

function refreshTokensIn(app: ConfidentialClientApplication): string[] {
  const cache = JSON.parse(app.getTokenCache().serialize()) as {
    RefreshToken?: Record<string, { secret: string }>;
  };
  return Object.values(cache.RefreshToken ?? {}).map((rt) => rt.secret);
}

/** A fresh user name per test keeps per-user states from leaking between tests. */
let userCounter = 0;
function freshUser(label: string): string {
  return `${label}-${++userCounter}`;
}

/** msal types its results as nullable; a null here would be a stand-in bug. */
async function must(result: Promise<AuthenticationResult | null>): Promise<AuthenticationResult> {
  const value = await result;
  if (!value) throw new Error('msal returned no result');
  return value;
}

async function obo(
  app: ConfidentialClientApplication,
  user: string,
  scopes = [GRAPH_SCOPE, 'offline_access'],
) {
  const assertion = await entra.issueUserToken({ user });
  return must(app.acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes }));
}

function lastRequest() {
  const last = entra.requests.at(-1);
  if (!last) throw new Error('the stand-in saw no token request');
  return last;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('discovery', () => {
  it('serves an openid-configuration whose issuer and endpoints are on the stand-in', async () => {
    const res = await fetch(`${entra.url}/${DEV_TENANT_ID}/v2.0/.well-known/openid-configuration`);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(doc).toMatchObject({
      issuer: entra.issuer(DEV_TENANT_ID),
      token_endpoint: entra.tokenEndpoint(DEV_TENANT_ID),
      jwks_uri: `${entra.url}/${DEV_TENANT_ID}/discovery/v2.0/keys`,
      authorization_endpoint: `${entra.url}/${DEV_TENANT_ID}/oauth2/v2.0/authorize`,
    });
  });

  it('answers an unknown tenant with invalid_tenant in the Entra error shape', async () => {
    const res = await fetch(`${entra.url}/not-a-tenant/v2.0/.well-known/openid-configuration`);
    const body = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(400);
    expect(body).toMatchObject({ error: 'invalid_tenant', error_codes: [90002] });
    expect(Object.keys(body)).toEqual(
      expect.arrayContaining(['error_description', 'timestamp', 'trace_id', 'correlation_id']),
    );
  });

  it('answers an unsupported grant with the AADSTS code and the caller correlation id', async () => {
    const res = await fetch(entra.tokenEndpoint(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'magic',
        client_id: API_APP.clientId,
        'client-request-id': 'c0ffee',
      }),
    });
    const body = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(400);
    expect(body).toMatchObject({
      error: 'unsupported_grant_type',
      error_codes: [70003],
      correlation_id: 'c0ffee',
    });
    expect(String(body.error_description)).toMatch(
      /^AADSTS70003: .*\r\nTrace ID: .*\r\nCorrelation ID: c0ffee/,
    );
  });
});

describe('on-behalf-of with msal-node', () => {
  it('exchanges a user token for a Graph token, then serves the same assertion from cache', async () => {
    const app = oboApp();
    const before = entra.count(OBO);
    const first = await obo(app, 'alice');
    const payload = await entra.verifyIssued(first.accessToken, [GRAPH_RESOURCE]);
    expect(payload).toMatchObject({
      aud: GRAPH_RESOURCE,
      iss: entra.v1Issuer(DEV_TENANT_ID),
      oid: devUser('alice').oid,
      tid: DEV_TENANT_ID,
      scp: 'Notifications.ReadWrite.CreatedByApp',
      appid: API_APP.clientId,
      ver: '1.0',
    });
    expect(first.fromCache).toBe(false);
    expect(lastRequest()).toMatchObject({ clientAuth: 'secret', userOid: devUser('alice').oid, status: 200 });

    const assertion = await entra.issueUserToken({ user: 'bob' });
    const a = await must(app.acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes: [GRAPH_SCOPE] }));
    const b = await must(app.acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes: [GRAPH_SCOPE] }));
    expect(a.fromCache).toBe(false);
    expect(b.fromCache).toBe(true);
    expect(b.accessToken).toBe(a.accessToken);
    expect(entra.count(OBO) - before).toBe(2);
  });

  it('keeps the refresh token in the serialized cache, and it redeems for a new one', async () => {
    const app = oboApp();
    await obo(app, 'carol');
    const [refreshToken] = refreshTokensIn(app);
    expect(refreshToken).toEqual(expect.any(String));

    const before = entra.count('refresh_token');
    const later = oboApp();
    const result = await must(
      later.acquireTokenByRefreshToken({
        refreshToken: refreshToken!,
        scopes: [GRAPH_SCOPE],
        forceCache: true,
      }),
    );
    expect(result.accessToken).toEqual(expect.any(String));
    const rotated = refreshTokensIn(later);
    expect(rotated).toHaveLength(1);
    expect(rotated[0]).not.toBe(refreshToken);
    expect(entra.count('refresh_token') - before).toBe(1);
    expect(lastRequest()).toMatchObject({ userOid: devUser('carol').oid, status: 200 });

    // Entra does not revoke a redeemed refresh token: the old one still works.
    await expect(
      oboApp().acquireTokenByRefreshToken({ refreshToken: refreshToken!, scopes: [GRAPH_SCOPE] }),
    ).resolves.toBeTruthy();
  });

  it('surfaces a step-up demand as InteractionRequiredAuthError with the claims challenge', async () => {
    const user = freshUser('mfa');
    entra.setUserState(user, 'interaction_required');
    const err = await rejection(obo(oboApp(), user));
    expect(err).toBeInstanceOf(InteractionRequiredAuthError);
    const ire = err as InteractionRequiredAuthError;
    expect(ire.errorCode).toBe('interaction_required');
    expect(ire.subError).toBe('basic_action');
    expect(JSON.parse(ire.claims)).toEqual({
      access_token: { capolids: { essential: true, values: [MFA_POLICY_ID] } },
    });
    expect(lastRequest()).toMatchObject({ status: 400, error: 'interaction_required', errorCode: 50076 });

    entra.setUserState(user, 'ok');
    await expect(obo(oboApp(), user)).resolves.toBeTruthy();
  });

  it('surfaces missing consent as InteractionRequiredAuthError (invalid_grant / consent_required)', async () => {
    const user = freshUser('noconsent');
    entra.setUserState(user, 'consent_required');
    const err = await rejection(obo(oboApp(), user));
    expect(err).toBeInstanceOf(InteractionRequiredAuthError);
    expect(err).toMatchObject({ errorCode: 'invalid_grant', subError: 'consent_required' });
    expect(lastRequest()).toMatchObject({ status: 400, errorCode: 65001 });
  });

  it('refuses a revoked refresh token with a plain ServerError invalid_grant; OBO still works', async () => {
    const user = freshUser('revoked');
    const app = oboApp();
    await obo(app, user);
    const [refreshToken] = refreshTokensIn(app);
    entra.setUserState(user, 'revoked');

    const err = await rejection(
      oboApp().acquireTokenByRefreshToken({ refreshToken: refreshToken!, scopes: [GRAPH_SCOPE] }),
    );
    expect(err).toBeInstanceOf(ServerError);
    expect(err).not.toBeInstanceOf(InteractionRequiredAuthError);
    expect(err).toMatchObject({ errorCode: 'invalid_grant' });
    expect(lastRequest()).toMatchObject({ grantType: 'refresh_token', status: 400, errorCode: 50173 });

    // Revocation ends refresh tokens, not a still-valid access token: a new OBO works, and its
    // refresh token (issued after the revocation) redeems.
    const fresh = oboApp();
    await obo(fresh, user);
    const [newRefreshToken] = refreshTokensIn(fresh);
    await expect(
      oboApp().acquireTokenByRefreshToken({ refreshToken: newRefreshToken!, scopes: [GRAPH_SCOPE] }),
    ).resolves.toBeTruthy();
  });

  it('expires refresh tokens after 90 days of inactivity (AADSTS700082)', async () => {
    const user = freshUser('idle');
    const app = oboApp();
    await obo(app, user);
    const [refreshToken] = refreshTokensIn(app);
    entra.ageRefreshTokens(91 * DAY, user);
    const err = await rejection(
      oboApp().acquireTokenByRefreshToken({ refreshToken: refreshToken!, scopes: [GRAPH_SCOPE] }),
    );
    expect(err).toMatchObject({ errorCode: 'invalid_grant' });
    expect(lastRequest()).toMatchObject({ status: 400, errorCode: 700082 });
  });

  it('rejects a wrong client secret as invalid_client (401, AADSTS7000215)', async () => {
    const err = await rejection(obo(oboApp({ clientSecret: 'wrong' }), 'alice'));
    expect(err).toMatchObject({ errorCode: 'invalid_client' });
    expect(lastRequest()).toMatchObject({ status: 401, error: 'invalid_client', errorCode: 7000215 });
  });

  it.each([
    ['expired', { expiresInSec: -600 }, 500133],
    ['signed by a foreign key', { signingKeys: new SigningKeys() }, 50013],
    ['meant for another app', { audience: 'api://someone-else' }, 500131],
    ['from another tenant', { tenantId: OTHER_TENANT_ID }, 50013],
  ] as const)('rejects an assertion %s as invalid_grant', async (_label, overrides, code) => {
    const assertion = await entra.issueUserToken({ user: 'alice', ...overrides });
    const err = await rejection(
      oboApp().acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes: [GRAPH_SCOPE] }),
    );
    expect(err).toBeInstanceOf(ServerError);
    expect(err).toMatchObject({ errorCode: 'invalid_grant' });
    expect(lastRequest()).toMatchObject({ status: 400, error: 'invalid_grant', errorCode: code });
  });

  it('authenticates the API with a certificate (client_assertion)', async () => {
    const { certPem, keyPem: privateKey, thumbprintSha256 } = await selfSignedCertificate();
    entra.registerClientCertificate(API_APP.clientId, certPem);
    const result = await obo(oboApp({ clientCertificate: { thumbprintSha256, privateKey } }), 'alice');
    expect((await entra.verifyIssued(result.accessToken, [GRAPH_RESOURCE])).appidacr).toBe('2');
    expect(lastRequest()).toMatchObject({ clientAuth: 'certificate', status: 200 });

    const other = await selfSignedCertificate();
    const err = await rejection(
      obo(
        oboApp({
          clientCertificate: { thumbprintSha256: other.thumbprintSha256, privateKey: other.keyPem },
        }),
        'alice',
      ),
    );
    expect(err).toMatchObject({ errorCode: 'invalid_client' });
    expect(lastRequest()).toMatchObject({ status: 401, errorCode: 700027 });
  });
});

describe('faults', () => {
  it('fails the next request with 503, after which msal throttles that same request by itself', async () => {
    const app = oboApp();
    const user = freshUser('busy');
    entra.faults.failNext(1, { status: 503 });
    const before = entra.count();
    const err = await rejection(obo(app, user));
    expect(err).toBeInstanceOf(ServerError);
    expect(lastRequest()).toMatchObject({ status: 503, error: 'temporarily_unavailable' });

    // msal-node remembers the 5xx for 60 s (no Retry-After) and refuses the same request offline.
    await expect(obo(app, user)).rejects.toBeInstanceOf(ServerError);
    expect(entra.count() - before).toBe(1);
  });

  it('fails with 429 and Retry-After; a different request on the same app still goes out', async () => {
    const app = oboApp();
    entra.faults.failNext(1, { status: 429, retryAfter: 5 });
    const err = await rejection(obo(app, freshUser('throttled')));
    expect(err).toBeInstanceOf(ServerError);
    expect(lastRequest()).toMatchObject({ status: 429, error: 'temporarily_unavailable', errorCode: 90055 });
    expect(entra.faults.pending).toBe(0);

    // msal's throttle key holds the scopes, not the assertion: other scopes reach the stand-in.
    await expect(obo(app, freshUser('throttled'), [`${GRAPH_RESOURCE}/.default`])).resolves.toBeTruthy();
  });
});

describe('client credentials with @azure/identity', () => {
  const credential = () =>
    new ClientSecretCredential(DEV_TENANT_ID, FUNCTION_IDENTITY.clientId, FUNCTION_IDENTITY.clientSecret, {
      authorityHost: entra.url,
      disableInstanceDiscovery: true,
    });

  it('issues a Key Vault app token', async () => {
    const token = await credential().getToken(`${KEY_VAULT_RESOURCE}/.default`);
    const payload = await entra.verifyIssued(token.token, [KEY_VAULT_RESOURCE]);
    expect(payload).toMatchObject({
      aud: KEY_VAULT_RESOURCE,
      appid: FUNCTION_IDENTITY.clientId,
      idtyp: 'app',
      tid: DEV_TENANT_ID,
    });
    expect(payload.sub).toBe(payload.oid);
    expect(lastRequest()).toMatchObject({
      grantType: 'client_credentials',
      clientId: FUNCTION_IDENTITY.clientId,
      status: 200,
    });
  });

  it('accepts the claims parameter CAE sends (xms_cc cp1)', async () => {
    const claims = JSON.stringify({
      access_token: { nbf: { essential: true, value: `${Math.floor(Date.now() / 1000)}` } },
    });
    const token = await credential().getToken(`${KEY_VAULT_RESOURCE}/.default`, { enableCae: true, claims });
    expect((await entra.verifyIssued(token.token, [KEY_VAULT_RESOURCE])).xms_cc).toEqual(['cp1']);
    expect(lastRequest()).toMatchObject({ grantType: 'client_credentials', claims: true, status: 200 });
  });
});

describe('jose against the published keys', () => {
  it('verifies user tokens through jwks_uri, also after a key rotation', async () => {
    const doc = (await (
      await fetch(`${entra.url}/${DEV_TENANT_ID}/v2.0/.well-known/openid-configuration`)
    ).json()) as {
      jwks_uri: string;
      issuer: string;
    };
    // jose refetches on an unknown kid only once its cooldown (30 s by default) has passed.
    const jwks = createRemoteJWKSet(new URL(doc.jwks_uri), { cooldownDuration: 0 });
    const verify = (token: string) =>
      jwtVerify(token, jwks, { issuer: doc.issuer, audience: API_APP.clientId });

    const before = await verify(await entra.issueUserToken({ user: 'alice' }));
    expect(before.payload).toMatchObject({
      oid: devUser('alice').oid,
      scp: 'Notifications.Send',
      ver: '2.0',
      azp: CLIENT_APP.clientId,
    });

    const jwksFetches = entra.hits.jwks;
    const kid = entra.keys.rotate();
    const rotated = await entra.issueUserToken({ user: 'alice' });
    expect(decodeProtectedHeader(rotated)).toMatchObject({ kid, typ: 'JWT', alg: 'RS256' });
    await expect(verify(rotated)).resolves.toBeTruthy();
    expect(entra.hits.jwks).toBe(jwksFetches + 1);
  });

  it('makes v1 tokens with the App ID URI audience and the sts.windows.net issuer', async () => {
    const token = await entra.issueUserToken({ user: 'bob', version: 1 });
    const payload = await entra.verifyIssued(token, [`api://${API_APP.clientId}`]);
    expect(payload).toMatchObject({
      iss: entra.v1Issuer(DEV_TENANT_ID),
      ver: '1.0',
      upn: devUser('bob').upn,
      appid: CLIENT_APP.clientId,
    });
  });
});

describe('npm run token', () => {
  const cli = path.resolve(__dirname, '..', '..', 'dist', 'dev', 'token.js');
  // Without NODE_EXTRA_CA_CERTS: the CLI must trust the local CA by itself.
  const env = (authority: string) => {
    const copy: NodeJS.ProcessEnv = { ...process.env, ENTRA_AUTHORITY_HOST: authority };
    delete copy.NODE_EXTRA_CA_CERTS;
    return copy;
  };

  it('prints only a token for this API, which verifies against the stand-in', async () => {
    const { stdout, stderr } = await run(process.execPath, [cli, '--user', 'alice'], { env: env(entra.url) });
    expect(stderr).toBe('');
    const token = stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const jwks = createRemoteJWKSet(new URL(`${entra.url}/${DEV_TENANT_ID}/discovery/v2.0/keys`));
    const { payload } = await jwtVerify(token, jwks, {
      issuer: entra.issuer(DEV_TENANT_ID),
      audience: API_APP.clientId,
    });
    expect(payload).toMatchObject({
      oid: devUser('alice').oid,
      scp: 'Notifications.Send',
      azp: CLIENT_APP.clientId,
    });
    expect(lastRequest()).toMatchObject({
      grantType: 'password',
      clientId: CLIENT_APP.clientId,
      clientAuth: 'none',
    });
  });

  it('says to start the stack when nothing listens', async () => {
    const closed = await startHttps(tls, 0, () => undefined);
    await closed.close();
    const err = await rejection(run(process.execPath, [cli, '--user', 'alice'], { env: env(closed.url) }));
    expect(err).toMatchObject({ code: 1, stdout: '' });
    expect((err as { stderr: string }).stderr).toMatch(/start the stack with npm start first/);
  });
});
