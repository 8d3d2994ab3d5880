import { badRequest, UNREADABLE_JSON } from './graph-http';
import { STRING, odataError, readValue, type Shape } from './odata';

// The body of `userTeamwork: sendActivityNotification`, read as Graph reads it: the action's
// parameters (OData, unknown ones refused), then the activity feed's own rules. Sources:
// learn.microsoft.com/graph/api/userteamwork-sendactivitynotification, resources/teamworkactivitytopic,
// and /graph/teams-send-activityfeednotifications. Graph's wording for most of these refusals is not
// published; the messages below say plainly what is wrong, and the code is Graph's `BadRequest`.

/** An activity type the installed Teams app's manifest declares (`activities.activityTypes[]`). */
export interface ActivityTypeDeclaration {
  type: string;
  /** With `{placeholders}`; `{actor}` is the caller's name (the user's, or the Teams app's). */
  templateText: string;
}

/** Reserved: needs no manifest entry, its text is the `systemDefaultText` template parameter. */
export const SYSTEM_DEFAULT = 'systemDefault';

/** Stand-in default: what the project's Teams app manifest declares besides `systemDefault`. */
export const DEFAULT_ACTIVITY_TYPES: readonly ActivityTypeDeclaration[] = [
  { type: 'approvalRequired', templateText: '{actor} needs your approval: {approvalTitle}' },
];

/** Reported limit (no documented one): longer `webUrl`s fail with 400. */
export const MAX_WEB_URL_LENGTH = 1024;

/** Teams shows the first 150 characters of `previewText` (the rest is kept, not shown). */
export const PREVIEW_SHOWN_CHARS = 150;

/** Hosts a text topic's `webUrl` may point at: Teams' own web client, in each cloud. */
const TEAMS_HOSTS = [
  /^teams\.microsoft\.com$/i,
  /^teams\.cloud\.microsoft$/i,
  /^([a-z0-9-]+\.)*teams\.microsoft\.us$/i,
  /^teams\.microsoftonline\.cn$/i,
];

/** Graph's hosts, in each cloud: an `entityUrl` topic names a Graph resource. */
const GRAPH_HOSTS = [
  'graph.microsoft.com',
  'graph.microsoft.us',
  'dod-graph.microsoft.us',
  'microsoftgraph.chinacloudapi.cn',
];

export interface TeamworkActivityTopic {
  source: 'entityUrl' | 'text';
  value: string;
  webUrl?: string;
}

export interface ActivityNotification {
  topic: TeamworkActivityTopic;
  activityType: string;
  previewText?: { content: string; contentType?: 'text' | 'html' };
  templateParameters: Array<{ name: string; value: string }>;
  chainId?: number;
  iconId?: string;
  teamsAppId?: string;
}

const TOPIC: Shape = {
  kind: 'complex',
  type: 'microsoft.graph.teamworkActivityTopic',
  props: {
    source: {
      kind: 'enum',
      type: 'microsoft.graph.teamworkActivityTopicSource',
      members: ['entityUrl', 'text'],
    },
    value: STRING,
    webUrl: STRING,
  },
};

const ITEM_BODY: Shape = {
  kind: 'complex',
  type: 'microsoft.graph.itemBody',
  props: {
    content: STRING,
    contentType: { kind: 'enum', type: 'microsoft.graph.bodyType', members: ['text', 'html'] },
  },
};

const KEY_VALUE_PAIR: Shape = {
  kind: 'complex',
  type: 'microsoft.graph.keyValuePair',
  props: { name: STRING, value: STRING },
};

/** The action's parameters. `recipient` is not one: on this endpoint the recipient is in the URL. */
const PARAMETERS: Readonly<Record<string, Shape>> = {
  topic: TOPIC,
  activityType: STRING,
  chainId: { kind: 'int64' },
  previewText: ITEM_BODY,
  templateParameters: { kind: 'collection', of: KEY_VALUE_PAIR },
  teamsAppId: STRING,
  iconId: STRING,
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

/** Reads the action parameters as OData does: an unknown parameter is refused by name. */
function readParameters(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (key.startsWith('@odata.')) continue;
    const shape = Object.prototype.hasOwnProperty.call(PARAMETERS, key) ? PARAMETERS[key] : undefined;
    if (!shape) {
      throw odataError(
        `The parameter '${key}' in the request payload is not a valid parameter for the operation 'sendActivityNotification'.`,
      );
    }
    out[key] = readValue(value, shape, key);
  }
  return out;
}

function isTeamsUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return url.protocol === 'https:' && TEAMS_HOSTS.some((host) => host.test(url.hostname));
}

/**
 * An `entityUrl` topic on the user endpoint names a teamsCatalogApp or a teamsAppInstallation:
 * `{graph}/{v1.0|beta}/appCatalogs/teamsApps/{id}` or `…/users/{id}/teamwork/installedApps/{id}`.
 * `graphOrigins` adds origins accepted besides Graph's own (the stand-in's, since a local app
 * builds the URL from its Graph base URL).
 */
function checkEntityUrl(value: string, graphOrigins: readonly string[]): void {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  const graphHost =
    url !== undefined &&
    url.protocol === 'https:' &&
    (GRAPH_HOSTS.includes(url.hostname.toLowerCase()) || graphOrigins.includes(url.origin));
  if (!url || !graphHost) {
    throw badRequest(
      `Topic value '${value}' is not a Microsoft Graph URL; with source 'entityUrl' it must be one.`,
    );
  }
  const path = url.pathname.replace(/\/+$/, '');
  const supported =
    /^\/(v1\.0|beta)\/appCatalogs\/teamsApps\/[^/]+$/i.test(path) ||
    /^\/(v1\.0|beta)\/users\/[^/]+\/teamwork\/installedApps\/[^/]+$/i.test(path);
  if (!supported) {
    throw badRequest(
      `Topic entity '${url.pathname}' is not supported for user notifications. Supported resources: ` +
        'teamsCatalogApp (/appCatalogs/teamsApps/{id}) and teamsAppInstallation (/users/{id}/teamwork/installedApps/{id}).',
    );
  }
}

export interface ActivityRules {
  /** Types the installed Teams app declares (besides the reserved `systemDefault`). */
  activityTypes: readonly ActivityTypeDeclaration[];
  /** Origins accepted as Graph's in an `entityUrl` topic, besides Graph's own hosts. */
  graphOrigins: readonly string[];
}

/** The activity feed's rules after the OData read. Throws Graph's 400 for the first one broken. */
export function validateActivityNotification(body: unknown, rules: ActivityRules): ActivityNotification {
  if (!isRecord(body)) throw badRequest(UNREADABLE_JSON);
  const p = readParameters(body);

  if (!isRecord(p.topic)) throw badRequest("The parameter 'topic' is required.");
  const topicIn = p.topic;
  if (typeof topicIn.source !== 'string')
    throw badRequest("Topic 'source' is required: 'entityUrl' or 'text'.");
  if (!nonEmpty(topicIn.value)) throw badRequest("Topic 'value' is required.");
  const topic: TeamworkActivityTopic = {
    source: topicIn.source as TeamworkActivityTopic['source'],
    value: topicIn.value,
  };
  const webUrl = typeof topicIn.webUrl === 'string' ? topicIn.webUrl : undefined;
  if (topic.source === 'text') {
    if (!nonEmpty(webUrl)) throw badRequest("Topic 'webUrl' is required when the topic source is 'text'.");
  } else {
    checkEntityUrl(topic.value, rules.graphOrigins);
  }
  if (webUrl !== undefined) {
    if (webUrl.length > MAX_WEB_URL_LENGTH) {
      throw badRequest(
        `Topic 'webUrl' is ${webUrl.length} characters long; at most ${MAX_WEB_URL_LENGTH} are allowed.`,
      );
    }
    if (!isTeamsUrl(webUrl)) {
      throw badRequest(
        `Topic 'webUrl' must be an https link into Microsoft Teams (teams.microsoft.com); '${webUrl}' is not.`,
      );
    }
    topic.webUrl = webUrl;
  }

  if (!nonEmpty(p.activityType)) throw badRequest("The parameter 'activityType' is required.");
  const activityType = p.activityType;

  const templateParameters: ActivityNotification['templateParameters'] = [];
  for (const item of (p.templateParameters as unknown[] | null | undefined) ?? []) {
    if (!isRecord(item) || !nonEmpty(item.name))
      throw badRequest("Each of 'templateParameters' needs a 'name'.");
    if (typeof item.value !== 'string') {
      throw badRequest(`Template parameter '${item.name}' needs a string 'value'.`);
    }
    templateParameters.push({ name: item.name, value: item.value });
  }

  if (activityType === SYSTEM_DEFAULT) {
    const text = templateParameters.find((t) => t.name === 'systemDefaultText');
    if (!text || text.value.trim() === '') {
      throw badRequest(
        "Activity type 'systemDefault' requires the template parameter 'systemDefaultText' with the text to show.",
      );
    }
  } else if (!rules.activityTypes.some((d) => d.type === activityType)) {
    throw badRequest(
      `Activity type '${activityType}' is not declared in the Teams app manifest (activities.activityTypes), ` +
        "and is not the reserved 'systemDefault'.",
    );
  }

  const notification: ActivityNotification = { topic, activityType, templateParameters };
  if (p.previewText !== undefined && p.previewText !== null) {
    const preview = p.previewText as Record<string, unknown>;
    if (typeof preview.content !== 'string') throw badRequest("'previewText' needs a string 'content'.");
    notification.previewText = { content: preview.content };
    if (typeof preview.contentType === 'string') {
      notification.previewText.contentType = preview.contentType as 'text' | 'html';
    }
  }
  if (typeof p.chainId === 'number') notification.chainId = p.chainId;
  if (typeof p.iconId === 'string') notification.iconId = p.iconId;
  if (typeof p.teamsAppId === 'string') notification.teamsAppId = p.teamsAppId;
  return notification;
}

/**
 * The line Teams shows after the actor: `systemDefaultText` for `systemDefault`, else the declared
 * template with its parameters filled in (`{actor}` is the caller's name). A placeholder without a
 * parameter is left as written: Graph does not document refusing it.
 */
export function renderActivityText(
  notification: ActivityNotification,
  activityTypes: readonly ActivityTypeDeclaration[],
  actorName: string,
): string {
  const params = new Map(notification.templateParameters.map((t) => [t.name, t.value]));
  if (notification.activityType === SYSTEM_DEFAULT) return params.get('systemDefaultText') ?? '';
  const template = activityTypes.find((d) => d.type === notification.activityType)?.templateText ?? '';
  return template.replace(/\{([^{}]+)\}/g, (whole, name: string) =>
    name === 'actor' ? actorName : (params.get(name) ?? whole),
  );
}

/** The activity types a Teams app manifest (parsed manifest.json) declares. */
export function activityTypesFromManifest(manifest: unknown): ActivityTypeDeclaration[] {
  const types =
    isRecord(manifest) && isRecord(manifest.activities) ? manifest.activities.activityTypes : undefined;
  if (!Array.isArray(types)) return [];
  return types.flatMap((t) =>
    isRecord(t) && typeof t.type === 'string' && typeof t.templateText === 'string'
      ? [{ type: t.type, templateText: t.templateText }]
      : [],
  );
}
