// The managed-identity stand-in speaks App Service's protocol (api-version 2019-08-01,
// X-IDENTITY-HEADER, resource, client_id / principal_id / mi_res_id) and hands out tokens the
// Entra stand-in issued, which Key Vault's verification accepts.
import { decodeJwt } from 'jose';
import { ensureLocalTls } from '../../dev/tls';
import { startEntraStandIn, TOKEN_EXCHANGE_APP_ID, type EntraStandIn } from '../../dev/standins/entra';
import { DEV_TENANT_ID, KEY_VAULT_RESOURCE } from '../../dev/standins/identities';
import {
  FUNCTION_SYSTEM_ASSIGNED_IDENTITY,
  FUNCTION_USER_ASSIGNED_IDENTITY,
  startManagedIdentityStandIn,
  type ManagedIdentityStandIn,
} from '../../dev/standins/managed-identity';

let entra: EntraStandIn;
let identity: ManagedIdentityStandIn;

beforeAll(async () => {
  entra = await startEntraStandIn({ tls: await ensureLocalTls(), port: 0 });
  identity = await startManagedIdentityStandIn({ entra });
});

afterAll(async () => {
  await identity.close();
  await entra.close();
});

async function ask(query: Record<string, string>, header: string | null = identity.header) {
  const url = `${identity.endpoint}?${new URLSearchParams({ 'api-version': '2019-08-01', ...query }).toString()}`;
  const res = await fetch(url, { headers: header === null ? {} : { 'x-identity-header': header } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

it('is plain HTTP on loopback, as App Service’s endpoint is', () => {
  expect(identity.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/msi\/token$/);
});

it('answers the user-assigned identity named by client_id, principal_id or mi_res_id, in App Service’s fields', async () => {
  const u = FUNCTION_USER_ASSIGNED_IDENTITY;
  const queries: Record<string, string>[] = [
    { client_id: u.clientId },
    { principal_id: u.objectId },
    { mi_res_id: u.resourceId },
  ];
  for (const query of queries) {
    const { status, body } = await ask({ resource: 'api://AzureADTokenExchange', ...query });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      resource: 'api://AzureADTokenExchange',
      token_type: 'Bearer',
      client_id: u.clientId,
    });
    expect(body.expires_on).toMatch(/^\d+$/);
    const claims = decodeJwt(body.access_token as string);
    expect(claims).toMatchObject({
      iss: entra.issuer(DEV_TENANT_ID),
      sub: u.objectId,
      oid: u.objectId,
      aud: TOKEN_EXCHANGE_APP_ID,
      tid: DEV_TENANT_ID,
    });
  }
});

it('answers the system-assigned identity when none is named, and Key Vault tokens Entra’s keys verify', async () => {
  const { status, body } = await ask({ resource: `${KEY_VAULT_RESOURCE}/` });
  expect(status).toBe(200);
  expect(body.client_id).toBe(FUNCTION_SYSTEM_ASSIGNED_IDENTITY.clientId);
  const claims = await entra.verifyIssued(body.access_token as string, [KEY_VAULT_RESOURCE]);
  expect(claims).toMatchObject({
    appid: FUNCTION_SYSTEM_ASSIGNED_IDENTITY.clientId,
    tid: DEV_TENANT_ID,
    idtyp: 'app',
  });
});

it('refuses a missing or wrong header, another api-version, an unknown identity or resource', async () => {
  expect((await ask({ resource: KEY_VAULT_RESOURCE }, null)).status).toBe(401);
  expect((await ask({ resource: KEY_VAULT_RESOURCE }, 'guess')).status).toBe(401);
  expect((await ask({ resource: KEY_VAULT_RESOURCE, 'api-version': '2017-09-01' })).status).toBe(400);
  const unknown = await ask({
    resource: KEY_VAULT_RESOURCE,
    client_id: '00000000-0000-4000-8000-000000000000',
  });
  expect(unknown).toMatchObject({ status: 400, body: { statusCode: 400 } });
  expect(unknown.body.message).toMatch(/No User Assigned or Delegated Managed Identity found/);
  expect((await ask({ resource: 'https://unknown.example' })).status).toBe(400);
  expect(identity.requests.slice(-5).map((r) => r.status)).toEqual([401, 401, 400, 400, 400]);
});
