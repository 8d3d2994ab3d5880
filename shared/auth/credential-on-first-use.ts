import type { GetTokenOptions, TokenCredential } from '@azure/identity';
import { onFirstUse } from '../on-first-use';

/** A credential chosen (and its settings checked) at startup, and created at its first token request. */
export interface CredentialOnFirstUse extends TokenCredential {
  /** Which credential the settings chose. */
  readonly kind: 'clientSecret' | 'managedIdentity';
  /** The @azure/identity credential itself: created, and the package loaded, on the first call. */
  instance(): TokenCredential;
}

/**
 * Defers loading @azure/identity (about a fifth of a second of a cold start) and constructing the
 * credential to the first `getToken`: the first request that needs the credential pays for it,
 * not every start of the app. `create` receives the package.
 */
export function credentialOnFirstUse(
  kind: CredentialOnFirstUse['kind'],
  create: (identity: typeof import('@azure/identity')) => TokenCredential,
): CredentialOnFirstUse {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded here, on first use, on purpose
  const instance = onFirstUse(() => create(require('@azure/identity') as typeof import('@azure/identity')));
  return {
    kind,
    instance,
    getToken: (scopes: string | string[], options?: GetTokenOptions) => instance().getToken(scopes, options),
  };
}

/**
 * The SDK client options that bound a call (../http/azure-pipeline), loaded with the clients: it
 * brings @azure/core-rest-pipeline, which nothing else needs at startup.
 */
export function boundedClientOptions(
  ...args: Parameters<typeof import('../http/azure-pipeline').boundedClientOptions>
): ReturnType<typeof import('../http/azure-pipeline').boundedClientOptions> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, on purpose
  const pipeline = require('../http/azure-pipeline') as typeof import('../http/azure-pipeline');
  return pipeline.boundedClientOptions(...args);
}
