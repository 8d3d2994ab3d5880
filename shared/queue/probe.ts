import { QueueServiceClient } from '@azure/storage-queue';
import type { DependencyProbe } from '../health/health';

/** Storage is up when the queue service answers an authenticated request. */
export function storageProbe(connectionString: string): DependencyProbe {
  const client = QueueServiceClient.fromConnectionString(connectionString, { retryOptions: { maxTries: 1 } });
  return {
    name: 'storage',
    async check(signal) {
      await client.getProperties({ abortSignal: signal });
    },
  };
}
