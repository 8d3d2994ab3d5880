import { AppError } from './errors';

// The telemetry port: what the services record, and nothing of how. With
// APPLICATIONINSIGHTS_CONNECTION_STRING unset the app runs on `noTelemetry` and never loads the
// Application Insights SDK (about half a second and 70 MB of a cold start); set, `startTelemetry`
// requires ./telemetry/azure-monitor, and only then.

/** The custom events, each one a notification's or a stored credential's fate. */
export type TelemetryEventName =
  | 'NotificationSent'
  | 'NotificationScheduled'
  | 'NotificationFailed'
  | 'NotificationDeadLettered'
  | 'RefreshTokenStored'
  | 'RefreshTokenStoreFailed'
  | 'RefreshTokenDeleted'
  /** A Teams send was held back: by this instance's per-tenant pacing, or by Graph's 429. */
  | 'TeamsThrottled'
  /** A repeated `Idempotency-Key` request answered with the first answer, nothing sent. */
  | 'IdempotentReplay'
  /** A queue message's copy removed unsent: the ledger says it was sent (or given up) already. */
  | 'NotificationDuplicateDropped'
  /** A delivery-ledger write failed after the fact (the notification itself is unaffected). */
  | 'LedgerWriteFailed'
  /** The retention sweep ran: `count` entries deleted. */
  | 'LedgerSwept';

/**
 * What an event may carry: ids and codes only, by construction. Never a token, the notification's
 * content, an e-mail address or a name — there is no property to put one in.
 */
export interface TelemetryProperties {
  tenantId?: string;
  /** The user's object id (oid). */
  userId?: string;
  appNotificationId?: string;
  /** `notifications` (Graph notifications) or `teams` (the Teams activity feed). */
  channel?: 'notifications' | 'teams';
  /** A Teams activity's id (generated per request or message). */
  activityId?: string;
  /** `user` (on a user's behalf) or `app` (with the app's own permission). */
  sender?: 'user' | 'app';
  /** Milliseconds a send was held back (TeamsThrottled). */
  delayMs?: number;
  /** How many: the entries a ledger sweep deleted. */
  count?: number;
  /** `sent`, `scheduled`, `retry`, `dead-lettered`, or an error code. */
  outcome?: string;
  /** The error code that decided the outcome (a poison `reason`, a failure's code). */
  reason?: string;
  /** The sender's `correlationId` of a queue message, or the invocation that scheduled it. */
  correlationId?: string;
  /** The queue message (the sender's original one for a message put back). */
  messageId?: string;
  /** `http` or `queue`. */
  trigger?: 'http' | 'queue';
  /** Why a refresh token was written or deleted: `registered`, `changed`, `rotated`, `opt-out`, `revoked`. */
  cause?: string;
  attempt?: number;
}

/** Metrics, aggregated per minute by the SDK; dimensions are low-cardinality codes only. */
export type TelemetryMetricName =
  /** Milliseconds from a send's start (HTTP request or queue message) to its outcome. */
  | 'NotificationSendDuration'
  /** One per redemption of a stored refresh token, by outcome. */
  | 'RefreshTokenRedemptions';

export interface MetricDimensions {
  outcome: string;
  trigger?: 'http' | 'queue';
  channel?: 'notifications' | 'teams';
}

/** Port: what the services record. Every method is fire-and-forget and never throws. */
export interface Telemetry {
  trackEvent(name: TelemetryEventName, properties: TelemetryProperties): void;
  trackMetric(name: TelemetryMetricName, value: number, dimensions: MetricDimensions): void;
  /** Sends what is buffered (tests; the host's shutdown). */
  flush(): Promise<void>;
}

/** Telemetry off: records nothing and costs nothing. */
export const noTelemetry: Telemetry = {
  trackEvent: () => undefined,
  trackMetric: () => undefined,
  flush: () => Promise.resolve(),
};

export interface TelemetrySettings {
  connectionString: string;
  /** The ingestion endpoint the connection string names (origin, no trailing slash). */
  ingestionEndpoint: string;
  /** Share of operations whose requests and dependencies are kept, 0–1 (events are never sampled). */
  samplingRatio: number;
}

const AZURE_INGESTION = 'https://dc.services.visualstudio.com';

/**
 * Reads the telemetry settings, or `undefined` when telemetry is off. Pure: it reads only `env`.
 * Throws one `invalid_config` naming every problem, at startup.
 *
 * - `APPLICATIONINSIGHTS_CONNECTION_STRING`: unset means off.
 * - `APPLICATIONINSIGHTS_SAMPLING_PERCENTAGE`: 0–100, default 100. Fixed-percentage sampling of
 *   operations instead of the SDK's default limit of 5 traces per second, which drops the
 *   dependencies of a burst right after a cold start.
 */
export function loadTelemetrySettings(
  env: Readonly<Record<string, string | undefined>>,
): TelemetrySettings | undefined {
  const connectionString = env.APPLICATIONINSIGHTS_CONNECTION_STRING?.trim();
  if (!connectionString) return undefined;
  const problems: string[] = [];
  const parts = new Map(
    connectionString
      .split(';')
      .map((part) => part.split('='))
      .filter((kv): kv is [string, ...string[]] => kv.length >= 2 && kv[0]!.trim() !== '')
      .map(([key, ...value]) => [key.trim().toLowerCase(), value.join('=').trim()]),
  );
  if (!parts.get('instrumentationkey')) {
    problems.push('APPLICATIONINSIGHTS_CONNECTION_STRING has no InstrumentationKey');
  }
  let ingestionEndpoint = AZURE_INGESTION;
  const endpoint = parts.get('ingestionendpoint');
  if (endpoint) {
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'https:') problems.push('the IngestionEndpoint must be an https URL');
      ingestionEndpoint = url.origin;
    } catch {
      problems.push('the IngestionEndpoint of APPLICATIONINSIGHTS_CONNECTION_STRING is not a URL');
    }
  }
  const rawPercentage = env.APPLICATIONINSIGHTS_SAMPLING_PERCENTAGE?.trim();
  let samplingRatio = 1;
  if (rawPercentage) {
    const percentage = Number(rawPercentage);
    if (!Number.isFinite(percentage) || percentage < 0 || percentage > 100) {
      problems.push(`APPLICATIONINSIGHTS_SAMPLING_PERCENTAGE must be 0–100, got "${rawPercentage}"`);
    } else {
      samplingRatio = percentage / 100;
    }
  }
  if (problems.length > 0) {
    throw new AppError('invalid_config', { detail: `Invalid settings:\n  - ${problems.join('\n  - ')}` });
  }
  return Object.freeze({ connectionString, ingestionEndpoint, samplingRatio });
}

/** Names the services the app calls, so a dependency says which one it was (hosts alone may not). */
export interface TelemetryTargets {
  identity: string;
  keyVault: string;
  graph: string;
  storage?: string;
  /** The delivery ledger's table service. */
  ledger?: string;
}

/**
 * Telemetry as the settings ask: `noTelemetry` when off, without loading anything; otherwise the
 * Azure Monitor SDK, started once per process. Side effects when on: starts the SDK (HTTP and
 * fetch instrumentation, export timers), registers the Functions hooks that join each invocation's
 * trace context, and from then on sends to the ingestion endpoint.
 */
export function startTelemetry(
  settings: TelemetrySettings | undefined,
  targets: TelemetryTargets,
): Telemetry {
  if (!settings) return noTelemetry;
  // Required here and only here: the SDK's cost is paid only when telemetry is on.
  const { startAzureMonitor } =
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('./telemetry/azure-monitor') as typeof import('./telemetry/azure-monitor');
  return startAzureMonitor(settings, targets);
}
