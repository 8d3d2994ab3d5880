import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { QueueClient } from '@azure/storage-queue';
import path from 'node:path';
import { portOpen, startAzurite, type AzuritePorts, type RunningAzurite } from './azurite';
import { startEntraStandIn, TOKEN_EXCHANGE_RESOURCE, type EntraStandIn } from './standins/entra';
import { startGraphStandIn, type GraphStandIn } from './standins/graph';
import { activityTypesFromManifest } from './standins/teams-body';
import { startIngestionStandIn, type IngestionStandIn } from './standins/ingestion';
import { API_APP, DEV_TENANT_ID, FUNCTION_IDENTITY } from './standins/identities';
import { startKeyVaultStandIn, type KeyVaultStandIn } from './standins/keyvault';
import {
  FUNCTION_USER_ASSIGNED_IDENTITY,
  startManagedIdentityStandIn,
  type ManagedIdentityStandIn,
} from './standins/managed-identity';
import { APP_ROOT } from './root';
import { ensureLocalTls, LOCAL_DIR, trustedCaFile, type LocalTls } from './tls';

export interface StackPorts {
  entra: number;
  keyVault: number;
  graph: number;
  azurite: AzuritePorts;
}

export interface StackOptions {
  /** Settings as given (environment over local.settings.json). What is set here is used as is. */
  settings: Record<string, string>;
  /** Ports for what the stack starts; `'free'` picks free ones (tests). */
  ports: StackPorts | 'free';
  /** Added latency per stand-in answer, in ms (the benchmark sets these). */
  latencyMs?: { entra?: number; keyVault?: number; graph?: number };
  /** Keep Azurite's data on disk here instead of in memory. */
  azuriteLocation?: string;
  /**
   * Start the Application Insights ingestion stand-in and point the app at it, unless the settings
   * name a connection string. Off by default: without a connection string telemetry stays off.
   */
  telemetry?: boolean;
}

export interface LocalStack {
  /**
   * The settings the function host runs with: the given ones plus the started services', and
   * `NODE_EXTRA_CA_CERTS` naming the CA file to trust (see `trustedCaFile`).
   */
  settings: Record<string, string>;
  tls: LocalTls;
  entra: EntraStandIn | undefined;
  keyVault: KeyVaultStandIn | undefined;
  graph: GraphStandIn | undefined;
  /** App Service's managed-identity endpoint, when the app runs without secrets (see `startLocalStack`). */
  managedIdentity: ManagedIdentityStandIn | undefined;
  azurite: RunningAzurite | undefined;
  ingestion: IngestionStandIn | undefined;
  /** What was started, for the banner. */
  started: string[];
  stop(): Promise<void>;
}

/** A free loopback port (for tests; there is a small window in which another process could take it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Azurite on free ports. A port found free can be taken by another process (parallel test files
 * start stacks of their own) before Azurite binds it: then it is tried again on other ports.
 */
export async function startAzuriteOnFreePorts(location: string | undefined): Promise<RunningAzurite> {
  for (let attempt = 1; ; attempt++) {
    const free = { blob: await freePort(), queue: await freePort(), table: await freePort() };
    try {
      return await startAzurite(free, { location });
    } catch (err) {
      if (attempt >= 5 || !/EADDRINUSE/.test(String(err))) throw err;
    }
  }
}

/**
 * Starts what the settings leave out: the Entra ID, Key Vault and Graph stand-ins and Azurite,
 * each only where its setting (`ENTRA_AUTHORITY_HOST`, `KEY_VAULT_URL`, `GRAPH_BASE_URL`,
 * `AzureWebJobsStorage`) is not given, and returns the settings that point the app at them.
 * The Key Vault and Graph stand-ins accept only tokens of the Entra stand-in, so starting either
 * starts that too. The returned settings name the CA file the host must trust.
 *
 * Without secrets, as in Azure: when the settings choose a credential Azure gives the app
 * (`ENTRA_CLIENT_ASSERTION=managed-identity`, or a certificate App Service loaded) and name no
 * `IDENTITY_ENDPOINT`, the stack also starts App Service's managed-identity endpoint, makes the
 * Entra stand-in's app registration trust its user-assigned identity through a federated
 * credential, and gives Key Vault that identity instead of a client secret.
 */
export async function startLocalStack(options: StackOptions): Promise<LocalStack> {
  // An empty value (as in a copied local.settings.sample.json) counts as not given.
  const given = Object.fromEntries(Object.entries(options.settings).filter(([, v]) => v !== ''));
  const settings: Record<string, string> = { ...given };
  const tls = await ensureLocalTls();
  const ports = options.ports;
  const port = (name: 'entra' | 'keyVault' | 'graph'): number => (ports === 'free' ? 0 : ports[name]);
  const started: string[] = [];
  const stoppers: (() => Promise<void>)[] = [];

  const stop = async (): Promise<void> => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
  };

  try {
    const needVault = !given.KEY_VAULT_URL;
    const needGraph = !given.GRAPH_BASE_URL;
    const needEntra = !given.ENTRA_AUTHORITY_HOST || needVault || needGraph;
    const credentialGiven = [
      'ENTRA_CLIENT_SECRET',
      'ENTRA_CLIENT_CERTIFICATE_PATH',
      'WEBSITE_LOAD_CERTIFICATES',
      'ENTRA_CLIENT_ASSERTION',
    ].some((name) => given[name]);
    const secretless = Boolean(given.ENTRA_CLIENT_ASSERTION || given.WEBSITE_LOAD_CERTIFICATES);

    let entra: EntraStandIn | undefined;
    if (needEntra) {
      entra = await startEntraStandIn({ tls, port: port('entra'), latencyMs: options.latencyMs?.entra ?? 0 });
      stoppers.push(() => entra!.close());
      started.push(`Entra ID stand-in   ${entra.url}`);
    }
    if (!given.ENTRA_AUTHORITY_HOST && entra) {
      settings.ENTRA_AUTHORITY_HOST = entra.url;
      settings.ENTRA_TENANT_ID ||= DEV_TENANT_ID;
      settings.ENTRA_CLIENT_ID ||= API_APP.clientId;
      if (!credentialGiven) settings.ENTRA_CLIENT_SECRET = API_APP.clientSecret;
      // So that a request without targetHostName works when trying the app locally.
      settings.TARGET_HOST_NAME ||= 'graph-notify.local';
    }

    let managedIdentity: ManagedIdentityStandIn | undefined;
    if (secretless && !given.IDENTITY_ENDPOINT && entra) {
      const authority = entra;
      managedIdentity = await startManagedIdentityStandIn({ entra: authority });
      stoppers.push(() => managedIdentity!.close());
      started.push(
        `Managed identity    ${managedIdentity.endpoint}  (App Service's endpoint: no secret in any setting)`,
      );
      settings.IDENTITY_ENDPOINT = managedIdentity.endpoint;
      settings.IDENTITY_HEADER = managedIdentity.header;
      if (given.ENTRA_CLIENT_ASSERTION && !given.ENTRA_AUTHORITY_HOST) {
        settings.ENTRA_MANAGED_IDENTITY_CLIENT_ID ||= FUNCTION_USER_ASSIGNED_IDENTITY.clientId;
        // `az ad app federated-credential create` on the API's registration, as the README says.
        authority.addFederatedCredential(API_APP.clientId, {
          issuer: authority.issuer(DEV_TENANT_ID),
          subject: FUNCTION_USER_ASSIGNED_IDENTITY.objectId,
          audiences: [TOKEN_EXCHANGE_RESOURCE],
        });
      }
    }

    let keyVault: KeyVaultStandIn | undefined;
    if (needVault && entra) {
      const authority = entra;
      keyVault = await startKeyVaultStandIn({
        tls,
        port: port('keyVault'),
        authorityUrl: authority.url,
        tenantId: DEV_TENANT_ID,
        verifyToken: (token, audiences) => authority.verifyIssued(token, audiences),
        latencyMs: options.latencyMs?.keyVault ?? 0,
      });
      stoppers.push(() => keyVault!.close());
      started.push(`Key Vault stand-in  ${keyVault.url}`);
      settings.KEY_VAULT_URL = keyVault.url;
      // The vault at 127.0.0.1 is not under its challenge's resource host (vault.azure.net).
      settings.KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION = 'true';
      if (managedIdentity) {
        // The vault with the app's user-assigned identity, as in Azure: no AZURE_CLIENT_SECRET.
        settings.AZURE_CLIENT_ID = FUNCTION_USER_ASSIGNED_IDENTITY.clientId;
      } else {
        // The function's identity for the vault, in the variables EnvironmentCredential reads (the
        // app builds a ClientSecretCredential from them; with them set it never tries managed identity).
        settings.AZURE_TENANT_ID = DEV_TENANT_ID;
        settings.AZURE_CLIENT_ID = FUNCTION_IDENTITY.clientId;
        settings.AZURE_CLIENT_SECRET = FUNCTION_IDENTITY.clientSecret;
        settings.AZURE_AUTHORITY_HOST = authority.url;
      }
    }

    let graph: GraphStandIn | undefined;
    if (needGraph && entra) {
      const authority = entra;
      graph = await startGraphStandIn({
        tls,
        port: port('graph'),
        verifyToken: (token, audiences) => authority.verifyIssued(token, audiences),
        latencyMs: options.latencyMs?.graph ?? 0,
        // The activity types the repository's Teams app declares, as Graph would know them.
        teamsActivityTypes: activityTypesFromManifest(
          JSON.parse(readFileSync(path.join(APP_ROOT, 'teams', 'manifest.json'), 'utf8')),
        ),
      });
      stoppers.push(() => graph!.close());
      started.push(
        `Graph stand-in      ${graph.baseUrl}  (received notifications and activities: ${graph.url}/)`,
      );
      settings.GRAPH_BASE_URL = graph.baseUrl;
    }

    // Locally the SDK reports on itself to nobody: statsbeat (to Microsoft's hosts) and the
    // customer SDK stats are off whatever the connection string, unless the settings say otherwise.
    settings.APPLICATION_INSIGHTS_NO_STATSBEAT ||= 'true';
    settings.APPLICATIONINSIGHTS_SDKSTATS_DISABLED ||= 'true';
    let ingestion: IngestionStandIn | undefined;
    if (options.telemetry && !given.APPLICATIONINSIGHTS_CONNECTION_STRING) {
      ingestion = await startIngestionStandIn({ tls, port: 0 });
      stoppers.push(() => ingestion!.close());
      started.push(`Ingestion stand-in  ${ingestion.url}  (Application Insights)`);
      settings.APPLICATIONINSIGHTS_CONNECTION_STRING = ingestion.connectionString;
    }

    let azurite: RunningAzurite | undefined;
    // `UseDevelopmentStorage=true` means Azurite on its default ports: start it there unless it runs.
    const devStorage = /^UseDevelopmentStorage=true$/i.test(given.AzureWebJobsStorage ?? '');
    if (!given.AzureWebJobsStorage || (devStorage && !(await portOpen(10001)))) {
      if (devStorage || ports !== 'free') {
        const fixed = devStorage
          ? { blob: 10000, queue: 10001, table: 10002 }
          : (ports as StackPorts).azurite;
        azurite = await startAzurite(fixed, { location: options.azuriteLocation });
      } else {
        azurite = await startAzuriteOnFreePorts(options.azuriteLocation);
      }
      stoppers.push(() => azurite!.stop());
      started.push(`Azurite (queues)    ${azurite.queueUrl}`);
      settings.AzureWebJobsStorage = azurite.connectionString;
      // In Azure the queues come with the deployment (the host does not create a trigger's queue).
      const queueName = given.NOTIFICATIONS_QUEUE || 'notifications-deferred';
      for (const name of [queueName, `${queueName}-poison`]) {
        await new QueueClient(azurite.connectionString, name).createIfNotExists();
      }
    }

    // Decided here, once, for every host started on this stack: given endpoints keep the trust the
    // environment gives them, and the stand-ins started (all served by the local CA) add theirs.
    const standIn = Boolean(entra ?? keyVault ?? graph ?? ingestion);
    const trust = trustedCaFile(given.NODE_EXTRA_CA_CERTS, standIn ? tls : undefined);
    if (trust) settings.NODE_EXTRA_CA_CERTS = trust;

    return { settings, tls, entra, keyVault, graph, managedIdentity, azurite, ingestion, started, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export const AZURITE_DATA = path.join(LOCAL_DIR, 'azurite');
