import { AppError } from '../../errors';
import { MAX_DELIVER_AT_MS } from '../../notifications/request';
import { describeSchemaErrors, schemaValidator } from '../../schemas';

/** What a client or an enqueuing system sends to notify someone in Teams: Graph's body plus ours. */
export interface ActivityRequest {
  recipient: { userId: string };
  activityType: string;
  templateParameters?: Array<{ name: string; value: string }>;
  previewText?: { content: string };
  topic?: { source: 'text' | 'entityUrl'; value: string; webUrl?: string };
  chainId?: number;
  iconId?: string;
  teamsAppId?: string;
  deliverAt?: string;
}

/** What is posted to Graph's sendActivityNotification: no recipient (it is in the URL), no deliverAt. */
export type TeamsActivityBody = Omit<ActivityRequest, 'recipient' | 'deliverAt'> & {
  topic: NonNullable<ActivityRequest['topic']>;
};

export interface ActivityDefaults {
  /** TEAMS_APP_ID: the default topic (the app's catalog entry) and every request's teamsAppId. */
  teamsAppId: string | undefined;
  /** GRAPH_BASE_URL's origin, e.g. `https://graph.microsoft.com`. */
  graphOrigin: string;
}

// Hosts Teams opens a text topic's link on (Graph documents teams.microsoft.com; the others are
// the newer and sovereign-cloud hosts users report working).
const TEAMS_HOST =
  /^(?:teams\.microsoft\.com|teams\.cloud\.microsoft|(?:[a-z0-9-]+\.)*teams\.microsoft\.us|teams\.microsoftonline\.cn)$/i;
// Graph refuses longer links (reported: 400 BadRequest / UnknownError).
const MAX_WEB_URL = 1024;

type ValidationCode = 'invalid_request' | 'invalid_message';

/**
 * Validates an activity as Graph would, before any token exchange: the published schema, then the
 * rules it cannot state (systemDefault's text, a topic's link, the default topic, deliverAt's
 * range). Pure; throws `invalid_request` (or `invalid_message`) naming each problem.
 */
export function parseActivityRequest(
  value: unknown,
  now: Date,
  defaults: ActivityDefaults,
  code: ValidationCode = 'invalid_request',
): ActivityRequest {
  const validate = schemaValidator<ActivityRequest>('activity');
  if (!validate(value)) throw new AppError(code, { detail: describeSchemaErrors(validate.errors) });
  const problems: string[] = [];
  if (
    value.activityType === 'systemDefault' &&
    !value.templateParameters?.some((p) => p.name === 'systemDefaultText')
  ) {
    problems.push('/templateParameters: systemDefault needs a systemDefaultText parameter (the text shown)');
  }
  const topic = value.topic;
  if (!topic && !defaults.teamsAppId) {
    problems.push('/topic is required (this service has no TEAMS_APP_ID to default it to)');
  } else if (topic?.source === 'text') {
    const link = parseUrl(topic.webUrl);
    if (!topic.webUrl) problems.push('/topic/webUrl is required when source is text');
    else if (topic.webUrl.length > MAX_WEB_URL)
      problems.push(`/topic/webUrl is over ${MAX_WEB_URL} characters`);
    else if (!link || link.protocol !== 'https:' || !TEAMS_HOST.test(link.hostname)) {
      problems.push('/topic/webUrl must be an https link on a Teams host (teams.microsoft.com)');
    }
  } else if (topic?.source === 'entityUrl') {
    const entity = parseUrl(topic.value);
    const graph = parseUrl(defaults.graphOrigin);
    const onGraph =
      entity?.protocol === 'https:' &&
      (entity.hostname.toLowerCase() === 'graph.microsoft.com' || entity.host === graph?.host);
    if (!onGraph) problems.push('/topic/value must be a Microsoft Graph URL when source is entityUrl');
  }
  if (value.deliverAt !== undefined && Date.parse(value.deliverAt) - now.getTime() > MAX_DELIVER_AT_MS) {
    problems.push('/deliverAt is more than 7 days ahead');
  }
  if (problems.length > 0) throw new AppError(code, { detail: problems.join('; ') });
  return value;
}

/** Graph's body for an activity: topic defaulted, teamsAppId set. Returns a new object. */
export function toTeamsActivity(request: ActivityRequest, defaults: ActivityDefaults): TeamsActivityBody {
  const { recipient: _recipient, deliverAt: _deliverAt, topic, ...rest } = request;
  return {
    ...rest,
    topic: topic ?? {
      source: 'entityUrl',
      value: `${defaults.graphOrigin}/v1.0/appCatalogs/teamsApps/${defaults.teamsAppId}`,
    },
    ...(defaults.teamsAppId && !rest.teamsAppId ? { teamsAppId: defaults.teamsAppId } : {}),
  };
}

function parseUrl(value: string | undefined): URL | undefined {
  if (!value) return undefined;
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}
