import { AbsentUserTokens } from './auth/absent-user-tokens';
import { CallerVerifier } from './auth/caller';
import { OpenIdMetadataSource } from './auth/openid-metadata';
import { OptOuts } from './auth/opt-outs';
import { createKeyVaultRefreshTokenStore, keyVaultCredential } from './auth/vault-client';
import { TokenService } from './auth/token-service';
import { loadConfig, type Config } from './config';
import { GraphNotificationClient } from './graph/client';
import { HealthService, httpProbe } from './health/health';
import { DeferredDelivery } from './deferred/deliver';
import { NotificationService } from './notifications/send';
import { deferredQueueFrom } from './queue/deferred-queue';
import { storageProbe } from './queue/probe';
import { loadTelemetrySettings, startTelemetry, type Telemetry } from './telemetry';

// The one place the app is wired, once per worker. Settings are validated here, as the entry files
// load: a bad setting stops the app at startup with every problem named, not at the first request.
export const config: Config = loadConfig(process.env);

// Before any client exists, so that their first calls are instrumented. Off (the setting unset),
// this loads nothing of the SDK.
export const telemetry: Telemetry = startTelemetry(loadTelemetrySettings(process.env), {
  identity: config.authorityHost,
  keyVault: config.keyVaultUrl,
  graph: config.graphBaseUrl,
  storage: queueOrigin(config.storageConnection),
});

const workerLog = {
  info: (message: string) => console.info(message),
  warn: (message: string) => console.warn(message),
};

// One read of the identity service's OpenID metadata per worker, for both of its consumers.
const openIdMetadata = new OpenIdMetadataSource(config.authorityHost, config.tenantId);

export const callers = new CallerVerifier(config, { metadata: openIdMetadata });

export const tokens = new TokenService(config, { log: workerLog, metadata: openIdMetadata });

export const refreshTokens = createKeyVaultRefreshTokenStore(config, keyVaultCredential(process.env));

export const graph = new GraphNotificationClient({ baseUrl: config.graphBaseUrl });

export const deferredQueue = deferredQueueFrom(config.storageConnection, config.notificationsQueue);

// One record of opt-outs per worker: the opt-out and everything in flight for the user consult it.
const optOuts = new OptOuts();

export const absentUserTokens = new AbsentUserTokens(refreshTokens, tokens, workerLog, {
  telemetry,
  optOuts,
});

export const notifications = new NotificationService({
  tokens,
  refreshTokens,
  graph,
  queue: deferredQueue,
  deferredTokens: absentUserTokens,
  targetHostName: config.targetHostName,
  telemetry,
  optOuts,
});

export const deferredDelivery = new DeferredDelivery({
  tokens: absentUserTokens,
  graph,
  queue: deferredQueue,
  targetHostName: config.targetHostName,
  telemetry,
});

export const health = new HealthService([
  httpProbe(
    'identity',
    `${config.authorityHost}/${config.tenantId}/v2.0/.well-known/openid-configuration`,
    true,
  ),
  httpProbe('keyVault', `${config.keyVaultUrl}/secrets?api-version=7.5`),
  httpProbe('graph', `${config.graphBaseUrl}/me`),
  storageProbe(config.storageConnection),
]);

/** The queue service's origin, to name storage dependencies; none for a connection string without one. */
function queueOrigin(connection: string): string | undefined {
  if (/^UseDevelopmentStorage=true$/i.test(connection)) return 'http://127.0.0.1:10001';
  const endpoint = /(?:^|;)\s*QueueEndpoint=([^;]+)/i.exec(connection)?.[1];
  if (endpoint) return endpoint;
  const account = /(?:^|;)\s*AccountName=([^;]+)/i.exec(connection)?.[1];
  const suffix = /(?:^|;)\s*EndpointSuffix=([^;]+)/i.exec(connection)?.[1] ?? 'core.windows.net';
  return account ? `https://${account}.queue.${suffix}` : undefined;
}
