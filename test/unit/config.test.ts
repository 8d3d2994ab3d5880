import { loadConfig } from '../../shared/config';
import { AppError } from '../../shared/errors';

const TENANT = '7b1d4f00-0c1a-4e8e-9d2b-5a6f3c2e1d00';
const CLIENT = '3f6a2b10-8d4c-4e1f-9a7b-2c5d0e6f1a00';
const minimal = {
  ENTRA_TENANT_ID: TENANT,
  ENTRA_CLIENT_ID: CLIENT,
  ENTRA_CLIENT_SECRET: 's',
  KEY_VAULT_URL: 'https://vault.example.net/',
};

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
      storageConnection: 'UseDevelopmentStorage=true',
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
    expect(detail).toContain('one of ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERTIFICATE_PATH is required');
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
    expect(problemsOf({ ...minimal, ENTRA_CLIENT_CERTIFICATE_PATH: '/c.pem' })).toContain('set only one of');
    const { ENTRA_CLIENT_SECRET: _unused, ...noSecret } = minimal;
    expect(loadConfig({ ...noSecret, ENTRA_CLIENT_CERTIFICATE_PATH: '/c.pem' }).credential).toEqual({
      kind: 'certificate',
      path: '/c.pem',
    });
  });

  it('treats empty values as unset, as a copied sample settings file has them', () => {
    expect(loadConfig({ ...minimal, TARGET_HOST_NAME: '', GRAPH_BASE_URL: '' })).toMatchObject({
      targetHostName: undefined,
      graphBaseUrl: 'https://graph.microsoft.com/beta',
    });
  });
});
