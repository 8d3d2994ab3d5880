import type { QueueServiceClient, StoragePipelineOptions } from '@azure/storage-queue';
import { appServiceManagedIdentity } from '../auth/managed-identity';
import type { StorageConnection } from '../config';
import { AppError } from '../errors';
import { onFirstUse } from '../on-first-use';

// The SDK's own retries are off: its per-try `tryTimeoutInMs` is only the server-side `timeout`
// parameter, so a storage endpoint that accepts a connection and never answers would hold its
// first try forever. The queue's callers bound each try themselves (callWithTries).
const OPTIONS: StoragePipelineOptions = { retryOptions: { maxTries: 1 } };

/**
 * The queue service of `AzureWebJobsStorage`: from its connection string, or from its
 * identity-based settings with the Function App's managed identity (never another credential,
 * and only where App Service advertises one).
 *
 * The settings are checked now: throws `invalid_config` when the identity form is configured
 * without a managed identity, or when the connection string names no queue endpoint or no
 * credential. The client is created, and @azure/storage-queue loaded, at the first call of the
 * returned function (the first queue write or health check); no network access until then.
 */
export function queueServiceFrom(
  storage: StorageConnection,
  env: Readonly<Record<string, string | undefined>>,
): () => QueueServiceClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, on purpose
  const sdk = () => require('@azure/storage-queue') as typeof import('@azure/storage-queue');
  if (storage.kind === 'connectionString') {
    checkConnectionString(storage.connectionString);
    return onFirstUse(() => sdk().QueueServiceClient.fromConnectionString(storage.connectionString, OPTIONS));
  }
  const credential = appServiceManagedIdentity(
    env,
    storage.clientId,
    'AzureWebJobsStorage__queueServiceUri / __accountName (an identity-based connection)',
  );
  return onFirstUse(() => new (sdk().QueueServiceClient)(storage.queueServiceUri, credential, OPTIONS));
}

/**
 * What the storage SDK refuses when it parses the connection string (the SDK itself is loaded only
 * at the first queue call, so its rules are checked here, at startup): an account key form
 * (`DefaultEndpointsProtocol`, `AccountName`, `AccountKey`, and `EndpointSuffix` unless
 * `QueueEndpoint` is given), or a SAS form (`QueueEndpoint` and `SharedAccessSignature`).
 */
function checkConnectionString(connection: string): void {
  if (connection.startsWith('UseDevelopmentStorage=true')) return;
  // As the SDK reads them: case-sensitive keys, the first occurrence wins.
  const value = (key: string): string =>
    connection
      .split(';')
      .map((part) => part.trim())
      .find((part) => part.startsWith(`${key}=`))
      ?.slice(key.length + 1) ?? '';
  let problem: string | undefined;
  if (connection.includes('DefaultEndpointsProtocol=') && connection.includes('AccountKey=')) {
    const protocol = value('DefaultEndpointsProtocol').toLowerCase();
    if (!value('AccountName')) problem = 'it has no AccountName';
    else if (!value('AccountKey')) problem = 'its AccountKey is empty';
    else if (!value('QueueEndpoint') && protocol !== 'https' && protocol !== 'http')
      problem = 'its DefaultEndpointsProtocol must be https or http';
    else if (!value('QueueEndpoint') && !value('EndpointSuffix'))
      problem = 'it has neither QueueEndpoint nor EndpointSuffix';
  } else if (!value('QueueEndpoint') || !value('SharedAccessSignature')) {
    problem =
      'it has neither an account key (DefaultEndpointsProtocol, AccountName, AccountKey) nor a QueueEndpoint with a SharedAccessSignature';
  }
  if (problem) {
    throw new AppError('invalid_config', {
      detail: `AzureWebJobsStorage is not a storage connection string the queue client accepts: ${problem}.`,
    });
  }
}

/**
 * A storage service's address (the queue's, or the ledger's table service), to name storage
 * dependencies; none for a connection string without one.
 */
export function storageOrigin(storage: StorageConnection, service: 'queue' | 'table'): string | undefined {
  if (storage.kind === 'identity')
    return service === 'queue' ? storage.queueServiceUri : storage.tableServiceUri;
  const connection = storage.connectionString;
  if (/^UseDevelopmentStorage=true$/i.test(connection))
    return `http://127.0.0.1:${service === 'queue' ? 10001 : 10002}`;
  const key = service === 'queue' ? 'QueueEndpoint' : 'TableEndpoint';
  const endpoint = new RegExp(`(?:^|;)\\s*${key}=([^;]+)`, 'i').exec(connection)?.[1];
  if (endpoint) return endpoint;
  const account = /(?:^|;)\s*AccountName=([^;]+)/i.exec(connection)?.[1];
  const suffix = /(?:^|;)\s*EndpointSuffix=([^;]+)/i.exec(connection)?.[1] ?? 'core.windows.net';
  return account ? `https://${account}.${service}.${suffix}` : undefined;
}
