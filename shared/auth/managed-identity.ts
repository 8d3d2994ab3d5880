import type { TokenCredentialOptions } from '@azure/identity';
import { AppError } from '../errors';
import { credentialOnFirstUse, type CredentialOnFirstUse } from './credential-on-first-use';

/**
 * The App Service managed identity (`clientId` names a user-assigned one), only where the
 * platform advertises it (`IDENTITY_ENDPOINT` and `IDENTITY_HEADER`): without them
 * `ManagedIdentityCredential` would probe the instance-metadata address 169.254.169.254, which
 * must never happen outside Azure. `@azure/identity` reads those variables from `process.env`
 * itself; `env` is checked so that the choice is made here, explicitly.
 *
 * Checked now; the `ManagedIdentityCredential` is created (and @azure/identity loaded) at the
 * first token request. No network access until then. Throws `invalid_config` saying what
 * `purpose` needs.
 */
export function appServiceManagedIdentity(
  env: Readonly<Record<string, string | undefined>>,
  clientId: string | undefined,
  purpose: string,
  options: TokenCredentialOptions = {},
): CredentialOnFirstUse {
  if (!env.IDENTITY_ENDPOINT?.trim() || !env.IDENTITY_HEADER?.trim()) {
    throw new AppError('invalid_config', {
      detail: `${purpose} needs a managed identity: enable one on the Function App (IDENTITY_ENDPOINT and IDENTITY_HEADER are then set).`,
    });
  }
  return credentialOnFirstUse('managedIdentity', ({ ManagedIdentityCredential }) =>
    clientId
      ? new ManagedIdentityCredential({ ...options, clientId })
      : new ManagedIdentityCredential(options),
  );
}
