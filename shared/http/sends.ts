import type { HttpHandler } from '@azure/functions';
import type { CallerVerifier } from '../auth/caller';
import type { Channel, ChannelName } from '../channels/channel';
import type { DeliveryLedger } from '../ledger/ledger';
import type { NotificationService } from '../notifications/send';
import { readJsonBody } from './body';
import { answer, loggerFor } from './respond';

/**
 * `POST /api/notifications` and `POST /api/activities`: the caller verified, the body read, the
 * send made (idempotent under `Idempotency-Key`), answered 201 or 202 — or the first answer again
 * with `Idempotency-Replayed: true`.
 */
export function sendHandler(
  deps: { callers: CallerVerifier; notifications: NotificationService },
  channel: Channel,
): HttpHandler {
  return (request, context) =>
    answer(request, context, async () => {
      const caller = await deps.callers.verify(request.headers.get('authorization'));
      const body = await readJsonBody(request);
      const result = await deps.notifications.request(
        channel,
        caller,
        body,
        loggerFor(context),
        context.invocationId,
        request.headers.get('idempotency-key'),
      );
      return {
        status: result.status,
        jsonBody: result.body,
        ...(result.replayed ? { headers: { 'idempotency-replayed': 'true' } } : {}),
      };
    });
}

/** `GET /api/notifications/{id}` and `GET /api/activities/{id}`: the caller's own entry, or 404. */
export function statusHandler(
  deps: { callers: CallerVerifier; ledger: DeliveryLedger },
  channel: ChannelName,
): HttpHandler {
  return (request, context) =>
    answer(request, context, async () => {
      const caller = await deps.callers.verify(request.headers.get('authorization'));
      const status = await deps.ledger.status(caller, channel, request.params.id ?? '');
      return { status: 200, jsonBody: status };
    });
}
