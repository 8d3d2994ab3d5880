import type { Channel, ChannelName, Envelope, Prepared, Sender } from '../channels/channel';
import type { ActivityRequest } from '../channels/teams/activity';
import { AppError } from '../errors';
import type { NotificationRequest } from '../notifications/request';
import { describeSchemaErrors, schemaValidator } from '../schemas';

/**
 * A Graph notification message on the deferred queue, as an enqueuing system writes it
 * (schemas/deferred-message.schema.json, `definitions/notification`).
 */
export interface DeferredMessage extends Envelope {
  channel?: 'notifications';
  userId: string;
  tenantId: string;
  notification: NotificationRequest;
}

/** A Teams activity message (`definitions/teams`): on a registered user's behalf, or as the app. */
export interface TeamsMessage extends Envelope {
  channel: 'teams';
  userId?: string;
  as?: 'app';
  tenantId: string;
  activity: ActivityRequest;
  /** Set by graph-notify on a message it writes: the activity's id, kept across retries. */
  activityId?: string;
}

export type QueueMessage = DeferredMessage | TeamsMessage;

/** A queue message, read: the channel, who sends, the channel's body (validated by the channel). */
export interface ReceivedMessage {
  channel: ChannelName;
  sender: Sender;
  body: unknown;
  /** The id the message pins for its notification, when graph-notify wrote it. */
  id?: string;
  envelope: Envelope;
}

/**
 * A queue message as the trigger hands it over (@azure/functions parses JSON text, so an object,
 * or the raw string when it was not JSON), checked against the published schema of its kind.
 * Pure; throws `invalid_message`. The body's own rules are the channel's (`Channel.prepare`).
 */
export function fromQueueMessage(raw: unknown, _now?: Date): ReceivedMessage {
  let value = raw;
  if (typeof raw === 'string' || Buffer.isBuffer(raw)) {
    try {
      value = JSON.parse(raw.toString());
    } catch {
      throw new AppError('invalid_message', { detail: 'The message is not JSON.' });
    }
  }
  const teams =
    typeof value === 'object' && value !== null && (value as { channel?: unknown }).channel === 'teams';
  const validate = schemaValidator<QueueMessage>(teams ? 'teams-message' : 'notification-message');
  if (!validate(value))
    throw new AppError('invalid_message', { detail: describeSchemaErrors(validate.errors) });
  const envelope: Envelope = {
    ...(value.correlationId !== undefined ? { correlationId: value.correlationId } : {}),
    ...(value.attempt !== undefined ? { attempt: value.attempt } : {}),
    ...(value.originalMessageId !== undefined ? { originalMessageId: value.originalMessageId } : {}),
    ...(value.paced ? { paced: true } : {}),
  };
  const tenantId = value.tenantId.toLowerCase();
  if (value.channel === 'teams') {
    return {
      channel: 'teams',
      sender:
        value.as === 'app'
          ? { kind: 'app', tenantId }
          : { kind: 'user', user: { tenantId, userId: value.userId!.toLowerCase() } },
      body: value.activity,
      ...(value.activityId ? { id: value.activityId } : {}),
      envelope,
    };
  }
  return {
    channel: 'notifications',
    sender: { kind: 'user', user: { tenantId, userId: value.userId.toLowerCase() } },
    body: value.notification,
    ...(value.notification.appNotificationId ? { id: value.notification.appNotificationId } : {}),
    envelope,
  };
}

/** The wire form of a send for later: the channel's message kind, with graph-notify's bookkeeping. */
export function toQueueMessage<P>(
  channel: Channel<P>,
  prepared: Prepared<P>,
  sender: Sender,
  envelope: Envelope,
): QueueMessage {
  const body = channel.toMessageBody(prepared);
  if (channel.name === 'teams') {
    return {
      channel: 'teams',
      ...(sender.kind === 'app'
        ? { as: 'app' as const, tenantId: sender.tenantId }
        : { userId: sender.user.userId, tenantId: sender.user.tenantId }),
      activity: body as unknown as ActivityRequest,
      activityId: prepared.id,
      ...envelope,
    };
  }
  if (sender.kind !== 'user')
    throw new AppError('internal_error', { detail: 'Graph notifications are sent for a user.' });
  return {
    userId: sender.user.userId,
    tenantId: sender.user.tenantId,
    notification: body as unknown as NotificationRequest,
    ...envelope,
  };
}

/** The wire form: JSON, base64-encoded as host.json's default `messageEncoding` expects. */
export function toQueueText(message: unknown): string {
  return Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
}
