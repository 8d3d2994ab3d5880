import { app } from '@azure/functions';
import { loggerFor } from '../shared/http/respond';
import { config, deferredDelivery } from '../shared/runtime';

app.storageQueue('deliverDeferred', {
  // The validated setting rather than `%NOTIFICATIONS_QUEUE%`: the host would refuse to start
  // without the app setting, where the contract gives it a default.
  queueName: config.notificationsQueue,
  connection: 'AzureWebJobsStorage',
  handler: async (message, context) => {
    const { id, dequeueCount } = context.triggerMetadata ?? {};
    await deferredDelivery.deliver(
      message,
      {
        messageId: typeof id === 'string' ? id : context.invocationId,
        dequeueCount: Number(dequeueCount ?? 1),
      },
      loggerFor(context),
    );
  },
});
