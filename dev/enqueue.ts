import { parseArgs } from 'node:util';
import { QueueClient } from '@azure/storage-queue';
import { enqueueDeferredNotification } from '../shared/queue/enqueue';
import { DEV_TENANT_ID, devUser } from './standins/identities';
import { localSettings } from './settings';

// `npm run enqueue -- --user <oid|dev user> --tenant <tid> --title "…"`: what another system does
// to notify a user later, against the queue the app reads (npm start's Azurite by default).

const USAGE = `usage: npm run enqueue -- --user <oid or dev user name> [--tenant <tid>] --title "…" [--body "…"]
                          [--in <seconds> | --deliver-at <ISO time>] [--id <appNotificationId>] [--correlation-id <id>]`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      user: { type: 'string' },
      tenant: { type: 'string' },
      title: { type: 'string' },
      body: { type: 'string' },
      in: { type: 'string' },
      'deliver-at': { type: 'string' },
      id: { type: 'string' },
      'correlation-id': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help || !values.user || !values.title) {
    console.error(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const settings = localSettings(process.env);
  const connection = settings.AzureWebJobsStorage || 'UseDevelopmentStorage=true';
  const queueName = settings.NOTIFICATIONS_QUEUE || 'notifications-deferred';
  const user = devUser(values.user, values.tenant ?? DEV_TENANT_ID);
  const deliverAt =
    values['deliver-at'] ??
    (values.in ? new Date(Date.now() + Number(values.in) * 1000).toISOString() : undefined);

  const queue = new QueueClient(connection, queueName);
  await queue.createIfNotExists();
  const { messageId } = await enqueueDeferredNotification(queue, {
    userId: user.oid,
    tenantId: values.tenant ?? user.tid,
    notification: {
      payload: { visualContent: { title: values.title, ...(values.body ? { body: values.body } : {}) } },
      ...(values.id ? { appNotificationId: values.id } : {}),
      ...(deliverAt ? { deliverAt } : {}),
    },
    ...(values['correlation-id'] ? { correlationId: values['correlation-id'] } : {}),
  });
  console.log(
    `Enqueued message ${messageId} on ${queueName} for user ${user.oid}${deliverAt ? `, to deliver at ${deliverAt}` : ''}.`,
  );
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
