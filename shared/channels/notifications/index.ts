import type { GraphNotificationClient } from '../../graph/client';
import {
  parseNotificationRequest,
  toGraphNotification,
  type NotificationRequest,
} from '../../notifications/request';
import type { Channel, Prepared } from '../channel';

type Payload = Omit<NotificationRequest, 'deliverAt'> & { appNotificationId: string };

/**
 * Graph's notifications API (`POST /beta/me/notifications`), the seed's channel. Microsoft stopped
 * delivering through it in January 2022; it stays for services that still speak its protocol.
 */
export function notificationsChannel(deps: {
  graph: Pick<GraphNotificationClient, 'send'>;
  scopes: readonly string[];
  targetHostName: string | undefined;
}): Channel<Payload> {
  return {
    name: 'notifications',
    scopes: deps.scopes,
    paced: false,
    messageField: 'notification',
    prepare(body, now, code, id): Prepared<Payload> {
      const request = parseNotificationRequest(body, now, code);
      // Checked here, before any exchange: without a targetHostName Graph cannot take it.
      const graphBody = toGraphNotification(
        request,
        { targetHostName: deps.targetHostName, appNotificationId: id },
        code,
      );
      const { deliverAt, ...rest } = request;
      return {
        payload: { ...rest, appNotificationId: graphBody.appNotificationId },
        id: graphBody.appNotificationId,
        ...(deliverAt !== undefined ? { deliverAt } : {}),
      };
    },
    senderFor: () => 'user',
    async send(token, prepared, clientRequestId) {
      const graphBody = toGraphNotification(prepared.payload, {
        targetHostName: deps.targetHostName,
        appNotificationId: () => prepared.id,
      });
      const sent = await deps.graph.send(token, graphBody, clientRequestId);
      return { ...sent };
    },
    sentBody: (prepared, sent) => ({
      status: 'sent',
      id: sent.id,
      appNotificationId: prepared.id,
      expirationDateTime: sent.expirationDateTime,
    }),
    scheduledBody: (prepared) => ({
      status: 'scheduled',
      appNotificationId: prepared.id,
      deliverAt: prepared.deliverAt,
    }),
    toMessageBody: (prepared) => ({
      ...prepared.payload,
      ...(prepared.deliverAt !== undefined ? { deliverAt: prepared.deliverAt } : {}),
    }),
    ids: (prepared) => ({ channel: 'notifications', appNotificationId: prepared.id }),
  };
}
