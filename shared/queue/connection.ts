import { QueueServiceClient, type StoragePipelineOptions } from '@azure/storage-queue';
import { appServiceManagedIdentity } from '../auth/managed-identity';
import type { StorageConnection } from '../config';

// The SDK's own retries are off: its per-try `tryTimeoutInMs` is only the server-side `timeout`
// parameter, so a storage endpoint that accepts a connection and never answers would hold its
// first try forever. The queue's callers bound each try themselves (callWithTries).
const OPTIONS: StoragePipelineOptions = { retryOptions: { maxTries: 1 } };

/**
 * The queue service of `AzureWebJobsStorage`: from its connection string, or from its
 * identity-based settings with the Function App's managed identity (never another credential,
 * and only where App Service advertises one). No network access at construction; throws
 * `invalid_config` when the identity form is configured without a managed identity.
 */
export function queueServiceFrom(
  storage: StorageConnection,
  env: Readonly<Record<string, string | undefined>>,
): QueueServiceClient {
  if (storage.kind === 'connectionString') {
    return QueueServiceClient.fromConnectionString(storage.connectionString, OPTIONS);
  }
  const credential = appServiceManagedIdentity(
    env,
    storage.clientId,
    'AzureWebJobsStorage__queueServiceUri / __accountName (an identity-based connection)',
  );
  return new QueueServiceClient(storage.queueServiceUri, credential, OPTIONS);
}

/** The queue service's address, to name storage dependencies; none for a connection string without one. */
export function queueOrigin(storage: StorageConnection): string | undefined {
  if (storage.kind === 'identity') return storage.queueServiceUri;
  const connection = storage.connectionString;
  if (/^UseDevelopmentStorage=true$/i.test(connection)) return 'http://127.0.0.1:10001';
  const endpoint = /(?:^|;)\s*QueueEndpoint=([^;]+)/i.exec(connection)?.[1];
  if (endpoint) return endpoint;
  const account = /(?:^|;)\s*AccountName=([^;]+)/i.exec(connection)?.[1];
  const suffix = /(?:^|;)\s*EndpointSuffix=([^;]+)/i.exec(connection)?.[1] ?? 'core.windows.net';
  return account ? `https://${account}.queue.${suffix}` : undefined;
}
