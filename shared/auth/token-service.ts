// The app's token service: the OBO exchange for a verified caller and the redemption of stored
// refresh tokens, over @azure/msal-node. Every msal error is normalised here, once, into AppError.
import { randomUUID } from 'node:crypto';
import {
  AuthError,
  ConfidentialClientApplication,
  InteractionRequiredAuthError,
  LogLevel,
  ServerError,
  type AuthenticationResult,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from '@azure/msal-node';
import type { Config } from '../config';
import { AppError } from '../errors';
import { fingerprint, userKey } from '../ids';
import { redact } from '../redact';
import { msalClientCredential, type MsalClientCredential } from './client-credential';
import { OpenIdMetadataSource } from './openid-metadata';
import type { Logger, TokenExchange, UserRef } from '../notifications/send';
import type { Caller } from './caller';

export interface TokenServiceOptions {
  /** Users whose msal caches are kept in memory; the least recently used is dropped. Default 1000. */
  maxPartitions?: number;
  /**
   * Access tokens one user's cache may hold before it is started afresh. msal-node 7 already
   * replaces a user's token for the same scopes, so this only guards against that changing.
   * Default 16.
   */
  maxTokensPerPartition?: number;
  /** Where msal's own warnings and errors go (PII logging off), and our operator messages. */
  log?: Logger;
  /**
   * msal's log level, for diagnosis; PII logging stays off whatever the level. Warnings and errors
   * go to `log.warn`, anything finer to `log.info`. Default `warning`.
   */
  msalLogLevel?: 'error' | 'warning' | 'info' | 'verbose';
  /** Per request to the identity service. msal-node sets no timeout on token requests. Default 10 s. */
  requestTimeoutMs?: number;
  /** The OpenID metadata, shared with the caller verifier (one read per worker). */
  metadata?: OpenIdMetadataSource;
  /**
   * Where App Service advertises the managed identity (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`), for
   * `ENTRA_CLIENT_ASSERTION=managed-identity`. Default `process.env`, which @azure/identity reads too.
   */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface RedeemedToken {
  accessToken: string;
  expiresOn: Date;
  /** The rotated refresh token, when the identity service issued a new one. */
  refreshToken: string | undefined;
}

type Grant = 'obo' | 'redeem' | 'app';

/** What our network module saw of one msal request (keyed by its correlation id). */
type Observation = { kind: 'response'; status: number; retryAfter: string | undefined } | { kind: 'failed' };

interface Partition {
  readonly key: string;
  readonly user: UserRef;
  /**
   * msal's home account id for this user, as the identity service last named it (client_info):
   * `{oid}.{tid}` of the home account, which for a B2B guest is not the caller's `oid`/`tid`.
   */
  homeAccountId: string;
  readonly authorityMetadata: string;
  app: ConfidentialClientApplication;
  /** Until when msal refuses to call the identity service again for this user (its own throttling). */
  throttledUntil: number;
  /** The refresh token last read from `app`'s cache: a cache hit cannot have changed it. */
  refreshToken?: string;
}

interface SerializedCache {
  AccessToken?: Record<string, unknown>;
  RefreshToken?: Record<string, { home_account_id?: string; secret?: string }>;
}

const MSAL_LOG_LEVELS = {
  error: LogLevel.Error,
  warning: LogLevel.Warning,
  info: LogLevel.Info,
  verbose: LogLevel.Verbose,
} as const;
const DEFAULT_MAX_PARTITIONS = 1000;
const DEFAULT_MAX_TOKENS_PER_PARTITION = 16;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Wait suggested after a network failure (nothing throttles it: msal only remembers HTTP answers). */
const NETWORK_RETRY_AFTER_SEC = 5;
// msal-common's ThrottlingUtils: without a usable Retry-After it refuses the same request for 60 s,
// and never for longer than an hour.
const MSAL_DEFAULT_THROTTLE_SEC = 60;
const MSAL_MAX_THROTTLE_SEC = 3600;

// AADSTS numbers of an OBO assertion Entra refused (bad signature or tenant, wrong audience,
// expired or not yet valid). msal reports them as invalid_grant.
const ASSERTION_REJECTED: Record<string, string> = {
  '50013': 'its signature, issuer or tenant is not valid',
  '500131': 'it was issued for another application',
  '500133': 'it is expired or not yet valid',
};

// AADSTS numbers of a federated credential (the managed identity's assertion) that no federated
// identity credential of the app registration matches: 70021 as a whole (invalid_request), or
// by issuer, audience or subject (700211, 700212, 700213; invalid_client).
const FEDERATION_REJECTED: ReadonlySet<string> = new Set(['70021', '700211', '700212', '700213']);

/** What the operator checks when the identity service refuses the app's own credential. */
const CREDENTIAL_HINT: Record<Config['credential']['kind'], string> = {
  secret: 'ENTRA_CLIENT_SECRET',
  certificate: 'the certificate of ENTRA_CLIENT_CERTIFICATE_PATH',
  appServiceCertificate: 'the certificate WEBSITE_LOAD_CERTIFICATES names',
  managedIdentity:
    "the app registration's federated identity credential (issuer, subject = the managed identity's object id, audience api://AzureADTokenExchange)",
};

/**
 * The OBO exchange and refresh-token redemption, with one small msal client per user.
 *
 * msal-node keeps a single in-memory store per application object and scans all of it on every
 * lookup (AzureAD/microsoft-authentication-library-for-js#5457); the only way to read the
 * refresh token (serialize()) also walks the whole store. So each user gets their own
 * ConfidentialClientApplication, held in an LRU of `maxPartitions`: lookups and serialisation stay
 * a few entries long whatever the number of users, memory stays bounded, and msal's own
 * throttling after a 429/5xx (keyed by client, authority and scopes, not by user) holds back only
 * the user whose request failed instead of every user of the worker. The OpenID metadata is read
 * once and handed to every new client, so a new user costs no discovery request.
 */
export class TokenService implements TokenExchange {
  private readonly authority: string;
  private readonly scopes: string[];
  private readonly credential: MsalClientCredential;
  private readonly partitions = new Map<string, Partition>();
  /** Client-credentials clients, one per tenant the app sends to as itself. */
  private readonly appPartitions = new Map<string, Partition>();
  private readonly appScopes: string[];
  private readonly flights = new Map<string, Promise<unknown>>();
  private readonly network: ObservingNetworkClient;
  private readonly maxPartitions: number;
  private readonly maxTokensPerPartition: number;
  private readonly log: Logger | undefined;
  private readonly requestTimeoutMs: number;
  private readonly msalLogLevel: LogLevel;
  private metadata: Promise<string> | undefined;
  private readonly metadataSource: OpenIdMetadataSource;

  /**
   * Side effect: reads the client certificate (ENTRA_CLIENT_CERTIFICATE_PATH, or the one App Service
   * loaded), if that is the credential. Throws `invalid_config` when it is unreadable, has no
   * matching RSA key, or has expired, or when the managed identity the settings name is absent.
   */
  constructor(
    private readonly config: Pick<
      Config,
      'tenantId' | 'clientId' | 'credential' | 'authorityHost' | 'graphScopes'
    > &
      Partial<Pick<Config, 'teamsScopes'>>,
    options: TokenServiceOptions = {},
  ) {
    this.authority = `${config.authorityHost}/${config.tenantId}`;
    this.scopes = [...config.graphScopes];
    // The app's own token is for the resource the Teams scopes name (Graph, in its cloud).
    this.appScopes = [`${resourceOf(config.teamsScopes?.[0] ?? 'https://graph.microsoft.com/x')}/.default`];
    this.maxPartitions = Math.max(1, options.maxPartitions ?? DEFAULT_MAX_PARTITIONS);
    this.maxTokensPerPartition = Math.max(
      1,
      options.maxTokensPerPartition ?? DEFAULT_MAX_TOKENS_PER_PARTITION,
    );
    this.log = options.log;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.msalLogLevel = MSAL_LOG_LEVELS[options.msalLogLevel ?? 'warning'];
    this.network = new ObservingNetworkClient(this.requestTimeoutMs);
    this.metadataSource =
      options.metadata ??
      new OpenIdMetadataSource(config.authorityHost, config.tenantId, this.requestTimeoutMs);
    this.credential = msalClientCredential(config.credential, options.env ?? process.env);
  }

  /** Users currently held in memory (for tests and the benchmark). */
  get partitionCount(): number {
    return this.partitions.size;
  }

  /** Access tokens msal holds for the user, or undefined when the user is not in memory. */
  accessTokensHeld(user: UserRef): number | undefined {
    const partition = this.partitions.get(userKey(user));
    return partition ? countOf(readCache(partition.app).AccessToken) : undefined;
  }

  /**
   * Exchanges the caller's access token for a Graph token (OBO) and returns the refresh token
   * that came with it. Side effects: at most one token request per distinct assertion (msal
   * caches the result by assertion hash; concurrent calls share one request); the first call
   * reads the OpenID metadata. Needs the delegated GRAPH_SCOPES consented for this API.
   */
  async onBehalfOf(
    caller: Caller,
    scopes: readonly string[] = this.scopes,
  ): Promise<{ accessToken: string; refreshToken: string | undefined }> {
    const partition = await this.partitionFor(caller);
    return this.singleFlight(
      `obo|${partition.key}|${scopes.join(' ')}|${fingerprint(caller.assertion)}`,
      () => this.exchange(partition, caller.assertion, [...scopes]),
    );
  }

  /**
   * A token for the app itself in `tenantId` (client credentials, `{Graph}/.default`): what sends as
   * the app use. msal keeps it until shortly before it expires; concurrent calls for one tenant
   * share one request. Needs an application permission granted in that tenant (e.g.
   * TeamsActivity.Send); Graph, not the identity service, refuses a token without it.
   */
  async forApp(tenantId: string): Promise<string> {
    return this.singleFlight(`app|${tenantId.toLowerCase()}`, () => this.appToken(tenantId.toLowerCase()));
  }

  /**
   * Redeems a stored refresh token for a Graph token, for a deferred send. Side effect: one
   * refresh-token request to the identity service (concurrent calls with the same token share
   * it). Throws `invalid_grant` when the token was revoked or expired.
   */
  async redeem(
    user: UserRef,
    refreshToken: string,
    scopes: readonly string[] = this.scopes,
  ): Promise<RedeemedToken> {
    const partition = await this.partitionFor(user);
    return this.singleFlight(`redeem|${partition.key}|${scopes.join(' ')}|${fingerprint(refreshToken)}`, () =>
      this.redeemIn(partition, refreshToken, [...scopes]),
    );
  }

  /** Drops the user's msal cache (tokens, and msal's throttling state) from memory. */
  forget(user: UserRef): void {
    this.partitions.delete(userKey(user));
  }

  private async exchange(
    partition: Partition,
    assertion: string,
    scopes: string[],
  ): Promise<{ accessToken: string; refreshToken: string | undefined }> {
    const correlationId = randomUUID();
    const app = partition.app;
    try {
      const result = must(
        await app.acquireTokenOnBehalfOf({ oboAssertion: assertion, scopes, correlationId }),
      );
      // Serializing the cache costs more than the lookup: on a cache hit nothing in it changed.
      if (result.fromCache && partition.app === app && partition.refreshToken !== undefined) {
        return { accessToken: result.accessToken, refreshToken: partition.refreshToken };
      }
      // The refresh token never reaches AuthenticationResult, and msal will not use it to renew
      // OBO tokens itself (#5330): it is read from the serialized cache, right after the exchange.
      const refreshToken = this.settle(partition, app, result);
      return { accessToken: result.accessToken, refreshToken };
    } catch (err) {
      throw this.normalise(err, 'obo', partition, correlationId);
    } finally {
      this.network.forget(correlationId);
    }
  }

  private async redeemIn(
    partition: Partition,
    refreshToken: string,
    scopes: string[],
  ): Promise<RedeemedToken> {
    const correlationId = randomUUID();
    const app = partition.app;
    try {
      const before = partition.refreshToken;
      // Without forceCache msal does not cache the rotated refresh token for an account it has
      // not seen, and then there is nothing to read it from.
      const result = must(
        await app.acquireTokenByRefreshToken({
          refreshToken,
          scopes,
          forceCache: true,
          correlationId,
        }),
      );
      if (!isAccountOf(result.account, partition.user)) {
        // Another user's tokens must not stay in this user's cache.
        this.partitions.delete(partition.key);
        throw new AppError('invalid_grant', { detail: 'The stored refresh token belongs to another user.' });
      }
      const after = this.settle(partition, app, result);
      return {
        accessToken: result.accessToken,
        expiresOn: result.expiresOn ?? new Date(Date.now() + 5 * 60_000),
        refreshToken: after !== undefined && after !== before && after !== refreshToken ? after : undefined,
      };
    } catch (err) {
      throw this.normalise(err, 'redeem', partition, correlationId);
    } finally {
      this.network.forget(correlationId);
    }
  }

  private async appToken(tenantId: string): Promise<string> {
    let partition = this.appPartitions.get(tenantId);
    if (!partition) {
      // The configured tenant's metadata is at hand; another tenant's msal reads itself, once.
      const metadata =
        tenantId === this.config.tenantId.toLowerCase() ? await this.authorityMetadata() : undefined;
      partition = {
        key: `app|${tenantId}`,
        user: { userId: this.config.clientId, tenantId },
        homeAccountId: '',
        authorityMetadata: metadata ?? '',
        app: this.newApp(metadata, `${this.config.authorityHost}/${tenantId}`),
        throttledUntil: 0,
      };
      this.appPartitions.set(tenantId, partition);
    }
    const correlationId = randomUUID();
    try {
      const result = must(
        await partition.app.acquireTokenByClientCredential({ scopes: this.appScopes, correlationId }),
      );
      return result.accessToken;
    } catch (err) {
      throw this.normalise(err, 'app', partition, correlationId);
    } finally {
      this.network.forget(correlationId);
    }
  }

  private singleFlight<T>(key: string, run: () => Promise<T>): Promise<T> {
    const inflight = this.flights.get(key) as Promise<T> | undefined;
    if (inflight) return inflight;
    const flight = run().finally(() => this.flights.delete(key));
    this.flights.set(key, flight);
    return flight;
  }

  private async partitionFor(user: UserRef): Promise<Partition> {
    const key = userKey(user);
    const existing = this.partitions.get(key);
    if (existing) {
      // Map keeps insertion order: moving the entry to the end makes the first the least recent.
      this.partitions.delete(key);
      this.partitions.set(key, existing);
      return existing;
    }
    const metadata = await this.authorityMetadata();
    // Another call may have created it while the metadata was read.
    const raced = this.partitions.get(key);
    if (raced) return raced;
    const partition: Partition = {
      key,
      user: { userId: user.userId, tenantId: user.tenantId },
      // A member's home account is the caller's own object; a guest's is learnt from the first answer.
      homeAccountId: `${user.userId}.${user.tenantId}`.toLowerCase(),
      authorityMetadata: metadata,
      app: this.newApp(metadata),
      throttledUntil: 0,
    };
    this.partitions.set(key, partition);
    while (this.partitions.size > this.maxPartitions) {
      const oldest = this.partitions.keys().next().value;
      if (oldest === undefined) break;
      this.partitions.delete(oldest);
    }
    return partition;
  }

  private newApp(
    authorityMetadata: string | undefined,
    authority: string = this.authority,
  ): ConfidentialClientApplication {
    return new ConfidentialClientApplication({
      auth: {
        clientId: this.config.clientId,
        authority,
        // Without it msal asks login.microsoftonline.com for instance discovery, whatever the host.
        knownAuthorities: [new URL(this.config.authorityHost).host],
        // Read once by this service: a new client per user then resolves the authority offline.
        ...(authorityMetadata ? { authorityMetadata } : {}),
        ...this.credential,
      },
      system: {
        networkClient: this.network,
        loggerOptions: {
          logLevel: this.msalLogLevel,
          piiLoggingEnabled: false,
          loggerCallback: (level, message, containsPii) => {
            if (containsPii || !this.log) return;
            if (level <= LogLevel.Warning) this.log.warn(`msal: ${redact(message)}`);
            else this.log.info(`msal: ${redact(message)}`);
          },
        },
      },
    });
  }

  /** The discovery document as msal takes it, read once (a failed read is not kept). */
  private authorityMetadata(): Promise<string> {
    this.metadata ??= this.metadataSource.get().then(
      (doc) => {
        this.log?.info('Read the identity service OpenID metadata.', { authority: this.authority });
        return JSON.stringify(doc);
      },
      (err: unknown) => {
        this.metadata = undefined;
        throw err;
      },
    );
    return this.metadata;
  }

  /**
   * After a call that reached the identity service: reads the user's refresh token from msal's
   * serialized cache (msal never puts it in AuthenticationResult) and keeps the partition bounded, from one parse of the cache.
   * A user who keeps presenting new assertions must not grow their cache without limit: past the
   * bound the partition starts afresh (at most one more exchange for a still-valid assertion; the
   * refresh token was already handed out).
   */
  private settle(
    partition: Partition,
    app: ConfidentialClientApplication,
    result: AuthenticationResult,
  ): string | undefined {
    // msal files the refresh token under the home account that client_info named: for a B2B guest
    // that is the account in the guest's home tenant, not the `oid`/`tid` of the caller's token.
    const home = result.account?.homeAccountId.toLowerCase();
    if (home && partition.app === app) partition.homeAccountId = home;
    const owner = home ?? partition.homeAccountId;
    const cache = readCache(app);
    const refreshToken = Object.values(cache.RefreshToken ?? {}).find(
      (rt) => rt.home_account_id?.toLowerCase() === owner && rt.secret,
    )?.secret;
    if (partition.app !== app) return refreshToken;
    if (countOf(cache.AccessToken) > this.maxTokensPerPartition) {
      partition.app = this.newApp(partition.authorityMetadata);
      partition.throttledUntil = 0;
      partition.refreshToken = undefined;
    } else {
      partition.refreshToken = refreshToken;
    }
    return refreshToken;
  }

  private normalise(err: unknown, grant: Grant, partition: Partition, correlationId: string): AppError {
    if (err instanceof AppError) return err;
    const seen = this.network.observation(correlationId);
    if (seen?.kind === 'response' && (isThrottling(seen.status) || seen.retryAfter !== undefined)) {
      // msal now refuses this request for that long (ThrottlingUtils.postProcess); say so.
      partition.throttledUntil = Date.now() + msalThrottleSeconds(seen.retryAfter) * 1000;
    }
    if (!(err instanceof AuthError)) {
      return new AppError('internal_error', {
        detail: 'The token exchange failed unexpectedly.',
        cause: err,
      });
    }
    const code = err.errorCode;
    const errorNo = aadsts(err);
    const sts = errorNo ? ` (AADSTS${errorNo})` : '';

    if (seen?.kind === 'failed' || code === 'network_error') {
      return new AppError('upstream_unavailable', {
        detail: 'The identity service could not be reached.',
        retryAfterSeconds: NETWORK_RETRY_AFTER_SEC,
        cause: err,
      });
    }
    if ((seen?.kind === 'response' && isThrottling(seen.status)) || code === 'temporarily_unavailable') {
      return new AppError('upstream_unavailable', {
        detail: `The identity service is throttling or unavailable${seen?.kind === 'response' ? ` (HTTP ${seen.status})` : ''}${sts}.`,
        retryAfterSeconds: this.remainingThrottle(partition),
        cause: err,
      });
    }
    if (seen === undefined && err instanceof ServerError && !(err instanceof InteractionRequiredAuthError)) {
      // A ServerError without a request: msal's own throttling replaying an earlier 429/5xx.
      return new AppError('upstream_unavailable', {
        detail: `The identity service asked to be left alone for a while${sts}.`,
        retryAfterSeconds: this.remainingThrottle(partition),
        cause: err,
      });
    }
    if (
      code === 'invalid_client' ||
      code === 'unauthorized_client' ||
      (errorNo && FEDERATION_REJECTED.has(errorNo))
    ) {
      this.log?.warn(
        `The identity service rejected this app's own credential (${code}${sts}) for client ${this.config.clientId}: ` +
          `check ${CREDENTIAL_HINT[this.config.credential.kind]} against the app registration.`,
        { code, aadsts: errorNo },
      );
      return new AppError('credential_rejected', {
        detail: `The identity service rejected this app's own credential${sts}; the operator must fix it.`,
        cause: err,
      });
    }
    if (grant === 'redeem' && code === 'invalid_grant' && !isUserActionSubError(err.subError)) {
      // The stored grant is dead (AADSTS70008, 700082, 50173, ...): only the user can make a new one.
      return new AppError('invalid_grant', {
        detail: `The stored refresh token was revoked or has expired${sts}.`,
        cause: err,
      });
    }
    if (err instanceof InteractionRequiredAuthError) return interactionRequired(err, sts);
    if (grant === 'obo' && code === 'invalid_grant') {
      const reason = (errorNo && ASSERTION_REJECTED[errorNo]) ?? 'it was not accepted';
      return new AppError('invalid_token', {
        detail: `The identity service refused the access token for the exchange: ${reason}${sts}.`,
        cause: err,
      });
    }
    this.log?.warn(
      `The identity service refused the token request (${code}${sts}); check GRAPH_SCOPES and the app registration.`,
      {
        code,
        aadsts: errorNo,
        grant,
      },
    );
    return new AppError('internal_error', { detail: 'The token exchange failed.', cause: err });
  }

  private remainingThrottle(partition: Partition): number {
    const left = Math.ceil((partition.throttledUntil - Date.now()) / 1000);
    return left > 0 ? left : MSAL_DEFAULT_THROTTLE_SEC;
  }
}

/**
 * Entra's claims challenge (learn.microsoft.com/entra/identity-platform/claims-challenge):
 * `error="insufficient_claims"` with the base64 claims, which the client passes to its next token
 * request. When Entra sent no claims (missing consent) there is nothing to insist on, and that
 * format requires `claims` with `insufficient_claims`; the header then says
 * `error="interaction_required"` (OpenID Connect's code) with the reason, and the client signs
 * the user in interactively.
 */
function interactionRequired(err: InteractionRequiredAuthError, sts: string): AppError {
  const reason = [err.errorCode, err.subError].filter(Boolean).join('/');
  const claims = err.claims.trim();
  if (claims) {
    return new AppError('interaction_required', {
      detail: `The identity service needs the user to satisfy a policy (${reason}${sts}); sign in again with the claims challenge.`,
      authenticate: { error: 'insufficient_claims', claims: Buffer.from(claims, 'utf8').toString('base64') },
      cause: err,
    });
  }
  const consent = err.subError === 'consent_required' || err.errorCode === 'consent_required';
  return new AppError('interaction_required', {
    detail: consent
      ? `The user has not consented to the permissions this API needs (${reason}${sts}); sign in interactively to consent.`
      : `The identity service needs the user to sign in interactively (${reason}${sts}).`,
    authenticate: { error: 'interaction_required', error_description: err.subError || err.errorCode },
    cause: err,
  });
}

/** Sub-errors that mean "the user can fix this by signing in", not "the grant is gone". */
function isUserActionSubError(subError: string): boolean {
  return [
    'consent_required',
    'basic_action',
    'additional_action',
    'message_only',
    'user_password_expired',
  ].includes(subError);
}

/**
 * msal's own INetworkModule over fetch, which also remembers the HTTP status and Retry-After of
 * each answer: msal keeps both to itself (ServerError carries neither for token requests), and
 * the caller's `Retry-After` should match how long msal will refuse to retry.
 */
class ObservingNetworkClient implements INetworkModule {
  private readonly seen = new Map<string, Observation>();

  constructor(private readonly timeoutMs: number) {}

  observation(correlationId: string): Observation | undefined {
    return this.seen.get(correlationId);
  }

  forget(correlationId: string): void {
    this.seen.delete(correlationId);
  }

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>('GET', url, options, timeout);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>('POST', url, options);
  }

  private async send<T>(
    method: 'GET' | 'POST',
    url: string,
    options: NetworkRequestOptions | undefined,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    const correlationId = options?.correlationId;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: options?.headers,
        body: method === 'POST' ? (options?.body ?? '') : undefined,
        signal: AbortSignal.timeout(timeout ?? this.timeoutMs),
      });
    } catch (err) {
      if (correlationId) this.seen.set(correlationId, { kind: 'failed' });
      // msal turns any non-msal error into its network_error; the URL is no secret, the body is.
      throw new Error(`Request to ${new URL(url).origin} failed: ${(err as Error).name}`, { cause: err });
    }
    const headers: Record<string, string> = {};
    res.headers.forEach((value, name) => {
      headers[name] = value;
    });
    if (correlationId) {
      this.seen.set(correlationId, {
        kind: 'response',
        status: res.status,
        retryAfter: headers['retry-after'],
      });
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // A proxy's HTML error page: give msal an error it reports instead of a parse failure.
      body = { error: 'invalid_response', error_description: `HTTP ${res.status} without a JSON body` };
    }
    return { headers, body: body as T, status: res.status };
  }
}

/**
 * Whether msal's account is the user a token was asked for. The ID token's `oid`/`tid` (msal's
 * `localAccountId`/`tenantId`) name the user in the tenant that issued it, guest or member; the home
 * account id is the comparison only when no ID token came back.
 */
function isAccountOf(account: AuthenticationResult['account'], user: UserRef): boolean {
  if (!account) return true;
  const same = (a: string | undefined, b: string) => a?.toLowerCase() === b.toLowerCase();
  if (account.localAccountId)
    return same(account.localAccountId, user.userId) && same(account.tenantId, user.tenantId);
  return same(account.homeAccountId, `${user.userId}.${user.tenantId}`);
}

function readCache(app: ConfidentialClientApplication): SerializedCache {
  return JSON.parse(app.getTokenCache().serialize()) as SerializedCache;
}

function countOf(entries: Record<string, unknown> | undefined): number {
  return entries ? Object.keys(entries).length : 0;
}

function must(result: AuthenticationResult | null): AuthenticationResult {
  if (!result) throw new AppError('internal_error', { detail: 'msal returned no token.' });
  return result;
}

function isThrottling(status: number): boolean {
  return status === 429 || (status >= 500 && status < 600);
}

/** How long msal throttles after an answer with this Retry-After (msal-common ThrottlingUtils). */
function msalThrottleSeconds(retryAfter: string | undefined): number {
  const seconds = parseInt(retryAfter ?? '', 10);
  return Math.min(seconds > 0 ? seconds : MSAL_DEFAULT_THROTTLE_SEC, MSAL_MAX_THROTTLE_SEC);
}

/** The resource of a scope: `https://graph.microsoft.com/TeamsActivity.Send` → `https://graph.microsoft.com`. */
function resourceOf(scope: string): string {
  const slash = scope.lastIndexOf('/');
  return slash > 'https://'.length ? scope.slice(0, slash) : 'https://graph.microsoft.com';
}

/** The AADSTS number msal kept from `error_codes` (typed string, a number at run time). */
function aadsts(err: AuthError): string | undefined {
  const no = (err as { errorNo?: unknown }).errorNo;
  return typeof no === 'number' || (typeof no === 'string' && no !== '') ? String(no) : undefined;
}
