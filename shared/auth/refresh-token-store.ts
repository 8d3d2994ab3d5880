import {
  type SecretClient,
  type DeletedSecret,
  type KeyVaultSecret,
  type SetSecretOptions,
} from '@azure/keyvault-secrets';
import { AppError } from '../errors';
import { GUID } from '../ids';
import { retryAfterSeconds } from '../http/retry-after';
import type { Logger, RefreshTokenSink, UserRef } from '../notifications/send';

/** The part of `SecretClient` the store uses: the port, so the client is injected, not reached for. */
export type SecretStore = Pick<
  SecretClient,
  | 'setSecret'
  | 'getSecret'
  | 'beginDeleteSecret'
  | 'getDeletedSecret'
  | 'purgeDeletedSecret'
  | 'beginRecoverDeletedSecret'
>;

/** A refresh token as `load` finds it. */
export interface StoredRefreshToken {
  refreshToken: string;
  /** When this app stored it (the token's own age is Entra's business, not ours). */
  storedAt: Date;
  /** The lifetime it was stored with; Key Vault still returns a secret past it. */
  expiresOn?: Date;
  /** Key Vault's version of the secret: what `replace` and `deleteIfCurrent` check against. */
  version: string;
}

export interface KeyVaultRefreshTokenStoreOptions {
  /** Expiry written on each secret. Entra's refresh tokens live 90 days (inactivity), the default. */
  lifetimeDays?: number;
  /** Between polls of Key Vault's asynchronous delete and recover (the SDK's default is 2 s). */
  pollIntervalMs?: number;
  /** Upper bound on waiting for a delete, recovery or a name that is still being purged. */
  pollTimeoutMs?: number;
  now?: () => Date;
  log?: Logger;
}

export const REFRESH_TOKEN_CONTENT_TYPE = 'application/vnd.graph-notify.refresh-token';

const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_RETRY_AFTER_SEC = 5;

/**
 * The secret that holds a user's refresh token: `rt-{tid}-{oid}`, lowercase. Built only from a
 * validated tenant and object id, so nothing a caller controls reaches the vault's URL path (Key
 * Vault names allow `[0-9a-zA-Z-]`, at most 127 characters: this is 76). Pure; throws
 * `invalid_request` for anything but two GUIDs.
 */
export function refreshTokenSecretName(user: UserRef): string {
  if (!GUID.test(user.tenantId) || !GUID.test(user.userId)) {
    throw new AppError('invalid_request', {
      detail: 'The user reference needs a tenant id and user id (GUIDs).',
    });
  }
  return `rt-${user.tenantId.toLowerCase()}-${user.userId.toLowerCase()}`;
}

/**
 * Users' refresh tokens in Key Vault, one secret per user. The function's identity needs the
 * secret permissions get, set, delete, purge and recover (access policy), or an RBAC role granting
 * them. Every failure leaves as an `AppError`: `upstream_unavailable` (with `retryAfterSeconds`)
 * when Key Vault or the identity service is unreachable, throttles or fails; `internal_error`
 * with an operator-facing detail (which permission is missing) when the vault refuses the
 * identity. Neither a token nor a secret value is ever part of an error.
 */
export class KeyVaultRefreshTokenStore implements RefreshTokenSink {
  private readonly lifetimeMs: number;
  private readonly pollIntervalMs: number;
  private readonly pollTimeoutMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly client: SecretStore,
    private readonly options: KeyVaultRefreshTokenStoreOptions = {},
  ) {
    this.lifetimeMs = (options.lifetimeDays ?? 90) * DAY_MS;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.pollTimeoutMs = options.pollTimeoutMs ?? 30_000;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Stores (as a new version) the user's refresh token, tagged with the user and the time, expiring
   * after the configured lifetime. A soft-deleted copy left by an opt-out is purged first, or, where
   * the vault refuses the purge (purge protection), recovered and overwritten.
   * Requires secrets/set; after an opt-out also secrets/purge, or secrets/recover and secrets/get.
   */
  async save(user: UserRef, refreshToken: string): Promise<void> {
    const name = refreshTokenSecretName(user);
    const options = this.secretOptions(user);
    try {
      await this.set(name, refreshToken, options);
      return;
    } catch (err) {
      if (innerCodeOf(err) !== 'ObjectIsDeletedButRecoverable') throw err;
    }
    await this.clearDeletedCopy(name);
    await this.set(name, refreshToken, options);
  }

  /**
   * Writes a rotated refresh token over the stored one, only if the stored one is still the version
   * `expected` that was redeemed: not after an opt-out (the secret is gone, or deleted and waiting
   * for its purge — never purged or recovered here), and not over a token the user stored again
   * meanwhile. Key Vault has no conditional write, so this reads the latest version first; what
   * remains is the moment between that read and the write. Resolves to whether it wrote.
   * Requires secrets/get and secrets/set.
   */
  async replace(user: UserRef, refreshToken: string, expected: string): Promise<boolean> {
    const current = await this.currentVersion(user);
    if (current !== expected) return false;
    try {
      await this.set(refreshTokenSecretName(user), refreshToken, this.secretOptions(user));
      return true;
    } catch (err) {
      // Deleted between the read and the write: an opt-out, which must stay final.
      if (innerCodeOf(err) === 'ObjectIsDeletedButRecoverable') return false;
      throw err;
    }
  }

  /**
   * Deletes (and purges) the user's refresh token only while `version` is the stored one: a token
   * found revoked must not take with it one the user stored again a moment earlier. Resolves to
   * whether it deleted. Requires secrets/get, secrets/delete and secrets/purge.
   */
  async deleteIfCurrent(user: UserRef, version: string): Promise<boolean> {
    if ((await this.currentVersion(user)) !== version) return false;
    await this.delete(user);
    return true;
  }

  /**
   * The user's refresh token, or `undefined` when none is stored (404 only: any other failure
   * throws, it is never taken for "not registered"). Requires secrets/get.
   */
  async load(user: UserRef): Promise<StoredRefreshToken | undefined> {
    const name = refreshTokenSecretName(user);
    let secret: KeyVaultSecret;
    try {
      secret = await this.kv('read', 'secrets/get', () => this.client.getSecret(name));
    } catch (err) {
      if (isSecretNotFound(err)) return undefined;
      throw err;
    }
    if (typeof secret.value !== 'string' || secret.value === '') {
      throw new AppError('internal_error', { detail: `Key Vault secret ${name} has no value.` });
    }
    const tagged = Date.parse(secret.properties.tags?.storedAt ?? '');
    const storedAt = Number.isNaN(tagged)
      ? (secret.properties.updatedOn ?? secret.properties.createdOn ?? new Date(0))
      : new Date(tagged);
    return {
      refreshToken: secret.value,
      storedAt,
      version: secret.properties.version ?? '',
      ...(secret.properties.expiresOn ? { expiresOn: secret.properties.expiresOn } : {}),
    };
  }

  /**
   * Deletes and then purges the user's refresh token: a user who opted out must not leave a live
   * credential recoverable for the 90-day retention. Succeeds when nothing was stored, and finishes
   * the purge of an earlier, interrupted opt-out. On a vault that forbids purging (recovery level
   * without "Purgeable", i.e. purge protection) the deleted copy stays until Key Vault's scheduled
   * purge, and a warning says so. Requires secrets/delete, secrets/get and secrets/purge.
   */
  async delete(user: UserRef): Promise<void> {
    const name = refreshTokenSecretName(user);
    let deleted: DeletedSecret;
    try {
      deleted = await this.kv('delete', 'secrets/delete', async () => {
        const signal = AbortSignal.timeout(this.pollTimeoutMs);
        const poller = await this.client.beginDeleteSecret(name, {
          intervalInMs: this.pollIntervalMs,
          abortSignal: signal,
        });
        // Key Vault deletes asynchronously; a purge before it finishes is refused with 409.
        return poller.pollUntilDone({ abortSignal: signal });
      });
    } catch (err) {
      // Any 404 here means "nothing to delete", whatever code Key Vault put in the body.
      if (statusOf(err) !== 404) throw err;
      // Nothing live: never stored, or an earlier opt-out deleted it but did not get to purge.
      try {
        deleted = await this.kv('delete', 'secrets/get', () => this.client.getDeletedSecret(name));
      } catch (inner) {
        if (statusOf(inner) === 404) return;
        throw inner;
      }
    }
    // No recovery id: a vault without soft delete, where deleting was final.
    if (!deleted.recoveryId) return;
    const level = deleted.properties.recoveryLevel ?? '';
    if (!level.includes('Purgeable')) {
      this.options.log?.warn(
        'Key Vault does not allow purging; the deleted refresh token stays recoverable until its scheduled purge.',
        {
          recoveryLevel: level,
          scheduledPurgeDate: deleted.scheduledPurgeDate?.toISOString(),
        },
      );
      return;
    }
    try {
      await this.kv('delete', 'secrets/purge', () => this.client.purgeDeletedSecret(name));
    } catch (err) {
      // Purged meanwhile by a concurrent opt-out.
      if (statusOf(err) !== 404) throw err;
    }
  }

  /** The version of the user's live secret, or `undefined` when there is none. */
  private async currentVersion(user: UserRef): Promise<string | undefined> {
    const name = refreshTokenSecretName(user);
    try {
      const secret = await this.kv('read', 'secrets/get', () => this.client.getSecret(name));
      return secret.properties.version;
    } catch (err) {
      if (isSecretNotFound(err)) return undefined;
      throw err;
    }
  }

  private secretOptions(user: UserRef): SetSecretOptions {
    const now = this.now();
    return {
      tags: {
        tenantId: user.tenantId.toLowerCase(),
        userId: user.userId.toLowerCase(),
        storedAt: now.toISOString(),
      },
      contentType: REFRESH_TOKEN_CONTENT_TYPE,
      expiresOn: new Date(now.getTime() + this.lifetimeMs),
    };
  }

  /** setSecret, waiting out a name that Key Vault is still purging or recovering (both asynchronous). */
  private async set(name: string, value: string, options: SetSecretOptions): Promise<void> {
    const deadline = Date.now() + this.pollTimeoutMs;
    for (;;) {
      try {
        await this.kv('store', 'secrets/set', () => this.client.setSecret(name, value, options));
        return;
      } catch (err) {
        const inner = innerCodeOf(err);
        const busy = inner === 'ObjectIsBeingDeleted' || inner === 'ObjectIsBeingRecovered';
        if (!busy) throw err;
        if (Date.now() >= deadline) {
          throw new AppError('upstream_unavailable', {
            detail: `Key Vault is still finishing an earlier delete or recovery of the user's secret.`,
            retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
            cause: err,
          });
        }
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollIntervalMs));
    }
  }

  /** Makes a soft-deleted name reusable: purge (the token must not survive), else recover to overwrite. */
  private async clearDeletedCopy(name: string): Promise<void> {
    try {
      await this.kv('store', 'secrets/purge', () => this.client.purgeDeletedSecret(name));
      return;
    } catch (err) {
      // 404: purged or recovered meanwhile; the next set tells which.
      if (statusOf(err) === 404) return;
      if (statusOf(err) !== 403) throw err;
    }
    // Purge protection (or no secrets/purge): recovering and writing a new version on top is the
    // only way to reuse the name before Key Vault's own purge, 7 to 90 days away.
    this.options.log?.warn(
      'Key Vault refused to purge a deleted refresh token; recovering it to overwrite it.',
    );
    try {
      await this.kv('store', 'secrets/recover', async () => {
        const signal = AbortSignal.timeout(this.pollTimeoutMs);
        const poller = await this.client.beginRecoverDeletedSecret(name, {
          intervalInMs: this.pollIntervalMs,
          abortSignal: signal,
        });
        await poller.pollUntilDone({ abortSignal: signal });
      });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  /** Runs one SDK call and normalises what it throws, once, here. */
  private async kv<T>(action: Action, permission: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw toStoreError(err, action, permission, this.pollTimeoutMs);
    }
  }
}

type Action = 'store' | 'read' | 'delete';

/** The SDK's RestError, recognised by name: its class lives in a transitive dependency. */
interface RestErrorLike extends Error {
  statusCode?: number;
  code?: string;
  details?: unknown;
  response?: { headers: { get(name: string): string | undefined } };
}

/**
 * What is kept of a Key Vault RestError as an AppError's cause: status, codes and Key Vault's
 * message. Not the request or response: the request of a set carries the refresh token.
 */
export class KeyVaultRequestError extends Error {
  override readonly name = 'KeyVaultRequestError';
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly code: string | undefined,
    readonly innerCode: string | undefined,
    readonly requestId: string | undefined,
  ) {
    super(message);
  }
}

function isRestError(err: unknown): err is RestErrorLike {
  return err instanceof Error && err.name === 'RestError';
}

function innerCodeOfDetails(details: unknown): string | undefined {
  const inner = (details as { error?: { innerError?: { code?: unknown } } } | undefined)?.error?.innerError
    ?.code;
  return typeof inner === 'string' ? inner : undefined;
}

function requestFailureOf(err: unknown): KeyVaultRequestError | undefined {
  if (err instanceof KeyVaultRequestError) return err;
  if (err instanceof AppError && err.cause instanceof KeyVaultRequestError) return err.cause;
  return undefined;
}

function statusOf(err: unknown): number | undefined {
  return requestFailureOf(err)?.status;
}

/** Key Vault's "no such secret": a 404 with another code (a wrong vault URL) is a failure. */
function isSecretNotFound(err: unknown): boolean {
  const failure = requestFailureOf(err);
  return failure?.status === 404 && failure.code === 'SecretNotFound';
}

function innerCodeOf(err: unknown): string | undefined {
  return requestFailureOf(err)?.innerCode;
}

const ACTION_TEXT: Record<Action, string> = {
  store: 'storing a refresh token',
  read: 'reading a refresh token',
  delete: 'deleting a refresh token',
};

function toStoreError(err: unknown, action: Action, permission: string, timeoutMs: number): AppError {
  if (err instanceof AppError) return err;
  const doing = ACTION_TEXT[action];
  if (isRestError(err)) {
    const status = err.statusCode;
    const inner = innerCodeOfDetails(err.details);
    const cause = new KeyVaultRequestError(
      err.message,
      status,
      err.code,
      inner,
      err.response?.headers.get('x-ms-request-id'),
    );
    const said = `${status ?? ''} ${err.code ?? ''}${inner ? `/${inner}` : ''}`.trim();
    if (status === undefined) {
      return new AppError('upstream_unavailable', {
        detail: `Key Vault could not be reached while ${doing}.`,
        retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
        cause,
      });
    }
    if (status === 429 || status >= 500) {
      return new AppError('upstream_unavailable', {
        detail: `Key Vault answered ${said} while ${doing}; try again later.`,
        retryAfterSeconds:
          (err.response && retryAfterSeconds((name) => err.response?.headers.get(name))) ??
          DEFAULT_RETRY_AFTER_SEC,
        cause,
      });
    }
    // 401/403 are the deployment's to fix: internal_error, whose detail goes to the log, not the caller.
    if (status === 401) {
      return new AppError('internal_error', {
        detail: `Key Vault refused the function's token while ${doing} (${said}): is the vault in the identity's tenant (AZURE_TENANT_ID)? Key Vault said: ${err.message}`,
        cause,
      });
    }
    if (status === 403 && inner === 'SecretDisabled') {
      return new AppError('internal_error', {
        detail: `The user's refresh-token secret is disabled in Key Vault (${said}) while ${doing}; enable or delete it.`,
        cause,
      });
    }
    if (status === 403) {
      return new AppError('internal_error', {
        detail: `Key Vault refused ${doing} (${said}): the function's identity needs the ${permission} permission on the vault (access policy, or an RBAC role that grants it). Key Vault said: ${err.message}`,
        cause,
      });
    }
    return new AppError('internal_error', { detail: `Key Vault answered ${said} while ${doing}.`, cause });
  }
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) {
    return new AppError('upstream_unavailable', {
      detail: `Key Vault did not finish ${doing} within ${timeoutMs} ms.`,
      retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
      cause: err,
    });
  }
  if (err instanceof Error && CREDENTIAL_ERRORS.has(err.name)) {
    // The identity service refusing the credential, or a vault in another tenant, is configuration.
    const refused =
      (err.name === 'AuthenticationError' &&
        [400, 401].includes((err as Error & { statusCode?: number }).statusCode ?? 0)) ||
      /not configured to acquire tokens for tenant/.test(err.message);
    if (refused) {
      return new AppError('internal_error', {
        detail: `The Key Vault credential was refused while ${doing}: ${err.message}`,
        cause: err,
      });
    }
    return new AppError('upstream_unavailable', {
      detail: `No token for Key Vault could be obtained while ${doing}.`,
      retryAfterSeconds: DEFAULT_RETRY_AFTER_SEC,
      cause: err,
    });
  }
  return new AppError('internal_error', { detail: `Unexpected failure while ${doing}.`, cause: err });
}

const CREDENTIAL_ERRORS = new Set([
  'AuthenticationError',
  'AuthenticationRequiredError',
  'CredentialUnavailableError',
  'AggregateAuthenticationError',
]);
