import type { QueueClient } from '@azure/storage-queue';
import { parseNotificationRequest } from '../notifications/request';
import { fromQueueMessage, toQueueText, type QueueMessage } from './message';

export type { DeferredMessage, QueueMessage, TeamsMessage } from './message';

/**
 * For systems that notify users later: validates a message against the published schema, then
 * puts it on the deferred queue base64-encoded, as the queue trigger reads it. A message that
 * would only end in the poison queue as `invalid_message` is refused here instead.
 *
 * Side effect: one queue write (the queue must exist). Needs the Storage Queue Data Message Sender
 * role (or the account key) on the queue.
 */
export async function enqueueDeferredNotification(
  queue: QueueClient,
  message: QueueMessage,
  options: { delaySec?: number } = {},
): Promise<{ messageId: string }> {
  const read = fromQueueMessage(message);
  // The time rules the schema cannot state; a Teams body's topic default depends on the service.
  if (read.channel === 'notifications') parseNotificationRequest(read.body, new Date(), 'invalid_message');
  const sent = await queue.sendMessage(toQueueText(message), {
    visibilityTimeout: options.delaySec ? Math.ceil(options.delaySec) : undefined,
    // -1: never expire; the queue's default (7 days) would drop a message scheduled 7 days out.
    messageTimeToLive: -1,
  });
  return { messageId: sent.messageId };
}
