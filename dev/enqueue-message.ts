import { parseArgs } from 'node:util';
import { parseActivityRequest, type ActivityRequest } from '../shared/channels/teams/activity';
import { isAppError } from '../shared/errors';
import type { DeferredMessage, TeamsMessage } from '../shared/queue/message';
import { DEV_TENANT_ID, DEV_USERS, devUser } from './standins/identities';

// What `npm run enqueue` puts on the deferred queue, from its command line: a Graph notification
// (the default) or, with `--channel teams`, a Teams activity. Pure, so the message a command
// writes can be tested without a queue.

export const USAGE = `usage: npm run enqueue -- --user <oid or dev user name> [--tenant <tid>] --title "…" [--body "…"]
                          [--in <seconds> | --deliver-at <ISO time>] [--id <appNotificationId>] [--correlation-id <id>]
       npm run enqueue -- --channel teams (--user <sender> | --as-app) --to <dev user name, oid or UPN>
                          [--tenant <tid>] [--text "…"] [--preview "…"]
                          --topic "…" --web-url <Teams URL> (may be left out where TEAMS_APP_ID is set)
                          [--activity-type <type> --param <name>=<value> …]
                          [--in <seconds> | --deliver-at <ISO time>] [--correlation-id <id>]`;

/**
 * A Teams message as this command writes it: the app's `TeamsMessage` (`definitions/teams` of the
 * queue schema), narrowed to what a command line can name — sent by a registered user (`userId`)
 * or as the app, never both, and without graph-notify's own bookkeeping (`activityId`).
 */
export type TeamsQueueMessage = Omit<TeamsMessage, 'userId' | 'as' | 'activityId'> &
  ({ userId: string } | { as: 'app' });

export type EnqueueRequest =
  | { channel: 'notifications'; message: DeferredMessage; summary: string }
  | { channel: 'teams'; message: TeamsQueueMessage; summary: string };

/** What the app that reads the queue is configured with, as far as its checks depend on it. */
export interface EnqueueOptions {
  /** The app's TEAMS_APP_ID: with it, a Teams activity may leave out its topic. */
  teamsAppId?: string;
}

/** A command line that cannot become a message: the CLI prints this and the usage. */
export class UsageError extends Error {}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const DEFAULT_TEXT = 'sent you a notification';

const OPTIONS = {
  channel: { type: 'string' },
  user: { type: 'string' },
  tenant: { type: 'string' },
  title: { type: 'string' },
  body: { type: 'string' },
  in: { type: 'string' },
  'deliver-at': { type: 'string' },
  id: { type: 'string' },
  'correlation-id': { type: 'string' },
  to: { type: 'string' },
  'as-app': { type: 'boolean' },
  text: { type: 'string' },
  preview: { type: 'string' },
  topic: { type: 'string' },
  'web-url': { type: 'string' },
  'activity-type': { type: 'string' },
  param: { type: 'string', multiple: true },
  help: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/**
 * A recipient as Graph takes it (object id or UPN): a dev user's name becomes that user's oid, a
 * UPN or GUID is passed on as given, any other name the made-up oid `devUser` gives it (as `--user`).
 */
export function recipientId(to: string): string {
  if (to.includes('@') || GUID.test(to)) return to;
  return devUser(to).oid;
}

/** The tenant a recipient belongs to, where the local directory knows it. */
function recipientTenant(to: string): string {
  const lower = to.toLowerCase();
  const known = DEV_USERS.find((u) => u.name === to || u.oid === lower || u.upn.toLowerCase() === lower);
  return known?.tid ?? DEV_TENANT_ID;
}

function deliverAtOf(values: Values, now: Date): string | undefined {
  if (values['deliver-at'] && values.in) throw new UsageError('Give --in or --deliver-at, not both.');
  if (values['deliver-at']) return values['deliver-at'];
  if (values.in === undefined) return undefined;
  const seconds = Number(values.in);
  if (!Number.isFinite(seconds) || seconds < 0)
    throw new UsageError(`--in ${values.in}: not a number of seconds.`);
  return new Date(now.getTime() + seconds * 1000).toISOString();
}

function refuse(values: Values, names: readonly (keyof Values)[], why: string): void {
  const given = names.filter((n) => values[n] !== undefined);
  if (given.length > 0) throw new UsageError(`${given.map((n) => `--${n}`).join(', ')}: ${why}`);
}

function notificationMessage(values: Values, now: Date): EnqueueRequest {
  refuse(
    values,
    ['to', 'as-app', 'text', 'preview', 'topic', 'web-url', 'activity-type', 'param'],
    'only with --channel teams.',
  );
  if (!values.user || !values.title) throw new UsageError('--user and --title are required.');
  const user = devUser(values.user, values.tenant ?? DEV_TENANT_ID);
  const deliverAt = deliverAtOf(values, now);
  const message: DeferredMessage = {
    userId: user.oid,
    tenantId: values.tenant ?? user.tid,
    notification: {
      payload: { visualContent: { title: values.title, ...(values.body ? { body: values.body } : {}) } },
      ...(values.id ? { appNotificationId: values.id } : {}),
      ...(deliverAt ? { deliverAt } : {}),
    },
    ...(values['correlation-id'] ? { correlationId: values['correlation-id'] } : {}),
  };
  return {
    channel: 'notifications',
    message,
    summary: `for user ${user.oid}${deliverAt ? `, to deliver at ${deliverAt}` : ''}`,
  };
}

function templateParameters(values: Values): { name: string; value: string }[] {
  const type = values['activity-type'] ?? 'systemDefault';
  const params = (values.param ?? []).map((p) => {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param ${p}: expected <name>=<value>.`);
    return { name: p.slice(0, eq), value: p.slice(eq + 1) };
  });
  if (type !== 'systemDefault') {
    refuse(
      values,
      ['text'],
      `the text of ${type} comes from its template in the Teams app manifest; give --param.`,
    );
    return params;
  }
  // systemDefault has no template: Teams shows the systemDefaultText parameter as the text.
  if (params.some((p) => p.name === 'systemDefaultText')) {
    throw new UsageError('Give the systemDefault text with --text, not --param systemDefaultText=….');
  }
  return [{ name: 'systemDefaultText', value: values.text ?? DEFAULT_TEXT }, ...params];
}

function teamsMessage(values: Values, now: Date, options: EnqueueOptions): EnqueueRequest {
  refuse(values, ['title', 'body', 'id'], 'only for Graph notifications (without --channel teams).');
  if (!values.to) throw new UsageError('--to is required with --channel teams.');
  if (values['as-app'] && values.user) {
    throw new UsageError('--as-app sends as the app, with no sender: leave out --user.');
  }
  if (!values['as-app'] && !values.user) {
    throw new UsageError('Give the sender with --user (a registered user), or send with --as-app.');
  }
  if ((values.topic === undefined) !== (values['web-url'] === undefined)) {
    throw new UsageError('--topic and --web-url go together (a text topic needs the Teams URL it opens).');
  }
  const deliverAt = deliverAtOf(values, now);
  const activity: ActivityRequest = {
    recipient: { userId: recipientId(values.to) },
    activityType: values['activity-type'] ?? 'systemDefault',
    templateParameters: templateParameters(values),
    ...(values.preview ? { previewText: { content: values.preview } } : {}),
    ...(values.topic && values['web-url']
      ? { topic: { source: 'text' as const, value: values.topic, webUrl: values['web-url'] } }
      : {}),
    ...(deliverAt ? { deliverAt } : {}),
  };
  checkAsTheAppWill(activity, now, options);
  const correlation = values['correlation-id'] ? { correlationId: values['correlation-id'] } : {};
  const when = deliverAt ? `, to deliver at ${deliverAt}` : '';
  if (values['as-app']) {
    // As the app, tenantId names the recipient's tenant (the one whose app token is used).
    const tenantId = values.tenant ?? recipientTenant(values.to);
    return {
      channel: 'teams',
      message: { channel: 'teams', as: 'app', tenantId, activity, ...correlation },
      summary: `for Teams user ${activity.recipient.userId}, sent as the app${when}`,
    };
  }
  const sender = devUser(values.user!, values.tenant ?? DEV_TENANT_ID);
  return {
    channel: 'teams',
    message: {
      channel: 'teams',
      userId: sender.oid,
      tenantId: values.tenant ?? sender.tid,
      activity,
      ...correlation,
    },
    summary: `for Teams user ${activity.recipient.userId}, from ${sender.oid}${when}`,
  };
}

/**
 * The rules the app applies to an activity on receipt that the queue schema cannot state (a text
 * topic's Teams link, systemDefault's text, deliverAt's range, and a topic unless the app has
 * TEAMS_APP_ID to default it to): a message breaking one would only end in the poison queue.
 */
function checkAsTheAppWill(activity: ActivityRequest, now: Date, options: EnqueueOptions): void {
  try {
    // The origin only judges entityUrl topics, which this command never writes.
    const defaults = { teamsAppId: options.teamsAppId, graphOrigin: 'https://graph.microsoft.com' };
    parseActivityRequest(activity, now, defaults, 'invalid_message');
  } catch (err) {
    if (!isAppError(err)) throw err;
    const hint =
      activity.topic || options.teamsAppId
        ? ''
        : " Give --topic and --web-url, or set TEAMS_APP_ID (the app's, as it has it) to leave them out.";
    throw new UsageError(`The app would refuse this activity (invalid_message): ${err.detail}.${hint}`);
  }
}

/**
 * `npm run enqueue`'s arguments to the queue message they stand for. Throws UsageError for a
 * command line that names no complete message, or mixes the two channels' options.
 */
export function toEnqueueRequest(
  args: readonly string[],
  now: Date,
  options: EnqueueOptions = {},
): EnqueueRequest | 'help' {
  let values: Values;
  try {
    ({ values } = parseArgs({ args: [...args], options: OPTIONS }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return 'help';
  switch (values.channel) {
    case undefined:
    case 'notifications':
      return notificationMessage(values, now);
    case 'teams':
      return teamsMessage(values, now, options);
    default:
      throw new UsageError(
        `--channel ${values.channel}: the channels are teams and notifications (the default).`,
      );
  }
}
