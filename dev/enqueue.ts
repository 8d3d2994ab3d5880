import { QueueClient } from '@azure/storage-queue';
import { enqueueDeferredNotification } from '../shared/queue/enqueue';
import { toQueueText } from '../shared/queue/message';
import { USAGE, UsageError, toEnqueueRequest } from './enqueue-message';
import { localSettings } from './settings';

// `npm run enqueue -- --user <oid|dev user> --title "…"` (a Graph notification) or
// `npm run enqueue -- --channel teams --user alice --to bob` (a Teams activity): what another
// system does to notify a user later, against the queue the app reads (npm start's Azurite by
// default).

async function main(): Promise<void> {
  let request;
  try {
    request = toEnqueueRequest(process.argv.slice(2), new Date());
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (request === 'help') {
    console.log(USAGE);
    return;
  }
  const settings = localSettings(process.env);
  const connection = settings.AzureWebJobsStorage || 'UseDevelopmentStorage=true';
  const queueName = settings.NOTIFICATIONS_QUEUE || 'notifications-deferred';

  const queue = new QueueClient(connection, queueName);
  await queue.createIfNotExists();
  let messageId: string;
  if (request.channel === 'notifications') {
    ({ messageId } = await enqueueDeferredNotification(queue, request.message));
  } else {
    // Base64 as the queue trigger reads it (host.json); -1: never expires while it waits. The app
    // checks it on receipt: a message against the schema ends in the poison queue, reason
    // invalid_message.
    ({ messageId } = await queue.sendMessage(toQueueText(request.message), { messageTimeToLive: -1 }));
  }
  console.log(`Enqueued message ${messageId} on ${queueName} ${request.summary}.`);
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  console.error(
    /ECONNREFUSED/.test(message)
      ? 'The queue is not reachable: start the stack with npm start first.'
      : message,
  );
  process.exit(1);
});
