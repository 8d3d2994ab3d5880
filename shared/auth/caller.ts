import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Config } from '../config';
import { AppError } from '../errors';
import { fingerprint, GUID } from '../ids';
import { OpenIdMetadataSource } from './openid-metadata';

/** A caller whose access token this app verified. Nothing downstream reads an unverified claim. */
export interface Caller {
  readonly tenantId: string;
  readonly userId: string;
  readonly scopes: readonly string[];
  /** The caller's access token, kept only to be the OBO assertion. */
  readonly assertion: string;
  readonly expiresAt: Date;
  /**
   * The sign-in names the token carries (`preferred_username`, `upn`), lowercase: only to recognise
   * the caller among recipients named by user principal name. Personal data: never logged.
   */
  readonly usernames?: readonly string[];
}

type CallerConfig = Pick<
  Config,
  'authorityHost' | 'tenantId' | 'apiAudiences' | 'allowedTenantIds' | 'requiredScope'
>;

export interface CallerVerifierOptions {
  /** Skew allowed on `exp` / `nbf`, in seconds. */
  clockToleranceSec?: number;
  /** jose's minimum time between two JWKS fetches (a token with an unknown `kid` triggers one). */
  jwksCooldownMs?: number;
  /** The OpenID metadata, shared with the token service (one read per worker). */
  metadata?: OpenIdMetadataSource;
  /** Tokens whose verification is remembered until they expire; 0 verifies every time. Default 10,000. */
  verifiedTokens?: number;
  now?: () => number;
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*)$/i;

/**
 * Verifies callers' access tokens against the authority's OpenID metadata and JWKS. The JWKS is
 * fetched once and cached by jose, which fetches again when a token names a key it has not seen:
 * a signing-key rotation is picked up without a restart.
 */
export class CallerVerifier {
  private jwks: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  /**
   * Callers already verified, by the SHA-256 of their whole token, until the token expires. The
   * signature check (jose, RSA) was the largest piece of the app's own CPU per request; a client
   * sends the same token for an hour. What it changes: a token verified once stays accepted until
   * its `exp` even if its signing key is withdrawn meanwhile (Entra rolls keys with weeks of
   * overlap, and nothing revokes an access token before `exp` here anyway); every other check
   * (issuer, tenant, scope) is a pure function of the token and gives the same answer again.
   */
  private readonly verified = new Map<string, Caller>();

  private readonly metadata: OpenIdMetadataSource;

  constructor(
    private readonly config: CallerConfig,
    private readonly options: CallerVerifierOptions = {},
  ) {
    this.metadata = options.metadata ?? new OpenIdMetadataSource(config.authorityHost, config.tenantId);
  }

  /** Side effects: the first call reads the OpenID metadata and JWKS from the identity service. */
  async verify(authorization: string | null | undefined): Promise<Caller> {
    const match = BEARER.exec(authorization?.trim() ?? '');
    if (!match) {
      throw new AppError('missing_token', {
        detail: 'Send the signed-in user\'s access token as "Authorization: Bearer <token>".',
      });
    }
    const token = match[1]!;
    const key = fingerprint(token);
    const now = this.options.now?.() ?? Date.now();
    const known = this.verified.get(key);
    if (known && known.expiresAt.getTime() > now) return known;
    if (known) this.verified.delete(key);
    const caller = await this.verifyAll(token);
    this.remember(key, caller);
    return caller;
  }

  private remember(key: string, caller: Caller): void {
    const max = this.options.verifiedTokens ?? 10_000;
    if (max <= 0) return;
    this.verified.set(key, caller);
    // Map keeps insertion order: the first key is the oldest verification.
    while (this.verified.size > max) this.verified.delete(this.verified.keys().next().value!);
  }

  private async verifyAll(token: string): Promise<Caller> {
    const payload = await this.verifySignature(token);
    const tenantId = typeof payload.tid === 'string' ? payload.tid : '';
    const userId = typeof payload.oid === 'string' ? payload.oid : '';
    if (!GUID.test(tenantId) || !GUID.test(userId)) {
      throw new AppError('invalid_token', { detail: 'The token carries no user (tid and oid claims).' });
    }
    if (!this.issuersFor(tenantId).includes(String(payload.iss))) {
      throw new AppError('invalid_token', { detail: "The token's issuer does not match its tenant." });
    }
    if (!this.config.allowedTenantIds.some((t) => t.toLowerCase() === tenantId.toLowerCase())) {
      throw new AppError('tenant_not_allowed', { detail: `Tenant ${tenantId} may not use this API.` });
    }
    const scopes = typeof payload.scp === 'string' ? payload.scp.split(' ').filter(Boolean) : [];
    if (!scopes.includes(this.config.requiredScope)) {
      throw new AppError('insufficient_scope', {
        detail: `The token lacks the delegated scope ${this.config.requiredScope}.`,
      });
    }
    return {
      tenantId: tenantId.toLowerCase(),
      userId: userId.toLowerCase(),
      scopes,
      assertion: token,
      expiresAt: new Date((payload.exp ?? 0) * 1000),
      usernames: [payload.preferred_username, payload.upn]
        .filter((n): n is string => typeof n === 'string' && n.length > 0)
        .map((n) => n.toLowerCase()),
    };
  }

  /** v2.0 tokens name `{authority}/{tid}/v2.0`, v1.0 tokens `https://sts.windows.net/{tid}/`. */
  private issuersFor(tenantId: string): string[] {
    return [`${this.config.authorityHost}/${tenantId}/v2.0`, `https://sts.windows.net/${tenantId}/`];
  }

  private async verifySignature(token: string): Promise<JWTPayload> {
    const jwks = await this.keySet();
    try {
      const { payload } = await jwtVerify(token, jwks, {
        algorithms: ['RS256'],
        audience: [...this.config.apiAudiences],
        clockTolerance: this.options.clockToleranceSec ?? 120,
        requiredClaims: ['exp', 'iss', 'aud'],
      });
      return payload;
    } catch (err) {
      throw this.normalise(err);
    }
  }

  private normalise(err: unknown): AppError {
    if (err instanceof joseErrors.JWTExpired) {
      return new AppError('invalid_token', { detail: 'The token has expired.', cause: err });
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      // jose names the claim; its message never holds the token itself.
      return new AppError('invalid_token', {
        detail: `Token rejected: ${err.claim} ${err.reason}.`,
        cause: err,
      });
    }
    if (err instanceof joseErrors.JWKSTimeout || (err instanceof TypeError && /fetch/i.test(err.message))) {
      return identityUnavailable(err);
    }
    if (err instanceof joseErrors.JOSEError) {
      return new AppError('invalid_token', {
        detail: 'The token is malformed or its signature is invalid.',
        cause: err,
      });
    }
    return identityUnavailable(err);
  }

  private keySet(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    this.jwks ??= this.discover().catch((err: unknown) => {
      // A failed discovery is not cached: the next request tries again.
      this.jwks = undefined;
      throw err;
    });
    return this.jwks;
  }

  private async discover(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    const { jwks_uri: jwksUri } = await this.metadata.get();
    return createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: 5000,
      cooldownDuration: this.options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: 24 * 60 * 60 * 1000,
    });
  }
}

function identityUnavailable(cause: unknown): AppError {
  return new AppError('upstream_unavailable', {
    detail: 'The identity service could not be reached to verify the token.',
    retryAfterSeconds: 5,
    cause,
  });
}
