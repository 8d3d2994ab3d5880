import type { DependencyProbe } from '../health/health';

/** Storage is up when the queue service answers an authenticated request. */
export function storageProbe(connectionString: string): DependencyProbe {
  return {
    name: 'storage',
    async check(signal) {
      // Loaded on first use: the storage SDK is not needed to answer most requests.
      const { QueueServiceClient } = await import('@azure/storage-queue');
      const client = QueueServiceClient.fromConnectionString(connectionString, {
        retryOptions: { maxTries: 1 },
      });
      await client.getProperties({ abortSignal: signal });
    },
  };
}
