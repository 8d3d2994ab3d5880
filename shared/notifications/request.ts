import { createHash } from 'node:crypto';
import { AppError } from '../errors';
import { describeSchemaErrors, schemaValidator } from '../schemas';

/** The notification a client or an enqueuing system sends: Graph's resource plus `deliverAt`. */
export interface NotificationRequest {
  targetHostName?: string;
  appNotificationId?: string;
  groupName?: string;
  expirationDateTime?: string;
  displayTimeToLive?: number;
  priority?: 'None' | 'Low' | 'High';
  payload: { rawContent?: string; visualContent?: { title: string; body?: string } };
  targetPolicy?: { platformTypes?: string[] };
  fallbackPolicy?: { endpointFallback?: Record<string, unknown> };
  deliverAt?: string;
}

/** What is posted to Graph: complete, and without our own fields (Graph rejects unknown ones). */
export type GraphNotification = Omit<
  NotificationRequest,
  'deliverAt' | 'targetHostName' | 'appNotificationId'
> & {
  targetHostName: string;
  appNotificationId: string;
};

const DAY_MS = 24 * 60 * 60 * 1000;
/** Graph keeps a notification at most 30 days. */
export const MAX_EXPIRATION_MS = 30 * DAY_MS;
/** A storage queue message can be hidden at most 7 days. */
export const MAX_DELIVER_AT_MS = 7 * DAY_MS;

/**
 * Validates a parsed body against the published schema and the limits the schema cannot say
 * (times relative to `now`). Throws `invalid_request` naming each problem.
 */
export function parseNotificationRequest(
  value: unknown,
  now: Date,
  code: 'invalid_request' | 'invalid_message' = 'invalid_request',
): NotificationRequest {
  const validate = schemaValidator<NotificationRequest>('notification');
  if (!validate(value)) throw new AppError(code, { detail: describeSchemaErrors(validate.errors) });
  const problems: string[] = [];
  if (value.expirationDateTime !== undefined) {
    const at = Date.parse(value.expirationDateTime);
    if (at <= now.getTime()) problems.push('/expirationDateTime is in the past');
    else if (at - now.getTime() > MAX_EXPIRATION_MS)
      problems.push('/expirationDateTime is more than 30 days ahead');
  }
  if (value.deliverAt !== undefined && Date.parse(value.deliverAt) - now.getTime() > MAX_DELIVER_AT_MS) {
    problems.push('/deliverAt is more than 7 days ahead');
  }
  if (problems.length > 0) throw new AppError(code, { detail: problems.join('; ') });
  return value;
}

/**
 * The Graph body for a request: `targetHostName` defaulted, `appNotificationId` as given or
 * generated, `deliverAt` dropped. Returns a new object; the request is not modified.
 */
export function toGraphNotification(
  request: NotificationRequest,
  defaults: { targetHostName: string | undefined; appNotificationId: () => string },
  code: 'invalid_request' | 'invalid_message' = 'invalid_request',
): GraphNotification {
  const { deliverAt: _deliverAt, ...rest } = request;
  const targetHostName = request.targetHostName ?? defaults.targetHostName;
  if (!targetHostName) {
    throw new AppError(code, {
      detail: 'targetHostName is required (this service has no TARGET_HOST_NAME default).',
    });
  }
  return {
    ...rest,
    targetHostName,
    appNotificationId: request.appNotificationId ?? defaults.appNotificationId(),
  };
}

/**
 * The same id for the same message every time it is delivered: a redelivered queue message must
 * land on the same Graph notification, not on a second one.
 */
export function deterministicAppNotificationId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('base64url').slice(0, 32);
}
