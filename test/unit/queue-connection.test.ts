import { queueOrigin, queueServiceFrom } from '../../shared/queue/connection';
import { AppError } from '../../shared/errors';

const identity = {
  kind: 'identity',
  queueServiceUri: 'https://acct.queue.core.windows.net',
  clientId: undefined,
} as const;

describe('the queue service of AzureWebJobsStorage', () => {
  it('refuses the identity-based form where App Service advertises no managed identity', () => {
    // Without IDENTITY_ENDPOINT/IDENTITY_HEADER a ManagedIdentityCredential would probe 169.254.169.254.
    let caught: unknown;
    try {
      queueServiceFrom(identity, {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AppError);
    expect((caught as AppError).code).toBe('invalid_config');
    expect((caught as AppError).detail).toContain('AzureWebJobsStorage__queueServiceUri');
  });

  it('builds the identity-based client against the queue service URI when App Service has an identity', () => {
    const env = { IDENTITY_ENDPOINT: 'http://127.0.0.1:1/msi/token', IDENTITY_HEADER: 'h' };
    expect(queueServiceFrom(identity, env).url).toBe('https://acct.queue.core.windows.net');
  });

  it('names the queue endpoint for telemetry in either form', () => {
    expect(queueOrigin(identity)).toBe('https://acct.queue.core.windows.net');
    expect(queueOrigin({ kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' })).toBe(
      'http://127.0.0.1:10001',
    );
    expect(
      queueOrigin({
        kind: 'connectionString',
        connectionString: 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5',
      }),
    ).toBe('https://acct.queue.core.windows.net');
  });
});
