// The app's own credential without secrets, in-process against the Entra and managed-identity
// stand-ins with the real msal-node and @azure/identity: the client-credentials grant (sends as
// the app) with the federated token, and what happens when the identity endpoint fails.
import { ensureLocalTls } from '../../dev/tls';
import {
  startEntraStandIn,
  TOKEN_EXCHANGE_APP_ID,
  TOKEN_EXCHANGE_RESOURCE,
  type EntraStandIn,
} from '../../dev/standins/entra';
import { API_APP, DEV_TENANT_ID } from '../../dev/standins/identities';
import {
  FUNCTION_USER_ASSIGNED_IDENTITY,
  startManagedIdentityStandIn,
  type ManagedIdentityStandIn,
} from '../../dev/standins/managed-identity';
import { TokenService } from '../../shared/auth/token-service';
import { loadConfig } from '../../shared/config';
import { AppError } from '../../shared/errors';
import { recordConnections } from '../support/sockets';

let entra: EntraStandIn;
let identity: ManagedIdentityStandIn;
const saved = { endpoint: process.env.IDENTITY_ENDPOINT, header: process.env.IDENTITY_HEADER };
const connections = recordConnections();

beforeAll(async () => {
  entra = await startEntraStandIn({ tls: await ensureLocalTls(), port: 0 });
  identity = await startManagedIdentityStandIn({ entra });
  entra.addFederatedCredential(API_APP.clientId, {
    issuer: entra.issuer(DEV_TENANT_ID),
    subject: FUNCTION_USER_ASSIGNED_IDENTITY.objectId,
    audiences: [TOKEN_EXCHANGE_RESOURCE],
  });
  // @azure/identity reads App Service's variables from process.env itself.
  process.env.IDENTITY_ENDPOINT = identity.endpoint;
  process.env.IDENTITY_HEADER = identity.header;
});

afterAll(async () => {
  process.env.IDENTITY_ENDPOINT = saved.endpoint;
  process.env.IDENTITY_HEADER = saved.header;
  if (saved.endpoint === undefined) delete process.env.IDENTITY_ENDPOINT;
  if (saved.header === undefined) delete process.env.IDENTITY_HEADER;
  await identity.close();
  await entra.close();
  // Nothing but loopback: App Service's endpoint, never the instance-metadata address.
  expect(connections.stop().filter((h) => !/^(127\.0\.0\.1|localhost|::1)$/.test(h))).toEqual([]);
});

function tokens(env: Record<string, string> = {}, settings: Record<string, string> = {}): TokenService {
  const config = loadConfig({
    ENTRA_TENANT_ID: DEV_TENANT_ID,
    ENTRA_CLIENT_ID: API_APP.clientId,
    ENTRA_CLIENT_ASSERTION: 'managed-identity',
    ENTRA_MANAGED_IDENTITY_CLIENT_ID: FUNCTION_USER_ASSIGNED_IDENTITY.clientId,
    ...settings,
    ENTRA_AUTHORITY_HOST: entra.url,
    KEY_VAULT_URL: 'https://vault.invalid',
    AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  });
  return new TokenService(config, {
    env: { IDENTITY_ENDPOINT: identity.endpoint, IDENTITY_HEADER: identity.header, ...env },
  });
}

it('gets the app its own token (client credentials) with the managed identity’s token as the assertion', async () => {
  const token = await tokens().forApp(DEV_TENANT_ID);
  expect(typeof token).toBe('string');
  expect(entra.requests.at(-1)).toMatchObject({
    grantType: 'client_credentials',
    clientId: API_APP.clientId,
    status: 200,
    clientAuth: 'federated',
    clientAssertionType: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    federated: {
      iss: entra.issuer(DEV_TENANT_ID),
      sub: FUNCTION_USER_ASSIGNED_IDENTITY.objectId,
      aud: [TOKEN_EXCHANGE_APP_ID],
    },
  });
  expect(identity.requests.at(-1)).toMatchObject({
    resource: TOKEN_EXCHANGE_RESOURCE,
    by: 'client_id',
    clientId: FUNCTION_USER_ASSIGNED_IDENTITY.clientId,
    status: 200,
  });
});

it('answers upstream_unavailable (503, Retry-After) when the identity endpoint fails, and asks Entra nothing', async () => {
  const before = entra.requests.length;
  // The system-assigned identity: msal-node keeps managed-identity tokens in one cache per
  // process, and the user-assigned identity's exchange token is already in it.
  identity.faults.failNext(10, { status: 500 });
  try {
    const err = await tokens({}, { ENTRA_MANAGED_IDENTITY_CLIENT_ID: '' })
      .forApp(DEV_TENANT_ID)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'upstream_unavailable', status: 503, retryAfterSeconds: 5 });
  } finally {
    identity.faults.clear();
  }
  expect(identity.requests.at(-1)).toMatchObject({ status: 500, by: 'system' });
  expect(entra.requests.length).toBe(before);
});

it('refuses at construction when App Service advertises no managed identity', () => {
  expect(() => tokens({ IDENTITY_ENDPOINT: '', IDENTITY_HEADER: '' })).toThrow(
    /ENTRA_CLIENT_ASSERTION=managed-identity needs a managed identity/,
  );
});
