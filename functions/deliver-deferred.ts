import { app } from '@azure/functions';
import { loggerFor } from '../shared/http/respond';
import { config, deferredDelivery } from '../shared/runtime';

app.storageQueue('deliverDeferred', {
  // The validated setting rather than `%NOTIFICATIONS_QUEUE%`: the host would refuse to start
  // without the app setting, where the contract gives it a default.
  queueName: config.notificationsQueue,
  connection: 'AzureWebJobsStorage',
  handler: async (message, context) => {
    const meta = context.triggerMetadata ?? {};
    await deferredDelivery.deliver(
      message,
      { messageId: String(meta.id ?? context.invocationId), dequeueCount: Number(meta.dequeueCount ?? 1) },
      loggerFor(context),
    );
  },
});
