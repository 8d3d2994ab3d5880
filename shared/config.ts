import { AppError } from './errors';
import { GUID } from './ids';

/**
 * How the app authenticates to the identity service in its own grants (OBO, refresh token, client
 * credentials): exactly one of these is configured.
 */
export type ClientCredential =
  | { kind: 'secret'; secret: string }
  /** A PEM file holding the certificate and its private key. */
  | { kind: 'certificate'; path: string }
  /**
   * A certificate App Service loaded for the app (`WEBSITE_LOAD_CERTIFICATES`): on Linux a
   * password-less PKCS#12 file named by its SHA-1 thumbprint in `directory`.
   */
  | { kind: 'appServiceCertificate'; thumbprint: string; directory: string }
  /**
   * A managed identity's token for `api://AzureADTokenExchange` as the client assertion, trusted by
   * the app registration through a federated identity credential. `clientId` names a
   * user-assigned identity; undefined is the system-assigned one.
   */
  | { kind: 'managedIdentity'; clientId: string | undefined };

/**
 * How the app reaches its storage account's queues, from `AzureWebJobsStorage` as Azure Functions
 * reads it: a connection string, or the identity-based form (`AzureWebJobsStorage__queueServiceUri`
 * or `__accountName`) reached with the Function App's managed identity.
 */
export type StorageConnection =
  | { kind: 'connectionString'; connectionString: string }
  | {
      kind: 'identity';
      /** `https://{account}.queue.core.windows.net`, without a trailing slash. */
      queueServiceUri: string;
      /** `https://{account}.table.core.windows.net` (the delivery ledger), without a trailing slash. */
      tableServiceUri: string;
      /** A user-assigned identity's client id; undefined for the system-assigned one. */
      clientId: string | undefined;
    };

export interface LedgerSettings {
  readonly table: string;
  readonly retentionDays: number;
  /** NCRONTAB schedule of the retention sweep (the timer function). */
  readonly retentionSchedule: string;
  /** How long a queue invocation's claim on a notification holds before another may take it over. */
  readonly leaseSeconds: number;
}

export interface Config {
  readonly tenantId: string;
  readonly clientId: string;
  readonly credential: ClientCredential;
  /** Origin of the identity service, without a trailing slash. */
  readonly authorityHost: string;
  readonly apiAudiences: readonly string[];
  readonly requiredScope: string;
  readonly allowedTenantIds: readonly string[];
  /** Graph root without a trailing slash, e.g. `https://graph.microsoft.com/beta`. */
  readonly graphBaseUrl: string;
  readonly graphScopes: readonly string[];
  /** Teams activity feed channel: delegated scopes for its OBO exchange. */
  readonly teamsScopes: readonly string[];
  /** The Teams app's catalog id: the default `topic` and `teamsAppId` of every Teams request. */
  readonly teamsAppId: string | undefined;
  /** The app registration holds Teams' application permission: self-sends and `as: app` go as the app. */
  readonly teamsSendAsApp: boolean;
  /** Teams calls per second per tenant one instance allows itself. */
  readonly teamsMaxRpsPerTenant: number;
  readonly targetHostName: string | undefined;
  readonly keyVaultUrl: string;
  /** Only for a vault whose host is not under its challenge's resource (the local stand-in). */
  readonly keyVaultDisableChallengeResourceVerification: boolean;
  readonly storage: StorageConnection;
  readonly notificationsQueue: string;
  /** The delivery ledger: its table in the storage account, and how long an entry is kept. */
  readonly ledger: LedgerSettings;
  readonly appInsightsConnectionString: string | undefined;
}

// Storage account names: 3-24 lowercase letters and digits.
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const STORAGE = 'AzureWebJobsStorage';

// Azure Table names: 3-63 letters and digits, not starting with a digit.
const TABLE_NAME = /^[A-Za-z][A-Za-z0-9]{2,62}$/;

// Azure Storage queue names: 3-63 lowercase letters, digits and single hyphens.
const QUEUE_NAME = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * Reads and validates the settings table of the contract once, at startup. Pure: it reads only
 * `env`. Throws one `invalid_config` error that names every missing or malformed setting.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const required = (name: string): string => {
    const value = get(name);
    if (!value) problems.push(`${name} is required`);
    return value ?? '';
  };
  const guid = (name: string, value: string): void => {
    if (value && !GUID.test(value)) problems.push(`${name} must be a GUID, got "${value}"`);
  };
  const url = (name: string, value: string, httpsOnly: boolean): string => {
    try {
      const parsed = new URL(value);
      if (httpsOnly && parsed.protocol !== 'https:') problems.push(`${name} must be an https URL`);
      else if (!/^https?:$/.test(parsed.protocol)) problems.push(`${name} must be an http(s) URL`);
      return parsed.toString().replace(/\/+$/, '');
    } catch {
      problems.push(`${name} must be a URL, got "${value}"`);
      return value;
    }
  };
  const flag = (name: string): boolean => {
    const value = get(name);
    if (value === undefined) return false;
    if (/^(true|1)$/i.test(value)) return true;
    if (!/^(false|0)$/i.test(value)) problems.push(`${name} must be true or false, got "${value}"`);
    return false;
  };

  const tenantId = required('ENTRA_TENANT_ID');
  guid('ENTRA_TENANT_ID', tenantId);
  const clientId = required('ENTRA_CLIENT_ID');
  guid('ENTRA_CLIENT_ID', clientId);

  const credential = clientCredential(get, guid, problems);

  const authorityHost = url(
    'ENTRA_AUTHORITY_HOST',
    get('ENTRA_AUTHORITY_HOST') ?? 'https://login.microsoftonline.com',
    true,
  );
  const apiAudiences = list(get('API_AUDIENCES') ?? `api://${clientId},${clientId}`);
  const allowedTenantIds = list(get('ALLOWED_TENANT_IDS') ?? tenantId);
  if (get('ALLOWED_TENANT_IDS')) for (const t of allowedTenantIds) guid('ALLOWED_TENANT_IDS', t);
  const scopes = (name: string, fallback: string): string[] => {
    const value = (get(name) ?? fallback).split(/\s+/).filter((s) => s.length > 0);
    if (!value.includes('offline_access')) {
      problems.push(`${name} must include offline_access: deferred sends need the refresh token`);
    }
    return value;
  };
  const graphScopes = scopes(
    'GRAPH_SCOPES',
    'https://graph.microsoft.com/Notifications.ReadWrite.CreatedByApp offline_access',
  );
  const teamsScopes = scopes('TEAMS_SCOPES', 'https://graph.microsoft.com/TeamsActivity.Send offline_access');
  const teamsAppId = get('TEAMS_APP_ID');
  if (teamsAppId) guid('TEAMS_APP_ID', teamsAppId);
  const rpsText = get('TEAMS_MAX_RPS_PER_TENANT') ?? '5';
  const teamsMaxRpsPerTenant = Number(rpsText);
  // Whole sends per one-second window: the pacer counts sends, it does not spread fractions.
  if (!/^\d+$/.test(rpsText) || teamsMaxRpsPerTenant < 1) {
    problems.push(`TEAMS_MAX_RPS_PER_TENANT must be a whole number of at least 1, got "${rpsText}"`);
  }

  const keyVaultUrlRaw = required('KEY_VAULT_URL');
  const keyVaultUrl = keyVaultUrlRaw ? url('KEY_VAULT_URL', keyVaultUrlRaw, true) : '';
  const notificationsQueue = get('NOTIFICATIONS_QUEUE') ?? 'notifications-deferred';
  if (!QUEUE_NAME.test(notificationsQueue)) {
    problems.push(`NOTIFICATIONS_QUEUE "${notificationsQueue}" is not a valid Azure Storage queue name`);
  }

  const storage = storageConnection(get, url, guid, problems);
  const ledger = ledgerSettings(get, problems);

  const config: Config = {
    tenantId,
    clientId,
    credential,
    authorityHost,
    apiAudiences,
    requiredScope: get('API_REQUIRED_SCOPE') ?? 'Notifications.Send',
    allowedTenantIds,
    graphBaseUrl: url('GRAPH_BASE_URL', get('GRAPH_BASE_URL') ?? 'https://graph.microsoft.com/beta', true),
    graphScopes,
    teamsScopes,
    teamsAppId: teamsAppId?.toLowerCase(),
    teamsSendAsApp: flag('TEAMS_SEND_AS_APP'),
    teamsMaxRpsPerTenant,
    targetHostName: get('TARGET_HOST_NAME'),
    keyVaultUrl,
    keyVaultDisableChallengeResourceVerification: flag('KEY_VAULT_DISABLE_CHALLENGE_RESOURCE_VERIFICATION'),
    storage,
    notificationsQueue,
    ledger,
    appInsightsConnectionString: get('APPLICATIONINSIGHTS_CONNECTION_STRING'),
  };
  if (problems.length > 0) {
    throw new AppError('invalid_config', {
      detail: `Invalid settings:\n  - ${problems.join('\n  - ')}`,
    });
  }
  return Object.freeze(config);
}

// Where App Service on Linux puts the private certificates WEBSITE_LOAD_CERTIFICATES names, as
// `{thumbprint}.p12`. App Service sets WEBSITE_PRIVATE_CERTS_PATH only in Windows containers; here
// it also lets a test or the local stack point elsewhere.
const APP_SERVICE_PRIVATE_CERTS = '/var/ssl/private';
const SHA1_THUMBPRINT = /^[0-9a-f]{40}$/i;
const CREDENTIAL_SETTINGS =
  'ENTRA_CLIENT_SECRET, ENTRA_CLIENT_CERTIFICATE_PATH, WEBSITE_LOAD_CERTIFICATES (a certificate App Service loaded) or ENTRA_CLIENT_ASSERTION=managed-identity';

/**
 * The app's own credential: exactly one of a secret, a PEM certificate file, a certificate App
 * Service loaded, or a managed identity's token as the client assertion. Two are a conflict (which
 * one would be used is not for the app to guess); none is a gap. Both are named.
 */
function clientCredential(
  get: (name: string) => string | undefined,
  guid: (name: string, value: string) => void,
  problems: string[],
): ClientCredential {
  const secret = get('ENTRA_CLIENT_SECRET');
  const certificatePath = get('ENTRA_CLIENT_CERTIFICATE_PATH');
  const loaded = get('WEBSITE_LOAD_CERTIFICATES');
  const assertion = get('ENTRA_CLIENT_ASSERTION');
  const miClientId = get('ENTRA_MANAGED_IDENTITY_CLIENT_ID');

  const candidates: ClientCredential[] = [];
  const set: string[] = [];
  if (secret) {
    set.push('ENTRA_CLIENT_SECRET');
    candidates.push({ kind: 'secret', secret });
  }
  if (certificatePath) {
    set.push('ENTRA_CLIENT_CERTIFICATE_PATH');
    candidates.push({ kind: 'certificate', path: certificatePath });
  }
  if (loaded) {
    set.push('WEBSITE_LOAD_CERTIFICATES');
    // The setting itself is the thumbprint: when a certificate renewed in Key Vault is synced,
    // App Service replaces the old thumbprint in it with the new one, so nothing else needs editing.
    const thumbprints = loaded
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const only = thumbprints[0] ?? '';
    if (thumbprints.length !== 1 || only === '*') {
      problems.push(
        `WEBSITE_LOAD_CERTIFICATES must name exactly one thumbprint, the app's client certificate (got "${loaded}")`,
      );
    } else if (!SHA1_THUMBPRINT.test(only)) {
      problems.push(`WEBSITE_LOAD_CERTIFICATES "${only}" is not a certificate thumbprint (40 hex digits)`);
    }
    candidates.push({
      kind: 'appServiceCertificate',
      thumbprint: only.toUpperCase(),
      directory: get('WEBSITE_PRIVATE_CERTS_PATH') ?? APP_SERVICE_PRIVATE_CERTS,
    });
  }
  if (assertion) {
    set.push('ENTRA_CLIENT_ASSERTION');
    if (assertion !== 'managed-identity') {
      problems.push(`ENTRA_CLIENT_ASSERTION must be managed-identity, got "${assertion}"`);
    }
    if (miClientId) guid('ENTRA_MANAGED_IDENTITY_CLIENT_ID', miClientId);
    candidates.push({ kind: 'managedIdentity', clientId: miClientId?.toLowerCase() });
  } else if (miClientId) {
    problems.push(
      'ENTRA_MANAGED_IDENTITY_CLIENT_ID is set but ENTRA_CLIENT_ASSERTION is not managed-identity',
    );
  }

  if (candidates.length > 1) {
    problems.push(`set only one of the client credentials: ${set.join(' and ')} are set`);
  } else if (candidates.length === 0) {
    problems.push(`one client credential is required: ${CREDENTIAL_SETTINGS}`);
  }
  return candidates[0] ?? { kind: 'secret', secret: '' };
}

/**
 * `AzureWebJobsStorage`, as the Functions host resolves a connection name: the setting itself
 * holds a connection string (`UseDevelopmentStorage=true` for Azurite); or settings under the
 * prefix `AzureWebJobsStorage__` describe an identity-based connection. When both exist the exact
 * name wins, as in the host. Nothing is assumed when neither is given: outside the local stack a
 * silent fallback to development storage would only fail at the first scheduled send.
 */
function storageConnection(
  get: (name: string) => string | undefined,
  url: (name: string, value: string, httpsOnly: boolean) => string,
  guid: (name: string, value: string) => void,
  problems: string[],
): StorageConnection {
  const connectionString = get(STORAGE);
  if (connectionString) return { kind: 'connectionString', connectionString };
  const serviceUri = get(`${STORAGE}__queueServiceUri`);
  const tableUri = get(`${STORAGE}__tableServiceUri`);
  const accountName = get(`${STORAGE}__accountName`);
  const credential = get(`${STORAGE}__credential`);
  const clientId = get(`${STORAGE}__clientId`);
  if (!serviceUri && !accountName) {
    problems.push(
      `${STORAGE} is required: a storage connection string (UseDevelopmentStorage=true for Azurite), ` +
        `or ${STORAGE}__queueServiceUri or ${STORAGE}__accountName for the managed identity`,
    );
    return { kind: 'connectionString', connectionString: '' };
  }
  if (credential && credential.toLowerCase() !== 'managedidentity') {
    problems.push(`${STORAGE}__credential must be managedidentity, got "${credential}"`);
  }
  if (clientId) guid(`${STORAGE}__clientId`, clientId);
  let queueServiceUri: string;
  let tableServiceUri: string | undefined;
  if (serviceUri) {
    queueServiceUri = url(`${STORAGE}__queueServiceUri`, serviceUri, true);
  } else {
    const account = accountName ?? '';
    if (!ACCOUNT_NAME.test(account)) {
      problems.push(`${STORAGE}__accountName "${account}" is not a storage account name`);
    }
    // The public cloud's endpoints, as the host derives them from the account name.
    queueServiceUri = `https://${account}.queue.core.windows.net`;
    tableServiceUri = `https://${account}.table.core.windows.net`;
  }
  if (tableUri) tableServiceUri = url(`${STORAGE}__tableServiceUri`, tableUri, true);
  // A queue endpoint of the usual shape names its account's table endpoint too.
  tableServiceUri ??= /^https:\/\/[a-z0-9]{3,24}\.queue\./.test(queueServiceUri)
    ? queueServiceUri.replace('.queue.', '.table.')
    : undefined;
  if (!tableServiceUri) {
    problems.push(
      `${STORAGE}__tableServiceUri is required with this ${STORAGE}__queueServiceUri: the delivery ledger's table endpoint cannot be derived from it`,
    );
  }
  return { kind: 'identity', queueServiceUri, tableServiceUri: tableServiceUri ?? '', clientId };
}

/** The delivery ledger's settings (NOTIFICATIONS_LEDGER_*). */
function ledgerSettings(get: (name: string) => string | undefined, problems: string[]): LedgerSettings {
  const table = get('NOTIFICATIONS_LEDGER_TABLE') ?? 'notificationledger';
  if (!TABLE_NAME.test(table) || /^tables$/i.test(table)) {
    problems.push(`NOTIFICATIONS_LEDGER_TABLE "${table}" is not a valid Azure Table name`);
  }
  const whole = (name: string, fallback: number, min: number, max: number): number => {
    const text = get(name) ?? String(fallback);
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max}, got "${text}"`);
      return fallback;
    }
    return value;
  };
  return {
    table,
    retentionDays: whole('NOTIFICATIONS_LEDGER_RETENTION_DAYS', 30, 1, 3650),
    // Daily at 02:30 UTC: the sweep reads the whole table, so once a day is enough.
    retentionSchedule: get('NOTIFICATIONS_LEDGER_RETENTION_SCHEDULE') ?? '0 30 2 * * *',
    // Far longer than one invocation can take (its dependency budget), shorter than the
    // 10 minutes a fetched queue message stays hidden, so a crashed claim is free when its copy returns.
    leaseSeconds: whole('NOTIFICATIONS_LEDGER_LEASE_SECONDS', 60, 1, 540),
  };
}
