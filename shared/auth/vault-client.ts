// How the function reaches its Key Vault: the credential, chosen explicitly, and the SDK client.
// Both are created on first use, not at load: @azure/identity and @azure/keyvault-secrets are
// loaded by the first request that reads or writes a refresh token.
import type { TokenCredential } from '@azure/identity';
import type { SecretClient } from '@azure/keyvault-secrets';
import type { Config } from '../config';
import { AppError } from '../errors';
import { DEPENDENCY_BUDGET } from '../http/dependency-budget';
import { onFirstUse } from '../on-first-use';
import {
  boundedClientOptions,
  credentialOnFirstUse,
  type CredentialOnFirstUse,
} from './credential-on-first-use';
import { appServiceManagedIdentity } from './managed-identity';
import {
  KeyVaultRefreshTokenStore,
  type KeyVaultRefreshTokenStoreOptions,
  type SecretStore,
} from './refresh-token-store';

const PUBLIC_CLOUD_AUTHORITY = 'login.microsoftonline.com';

/**
 * The credential the function uses for Key Vault, chosen explicitly from `env` (`process.env` in
 * production; `@azure/identity` reads the managed-identity variables from `process.env` itself).
 *
 * - `AZURE_CLIENT_SECRET` set (with `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, optional
 *   `AZURE_AUTHORITY_HOST`): a `ClientSecretCredential`. The same variables `EnvironmentCredential`
 *   reads, but built here because a non-default authority host also needs
 *   `disableInstanceDiscovery`, which no variable sets (otherwise msal asks
 *   login.microsoftonline.com and fails offline).
 * - Otherwise the App Service managed identity (`AZURE_CLIENT_ID` names a user-assigned one): the
 *   Azure case. Only when the platform advertises it (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`):
 *   without them `ManagedIdentityCredential` would probe the instance-metadata address
 *   169.254.169.254, which must never happen outside Azure. No credential chain is used for the
 *   same reason.
 *
 * Its token requests get Key Vault's per-try timeout and tries (the identity service is on the
 * path of every Key Vault call); @azure/identity's own default is 3 retries without a timeout.
 *
 * The settings are checked now; the credential is created, and @azure/identity loaded, at the
 * first token request. No network access until then. Throws `invalid_config` naming what is missing.
 */
export function keyVaultCredential(env: Readonly<Record<string, string | undefined>>): CredentialOnFirstUse {
  const get = (name: string): string | undefined => env[name]?.trim() || undefined;
  const secret = get('AZURE_CLIENT_SECRET');
  const clientId = get('AZURE_CLIENT_ID');
  if (secret) {
    const tenantId = get('AZURE_TENANT_ID');
    const missing = [!tenantId && 'AZURE_TENANT_ID', !clientId && 'AZURE_CLIENT_ID'].filter(Boolean);
    if (!tenantId || !clientId) {
      throw new AppError('invalid_config', {
        detail: `AZURE_CLIENT_SECRET is set, so the Key Vault credential also needs ${missing.join(' and ')}.`,
      });
    }
    const authorityHost = get('AZURE_AUTHORITY_HOST');
    let custom = false;
    if (authorityHost) {
      let url: URL;
      try {
        url = new URL(authorityHost);
      } catch {
        throw new AppError('invalid_config', { detail: 'AZURE_AUTHORITY_HOST must be a URL.' });
      }
      // @azure/identity refuses a plain-http authority anyway; saying so at startup is clearer.
      if (url.protocol !== 'https:') {
        throw new AppError('invalid_config', { detail: 'AZURE_AUTHORITY_HOST must be an https URL.' });
      }
      custom = url.hostname.toLowerCase() !== PUBLIC_CLOUD_AUTHORITY;
    }
    return credentialOnFirstUse(
      'clientSecret',
      ({ ClientSecretCredential }) =>
        new ClientSecretCredential(tenantId, clientId, secret, {
          ...credentialOptions(),
          ...(authorityHost ? { authorityHost } : {}),
          // Otherwise msal asks login.microsoftonline.com about this host (instance discovery) and,
          // offline or in a private cloud, fails with endpoints_resolution_error.
          ...(custom ? { disableInstanceDiscovery: true } : {}),
        }),
    );
  }
  try {
    return appServiceManagedIdentity(env, clientId, 'Key Vault', credentialOptions());
  } catch (err) {
    throw new AppError('invalid_config', {
      detail:
        'No Key Vault credential: enable a managed identity on the Function App (IDENTITY_ENDPOINT and IDENTITY_HEADER are then set) or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.',
      cause: err,
    });
  }
}

/** Key Vault's per-try timeout and tries for the credential; Key Vault's deadline covers it. */
function credentialOptions() {
  return boundedClientOptions(DEPENDENCY_BUDGET.keyVault, { deadline: false });
}

/**
 * The store for the app's vault. The `SecretClient` is created, and @azure/keyvault-secrets
 * loaded, at the store's first call; no network access until then. Each call is held to
 * `DEPENDENCY_BUDGET.keyVault`: a per-try timeout (the SDK has none), 2 tries (the SDK default is
 * 4) and a deadline for the whole call, which also cuts a `Retry-After` the SDK would wait out.
 * Beyond that an HTTP caller gets 503 + Retry-After and the queue retries later.
 */
export function createKeyVaultRefreshTokenStore(
  config: Pick<Config, 'keyVaultUrl' | 'keyVaultDisableChallengeResourceVerification'>,
  credential: TokenCredential = keyVaultCredential(process.env),
  options: KeyVaultRefreshTokenStoreOptions = {},
): KeyVaultRefreshTokenStore {
  const client = onFirstUse(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded here, on first use, on purpose
    const { SecretClient } = require('@azure/keyvault-secrets') as typeof import('@azure/keyvault-secrets');
    return new SecretClient(config.keyVaultUrl, credential, {
      disableChallengeResourceVerification: config.keyVaultDisableChallengeResourceVerification,
      ...boundedClientOptions(DEPENDENCY_BUDGET.keyVault),
    });
  });
  return new KeyVaultRefreshTokenStore(secretStoreOf(client), options);
}

/** The store's port onto a `SecretClient` that `client()` creates at the first call. */
function secretStoreOf(client: () => SecretClient): SecretStore {
  return {
    setSecret: (...args) => client().setSecret(...args),
    getSecret: (...args) => client().getSecret(...args),
    beginDeleteSecret: (...args) => client().beginDeleteSecret(...args),
    getDeletedSecret: (...args) => client().getDeletedSecret(...args),
    purgeDeletedSecret: (...args) => client().purgeDeletedSecret(...args),
    beginRecoverDeletedSecret: (...args) => client().beginRecoverDeletedSecret(...args),
  };
}
