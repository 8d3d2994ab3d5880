import { AppError } from '../../errors';
import { GUID } from '../../ids';
import type { Channel, Prepared } from '../channel';
import {
  parseActivityRequest,
  toTeamsActivity,
  type ActivityDefaults,
  type ActivityRequest,
} from './activity';
import type { TeamsActivityClient } from './client';

type Payload = Omit<ActivityRequest, 'deliverAt'>;

/**
 * The Teams activity feed (`POST /v1.0/users/{id}/teamwork/sendActivityNotification`): the live
 * Microsoft 365 way to reach a user on every device. The caller is the actor Teams shows.
 */
export function teamsChannel(deps: {
  client: Pick<TeamsActivityClient, 'send'>;
  scopes: readonly string[];
  defaults: ActivityDefaults;
  /** TEAMS_SEND_AS_APP: a caller's self-send goes out as the app instead of being refused. */
  sendAsApp: boolean;
}): Channel<Payload> {
  return {
    name: 'teams',
    scopes: deps.scopes,
    paced: true,
    messageField: 'activity',
    prepare(body, now, code, id): Prepared<Payload> {
      const { deliverAt, ...payload } = parseActivityRequest(body, now, deps.defaults, code);
      return { payload, id: id(), ...(deliverAt !== undefined ? { deliverAt } : {}) };
    },
    senderFor(payload, caller) {
      const to = payload.recipient.userId.toLowerCase();
      const self = GUID.test(to) ? to === caller.userId.toLowerCase() : (caller.usernames ?? []).includes(to);
      if (!self) return 'user';
      if (deps.sendAsApp) return 'app';
      throw new AppError('recipient_is_sender', {
        detail:
          "Teams does not deliver a user's delegated notification to themselves; the service would send it as the app with TEAMS_SEND_AS_APP.",
      });
    },
    async send(token, prepared, clientRequestId) {
      await deps.client.send(
        token,
        prepared.payload.recipient.userId,
        toTeamsActivity(prepared.payload, deps.defaults),
        clientRequestId,
      );
      return {};
    },
    sentBody: (prepared) => ({
      status: 'sent',
      channel: 'teams',
      id: prepared.id,
      recipient: prepared.payload.recipient.userId,
    }),
    scheduledBody: (prepared) => ({
      status: 'scheduled',
      channel: 'teams',
      id: prepared.id,
      deliverAt: prepared.deliverAt,
    }),
    toMessageBody: (prepared) => ({
      ...prepared.payload,
      ...(prepared.deliverAt !== undefined ? { deliverAt: prepared.deliverAt } : {}),
    }),
    ids: (prepared) => ({ channel: 'teams', activityId: prepared.id }),
  };
}
