import type { QueueClient } from '@azure/storage-queue';
import type { DependencyProbe } from '../health/health';

/**
 * Storage is up when it answers an authenticated request about the deferred queue (one try,
 * health's timeout). A queue's properties, not the service's: with the identity-based connection
 * the app's role (Storage Queue Data Contributor) covers a queue's metadata, not the account's
 * settings. "No such queue" is an answer too: the queues are created on first use. `queue()` is
 * asked for at the first check (creating the client loads the storage SDK).
 */
export function storageProbe(queue: () => QueueClient): DependencyProbe {
  return {
    name: 'storage',
    async check(signal) {
      try {
        await queue().getProperties({ abortSignal: signal });
      } catch (err) {
        if ((err as { statusCode?: unknown }).statusCode !== 404) throw err;
      }
    },
  };
}
