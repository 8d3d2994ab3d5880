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
import { notificationsChannel } from './channels/notifications';
import { TenantPacer } from './channels/pacing';
import { teamsChannel } from './channels/teams';
import { TeamsActivityClient } from './channels/teams/client';
import { DEPENDENCY_BUDGET } from './http/dependency-budget';
import { queueServiceFrom, storageOrigin } from './queue/connection';
import { deferredQueueFrom } from './queue/deferred-queue';
import { storageProbe } from './queue/probe';
import { onFirstUse } from './on-first-use';
import { IdempotencyRecords } from './ledger/idempotency';
import { DeliveryLedger } from './ledger/ledger';
import { LedgerRetention } from './ledger/retention';
import { ledgerTableFrom } from './ledger/table';
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
  storage: storageOrigin(config.storage, 'queue'),
  ledger: storageOrigin(config.storage, 'table'),
});

const workerLog = {
  info: (message: string) => console.info(message),
  warn: (message: string) => console.warn(message),
};

// Every dependency call below is held to DEPENDENCY_BUDGET, so that a request answers within
// DEPENDENCY_BUDGET.requestMs even when one dependency accepts connections and never answers.

// One read of the identity service's OpenID metadata per worker, for both of its consumers.
const openIdMetadata = new OpenIdMetadataSource(
  config.authorityHost,
  config.tenantId,
  DEPENDENCY_BUDGET.identity.perTryMs,
);

export const callers = new CallerVerifier(config, { metadata: openIdMetadata });

export const tokens = new TokenService(config, {
  log: workerLog,
  metadata: openIdMetadata,
  requestTimeoutMs: DEPENDENCY_BUDGET.identity.perTryMs,
});

export const refreshTokens = createKeyVaultRefreshTokenStore(config, keyVaultCredential(process.env), {
  pollIntervalMs: DEPENDENCY_BUDGET.keyVaultPoll.intervalMs,
  pollTimeoutMs: DEPENDENCY_BUDGET.keyVaultPoll.timeoutMs,
});

export const graph = new GraphNotificationClient({
  baseUrl: config.graphBaseUrl,
  timeoutMs: DEPENDENCY_BUDGET.graph.perTryMs,
});

// Checked at startup (the identity-based form without a managed identity, or a connection string
// the SDK would refuse, stops the app here); the client itself is created at the first queue call.
const queueService = queueServiceFrom(config.storage, process.env);

export const deferredQueue = deferredQueueFrom(queueService, config.notificationsQueue);

// The delivery ledger: its table in the same storage account, created at the first ledger call.
const ledgerTable = ledgerTableFrom(config.storage, process.env, config.ledger.table);
export const ledger = new DeliveryLedger(ledgerTable, config.ledger);
const idempotency = new IdempotencyRecords(ledgerTable, config.ledger);
export const ledgerRetention = new LedgerRetention(ledger, config.ledger.retentionDays, telemetry);

// One record of opt-outs per worker: the opt-out and everything in flight for the user consult it.
const optOuts = new OptOuts();

export const absentUserTokens = new AbsentUserTokens(refreshTokens, tokens, workerLog, {
  telemetry,
  optOuts,
});

// The channels: each validates, sends and answers; everything around a send is shared.
const graphOrigin = new URL(config.graphBaseUrl).origin;
export const notificationsOnGraph = notificationsChannel({
  graph,
  scopes: config.graphScopes,
  targetHostName: config.targetHostName,
});
export const teams = teamsChannel({
  client: new TeamsActivityClient({ graphOrigin, timeoutMs: DEPENDENCY_BUDGET.graph.perTryMs }),
  scopes: config.teamsScopes,
  defaults: { teamsAppId: config.teamsAppId, graphOrigin },
  sendAsApp: config.teamsSendAsApp,
});
// One budget per tenant for this instance, shared by HTTP sends and queue messages.
const pacer = new TenantPacer(config.teamsMaxRpsPerTenant);

export const notifications = new NotificationService({
  tokens,
  refreshTokens,
  graph,
  notifications: notificationsOnGraph,
  queue: deferredQueue,
  deferredTokens: absentUserTokens,
  targetHostName: config.targetHostName,
  pacer,
  teamsRps: config.teamsMaxRpsPerTenant,
  telemetry,
  ledger,
  idempotency,
  optOuts,
});

export const deferredDelivery = new DeferredDelivery({
  tokens: absentUserTokens,
  channels: [notificationsOnGraph, teams],
  queue: deferredQueue,
  appTokens: tokens,
  sendAsApp: config.teamsSendAsApp,
  allowedTenantIds: config.allowedTenantIds,
  pacer,
  ledger,
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
  storageProbe(onFirstUse(() => queueService().getQueueClient(config.notificationsQueue))),
  { name: 'ledger', check: (signal) => ledgerTable.probe(signal) },
]);
