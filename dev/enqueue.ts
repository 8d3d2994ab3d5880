import { QueueClient } from '@azure/storage-queue';
import { enqueueDeferredNotification } from '../shared/queue/enqueue';
import { isAppError } from '../shared/errors';
import { USAGE, UsageError, toEnqueueRequest } from './enqueue-message';
import { localSettings } from './settings';

// `npm run enqueue -- --user <oid|dev user> --title "…"` (a Graph notification) or
// `npm run enqueue -- --channel teams --user alice --to bob` (a Teams activity): what another
// system does to notify a user later, against the queue the app reads (npm start's Azurite by
// default).

async function main(): Promise<void> {
  // The settings the app reads too, under npm start (the environment, then local.settings.json).
  const settings = localSettings(process.env);
  let request;
  try {
    request = toEnqueueRequest(process.argv.slice(2), new Date(), {
      teamsAppId: settings.TEAMS_APP_ID || undefined,
    });
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (request === 'help') {
    console.log(USAGE);
    return;
  }
  const connection = settings.AzureWebJobsStorage || 'UseDevelopmentStorage=true';
  const queueName = settings.NOTIFICATIONS_QUEUE || 'notifications-deferred';

  const queue = new QueueClient(connection, queueName);
  await queue.createIfNotExists();
  // The app's own enqueue, for both channels: the message is checked against the published queue
  // schema before it goes out, so a mistake is named here rather than found in the poison queue.
  const { messageId } = await enqueueDeferredNotification(queue, request.message);
  console.log(`Enqueued message ${messageId} on ${queueName} ${request.summary}.`);
}

main().catch((err: unknown) => {
  if (isAppError(err)) {
    console.error(`Not enqueued (${err.code}): ${err.detail}`);
    process.exit(1);
  }
  const message = err instanceof Error ? err.message : String(err);
  console.error(
    /ECONNREFUSED/.test(message)
      ? 'The queue is not reachable: start the stack with npm start first.'
      : message,
  );
  process.exit(1);
});
