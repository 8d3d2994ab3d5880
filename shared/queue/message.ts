import { AppError } from '../errors';
import type { NotificationRequest } from '../notifications/request';
import { parseNotificationRequest } from '../notifications/request';
import { describeSchemaErrors, schemaValidator } from '../schemas';

/** A message on the deferred queue, as an enqueuing system writes it (schemas/deferred-message.schema.json). */
export interface DeferredMessage {
  userId: string;
  tenantId: string;
  notification: NotificationRequest;
  correlationId?: string;
  /** Set by graph-notify when it puts a message back to retry later; senders leave it out. */
  attempt?: number;
  /** Set by graph-notify on a message it puts back: the id the sender's message had. */
  originalMessageId?: string;
}

/**
 * A queue message as the trigger hands it over (@azure/functions parses JSON text, so an object,
 * or the raw string when it was not JSON) to a validated DeferredMessage. Throws `invalid_message`.
 */
export function fromQueueMessage(raw: unknown, now: Date): DeferredMessage {
  let value = raw;
  if (typeof raw === 'string' || Buffer.isBuffer(raw)) {
    try {
      value = JSON.parse(raw.toString());
    } catch {
      throw new AppError('invalid_message', { detail: 'The message is not JSON.' });
    }
  }
  const validate = schemaValidator<DeferredMessage>('deferred-message');
  if (!validate(value))
    throw new AppError('invalid_message', { detail: describeSchemaErrors(validate.errors) });
  // The time rules the schema cannot express (and deliverAt may lie up to 7 days ahead).
  parseNotificationRequest(value.notification, now, 'invalid_message');
  return {
    ...value,
    userId: value.userId.toLowerCase(),
    tenantId: value.tenantId.toLowerCase(),
  };
}

/** The wire form: JSON, base64-encoded as host.json's default `messageEncoding` expects. */
export function toQueueText(message: unknown): string {
  return Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
}
