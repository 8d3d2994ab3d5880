import { queueServiceFrom, storageOrigin } from '../../shared/queue/connection';
import { AppError } from '../../shared/errors';

const identity = {
  kind: 'identity',
  queueServiceUri: 'https://acct.queue.core.windows.net',
  tableServiceUri: 'https://acct.table.core.windows.net',
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
    expect(queueServiceFrom(identity, env)().url).toBe('https://acct.queue.core.windows.net');
  });

  it('refuses at startup a connection string the storage SDK would refuse at the first queue call', () => {
    const refused = (connectionString: string): string => {
      try {
        queueServiceFrom({ kind: 'connectionString', connectionString }, {});
      } catch (err) {
        expect(err).toBeInstanceOf(AppError);
        expect((err as AppError).code).toBe('invalid_config');
        return (err as AppError).detail ?? '';
      }
      throw new Error(`accepted ${connectionString}`);
    };
    expect(refused('AccountName=acct;AccountKey=a2V5')).toContain('AzureWebJobsStorage');
    expect(refused('DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5')).toContain(
      'EndpointSuffix',
    );
    expect(
      refused('DefaultEndpointsProtocol=https;AccountKey=a2V5;EndpointSuffix=core.windows.net'),
    ).toContain('AccountName');
    expect(refused('QueueEndpoint=https://acct.queue.core.windows.net')).toContain('SharedAccessSignature');
  });

  it('accepts each form the storage SDK accepts, and creates the client only when first asked', () => {
    for (const connectionString of [
      'UseDevelopmentStorage=true',
      'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net',
      'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1',
      'QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=sv=2024-01-01&sig=x',
    ]) {
      const service = queueServiceFrom({ kind: 'connectionString', connectionString }, {});
      expect(service()).toBe(service());
      expect(service().url).toMatch(/^https?:\/\//);
    }
  });

  it("names the queue's and the ledger table's endpoints for telemetry in either form", () => {
    expect(storageOrigin(identity, 'queue')).toBe('https://acct.queue.core.windows.net');
    expect(storageOrigin(identity, 'table')).toBe('https://acct.table.core.windows.net');
    const dev = { kind: 'connectionString' as const, connectionString: 'UseDevelopmentStorage=true' };
    expect([storageOrigin(dev, 'queue'), storageOrigin(dev, 'table')]).toEqual([
      'http://127.0.0.1:10001',
      'http://127.0.0.1:10002',
    ]);
    const key = {
      kind: 'connectionString' as const,
      connectionString: 'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5',
    };
    expect(storageOrigin(key, 'table')).toBe('https://acct.table.core.windows.net');
    const explicit = {
      kind: 'connectionString' as const,
      connectionString:
        'AccountName=a;AccountKey=k;QueueEndpoint=http://127.0.0.1:1/a;TableEndpoint=http://127.0.0.1:2/a',
    };
    expect([storageOrigin(explicit, 'queue'), storageOrigin(explicit, 'table')]).toEqual([
      'http://127.0.0.1:1/a',
      'http://127.0.0.1:2/a',
    ]);
  });
});
