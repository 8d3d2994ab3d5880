import { loadConfig } from '../../shared/config';
import { AppError } from '../../shared/errors';

const TENANT = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
const CLIENT = '3f6a2b10-8d4c-4e1f-9a7b-2c5d0e6f1a00';
const minimal = {
  ENTRA_TENANT_ID: TENANT,
  ENTRA_CLIENT_ID: CLIENT,
  ENTRA_CLIENT_SECRET: 's',
  KEY_VAULT_URL: 'https://vault.example.net/',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
};
const { AzureWebJobsStorage: _storage, ...noStorage } = minimal;
const { ENTRA_CLIENT_SECRET: _secret, ...noSecret } = minimal;

function problemsOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('invalid_config');
    return (err as AppError).detail;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('applies the contract defaults', () => {
    const config = loadConfig(minimal);
    expect(config).toMatchObject({
      authorityHost: 'https://login.microsoftonline.com',
      apiAudiences: [`api://${CLIENT}`, CLIENT],
      requiredScope: 'Notifications.Send',
      allowedTenantIds: [TENANT],
      graphBaseUrl: 'https://graph.microsoft.com/beta',
      graphScopes: ['https://graph.microsoft.com/Notifications.ReadWrite.CreatedByApp', 'offline_access'],
      targetHostName: undefined,
      keyVaultUrl: 'https://vault.example.net',
      storage: { kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' },
      notificationsQueue: 'notifications-deferred',
      appInsightsConnectionString: undefined,
      credential: { kind: 'secret', secret: 's' },
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('names every missing setting at once', () => {
    const detail = problemsOf({});
    expect(detail).toContain('ENTRA_TENANT_ID is required');
    expect(detail).toContain('ENTRA_CLIENT_ID is required');
    expect(detail).toContain(
      'one client credential is required: ENTRA_CLIENT_SECRET, ENTRA_CLIENT_CERTIFICATE_PATH, WEBSITE_LOAD_CERTIFICATES (a certificate App Service loaded) or ENTRA_CLIENT_ASSERTION=managed-identity',
    );
    expect(detail).toContain('KEY_VAULT_URL is required');
  });

  it('names malformed settings', () => {
    const detail = problemsOf({
      ...minimal,
      ENTRA_TENANT_ID: 'contoso',
      ENTRA_AUTHORITY_HOST: 'http://login.example',
      ALLOWED_TENANT_IDS: `${TENANT},nope`,
      GRAPH_SCOPES: 'https://graph.microsoft.com/Notifications.ReadWrite.CreatedByApp',
      NOTIFICATIONS_QUEUE: 'Bad_Name',
      KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION: 'sometimes',
    });
    expect(detail).toContain('ENTRA_TENANT_ID must be a GUID');
    expect(detail).toContain('ENTRA_AUTHORITY_HOST must be an https URL');
    expect(detail).toContain('ALLOWED_TENANT_IDS must be a GUID, got "nope"');
    expect(detail).toContain('GRAPH_SCOPES must include offline_access');
    expect(detail).toContain('NOTIFICATIONS_QUEUE "Bad_Name"');
    expect(detail).toContain('KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION must be true or false');
  });

  it('refuses two client credentials and takes a certificate alone', () => {
    expect(problemsOf({ ...minimal, ENTRA_CLIENT_CERTIFICATE_PATH: '/c.pem' })).toContain(
      'set only one of the client credentials: ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERTIFICATE_PATH are set',
    );
    expect(loadConfig({ ...noSecret, ENTRA_CLIENT_CERTIFICATE_PATH: '/c.pem' }).credential).toEqual({
      kind: 'certificate',
      path: '/c.pem',
    });
  });

  describe('credentials without secrets', () => {
    const THUMBPRINT = '0123456789abcdef0123456789abcdef01234567';

    it('takes the managed identity as the client assertion, system- or user-assigned', () => {
      expect(loadConfig({ ...noSecret, ENTRA_CLIENT_ASSERTION: 'managed-identity' }).credential).toEqual({
        kind: 'managedIdentity',
        clientId: undefined,
      });
      const userAssigned = loadConfig({
        ...noSecret,
        ENTRA_CLIENT_ASSERTION: 'managed-identity',
        ENTRA_MANAGED_IDENTITY_CLIENT_ID: '6D1F3A40-2B5C-4E7D-9F80-1A2B3C4D5E00',
      });
      expect(userAssigned.credential).toEqual({
        kind: 'managedIdentity',
        clientId: '6d1f3a40-2b5c-4e7d-9f80-1a2b3c4d5e00',
      });
    });

    it('takes the one certificate App Service loaded, from /var/ssl/private unless told otherwise', () => {
      expect(loadConfig({ ...noSecret, WEBSITE_LOAD_CERTIFICATES: THUMBPRINT }).credential).toEqual({
        kind: 'appServiceCertificate',
        thumbprint: THUMBPRINT.toUpperCase(),
        directory: '/var/ssl/private',
      });
      expect(
        loadConfig({
          ...noSecret,
          WEBSITE_LOAD_CERTIFICATES: THUMBPRINT,
          WEBSITE_PRIVATE_CERTS_PATH: '/tmp/c',
        }).credential,
      ).toMatchObject({ directory: '/tmp/c' });
    });

    it('names each conflict and each malformed value', () => {
      expect(problemsOf({ ...minimal, ENTRA_CLIENT_ASSERTION: 'managed-identity' })).toContain(
        'set only one of the client credentials: ENTRA_CLIENT_SECRET and ENTRA_CLIENT_ASSERTION are set',
      );
      expect(
        problemsOf({
          ...noSecret,
          WEBSITE_LOAD_CERTIFICATES: THUMBPRINT,
          ENTRA_CLIENT_ASSERTION: 'managed-identity',
        }),
      ).toContain('WEBSITE_LOAD_CERTIFICATES and ENTRA_CLIENT_ASSERTION are set');
      expect(problemsOf({ ...noSecret, ENTRA_CLIENT_ASSERTION: 'workload-identity' })).toContain(
        'ENTRA_CLIENT_ASSERTION must be managed-identity, got "workload-identity"',
      );
      expect(
        problemsOf({
          ...noSecret,
          ENTRA_CLIENT_ASSERTION: 'managed-identity',
          ENTRA_MANAGED_IDENTITY_CLIENT_ID: 'mi',
        }),
      ).toContain('ENTRA_MANAGED_IDENTITY_CLIENT_ID must be a GUID');
      expect(problemsOf({ ...minimal, ENTRA_MANAGED_IDENTITY_CLIENT_ID: CLIENT })).toContain(
        'ENTRA_MANAGED_IDENTITY_CLIENT_ID is set but ENTRA_CLIENT_ASSERTION is not managed-identity',
      );
      // `*` or several: which one is the credential would be a guess.
      expect(problemsOf({ ...noSecret, WEBSITE_LOAD_CERTIFICATES: '*' })).toContain(
        'WEBSITE_LOAD_CERTIFICATES must name exactly one thumbprint',
      );
      expect(problemsOf({ ...noSecret, WEBSITE_LOAD_CERTIFICATES: `${THUMBPRINT},${THUMBPRINT}` })).toContain(
        'WEBSITE_LOAD_CERTIFICATES must name exactly one thumbprint',
      );
      expect(problemsOf({ ...noSecret, WEBSITE_LOAD_CERTIFICATES: 'abc' })).toContain(
        'WEBSITE_LOAD_CERTIFICATES "abc" is not a certificate thumbprint',
      );
    });
  });

  it('treats empty values as unset, as a copied sample settings file has them', () => {
    expect(loadConfig({ ...minimal, TARGET_HOST_NAME: '', GRAPH_BASE_URL: '' })).toMatchObject({
      targetHostName: undefined,
      graphBaseUrl: 'https://graph.microsoft.com/beta',
    });
  });

  describe('the delivery ledger', () => {
    it('defaults to the contract: table notificationledger, 30 days', () => {
      expect(loadConfig(minimal).ledger).toEqual({
        table: 'notificationledger',
        retentionDays: 30,
        retentionSchedule: '0 30 2 * * *',
        leaseSeconds: 60,
      });
    });

    it('names a table name Azure refuses and retention or lease values that are not whole numbers in range', () => {
      const detail = problemsOf({
        ...minimal,
        NOTIFICATIONS_LEDGER_TABLE: '1ledger',
        NOTIFICATIONS_LEDGER_RETENTION_DAYS: '0',
        NOTIFICATIONS_LEDGER_LEASE_SECONDS: '1.5',
      });
      expect(detail).toContain('NOTIFICATIONS_LEDGER_TABLE "1ledger" is not a valid Azure Table name');
      expect(detail).toContain('NOTIFICATIONS_LEDGER_RETENTION_DAYS must be a whole number from 1 to 3650');
      expect(detail).toContain('NOTIFICATIONS_LEDGER_LEASE_SECONDS must be a whole number from 1 to 540');
    });
  });

  describe('AzureWebJobsStorage', () => {
    it('is required: unset is a startup error naming the setting, not development storage', () => {
      const detail = problemsOf(noStorage);
      expect(detail).toContain('AzureWebJobsStorage is required');
      expect(detail).toContain('AzureWebJobsStorage__queueServiceUri or AzureWebJobsStorage__accountName');
      expect(problemsOf({ ...noStorage, AzureWebJobsStorage: '' })).toContain(
        'AzureWebJobsStorage is required',
      );
    });

    it('takes a connection string as given, development storage included', () => {
      const account =
        'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net';
      expect(loadConfig({ ...noStorage, AzureWebJobsStorage: account }).storage).toEqual({
        kind: 'connectionString',
        connectionString: account,
      });
      expect(loadConfig(minimal).storage).toEqual({
        kind: 'connectionString',
        connectionString: 'UseDevelopmentStorage=true',
      });
    });

    it('takes the identity-based form: a queue service URI, system-assigned identity', () => {
      const config = loadConfig({
        ...noStorage,
        AzureWebJobsStorage__queueServiceUri: 'https://acct.queue.core.windows.net/',
      });
      expect(config.storage).toEqual({
        kind: 'identity',
        queueServiceUri: 'https://acct.queue.core.windows.net',
        tableServiceUri: 'https://acct.table.core.windows.net',
        clientId: undefined,
      });
    });

    it("takes the ledger's table endpoint as given, or requires it where the queue's does not name it", () => {
      const given = loadConfig({
        ...noStorage,
        AzureWebJobsStorage__queueServiceUri: 'https://queues.contoso.example/',
        AzureWebJobsStorage__tableServiceUri: 'https://tables.contoso.example/',
      });
      expect(given.storage).toMatchObject({ tableServiceUri: 'https://tables.contoso.example' });
      expect(
        problemsOf({ ...noStorage, AzureWebJobsStorage__queueServiceUri: 'https://queues.contoso.example/' }),
      ).toContain('AzureWebJobsStorage__tableServiceUri is required');
    });

    it('takes the identity-based form: an account name, user-assigned identity', () => {
      const identity = '5d1e8a20-6b3c-4f2a-9e1d-7c0b2a4f6e00';
      const config = loadConfig({
        ...noStorage,
        AzureWebJobsStorage__accountName: 'acct',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__clientId: identity,
      });
      expect(config.storage).toEqual({
        kind: 'identity',
        queueServiceUri: 'https://acct.queue.core.windows.net',
        tableServiceUri: 'https://acct.table.core.windows.net',
        clientId: identity,
      });
    });

    it('names malformed identity-based settings', () => {
      const detail = problemsOf({
        ...noStorage,
        AzureWebJobsStorage__accountName: 'Not_An_Account',
        AzureWebJobsStorage__credential: 'connectionstring',
        AzureWebJobsStorage__clientId: 'nope',
      });
      expect(detail).toContain(
        'AzureWebJobsStorage__accountName "Not_An_Account" is not a storage account name',
      );
      expect(detail).toContain('AzureWebJobsStorage__credential must be managedidentity');
      expect(detail).toContain('AzureWebJobsStorage__clientId must be a GUID');
      expect(
        problemsOf({
          ...noStorage,
          AzureWebJobsStorage__queueServiceUri: 'http://acct.queue.core.windows.net',
        }),
      ).toContain('AzureWebJobsStorage__queueServiceUri must be an https URL');
    });

    it('prefers the connection string when both forms are set, as the Functions host does', () => {
      const config = loadConfig({ ...minimal, AzureWebJobsStorage__accountName: 'acct' });
      expect(config.storage.kind).toBe('connectionString');
    });
  });
});

describe('Teams settings', () => {
  it('defaults to delegated TeamsActivity.Send, no Teams app id, no sends as the app, 5 per second', () => {
    expect(loadConfig(minimal)).toMatchObject({
      teamsScopes: ['https://graph.microsoft.com/TeamsActivity.Send', 'offline_access'],
      teamsAppId: undefined,
      teamsSendAsApp: false,
      teamsMaxRpsPerTenant: 5,
    });
  });

  it('takes them as given', () => {
    const app = '5F0C2A8E-1D3B-4C6A-9E8F-7A6B5C4D3E21';
    expect(
      loadConfig({
        ...minimal,
        TEAMS_SCOPES: 'https://graph.microsoft.us/TeamsActivity.Send offline_access',
        TEAMS_APP_ID: app,
        TEAMS_SEND_AS_APP: 'true',
        TEAMS_MAX_RPS_PER_TENANT: '3',
      }),
    ).toMatchObject({
      teamsScopes: ['https://graph.microsoft.us/TeamsActivity.Send', 'offline_access'],
      teamsAppId: app.toLowerCase(),
      teamsSendAsApp: true,
      teamsMaxRpsPerTenant: 3,
    });
  });

  it('names each malformed one', () => {
    const detail = problemsOf({
      ...minimal,
      TEAMS_SCOPES: 'https://graph.microsoft.com/TeamsActivity.Send',
      TEAMS_APP_ID: 'my-app',
      TEAMS_SEND_AS_APP: 'yes',
      TEAMS_MAX_RPS_PER_TENANT: '2.5',
    });
    expect(detail).toContain('TEAMS_SCOPES must include offline_access');
    expect(detail).toContain('TEAMS_APP_ID must be a GUID');
    expect(detail).toContain('TEAMS_SEND_AS_APP must be true or false');
    expect(detail).toContain('TEAMS_MAX_RPS_PER_TENANT must be a whole number of at least 1');
    expect(problemsOf({ ...minimal, TEAMS_MAX_RPS_PER_TENANT: '0' })).toContain('TEAMS_MAX_RPS_PER_TENANT');
  });
});
