import { AppError, isAppError } from '../errors';
import { userKey } from '../ids';
import type { Logger, UserRef } from '../notifications/send';
import { noTelemetry, type Telemetry } from '../telemetry';
import { OptOuts } from './opt-outs';

/** Port: the refresh tokens stored at users' last visits (Key Vault). */
export interface StoredRefreshTokens {
  load(user: UserRef): Promise<{ refreshToken: string; storedAt: Date; version: string } | undefined>;
  /** Writes only over `expected`, the version that was redeemed; false when it did not write. */
  replace(user: UserRef, refreshToken: string, expected: string): Promise<boolean>;
  /** Deletes only while `version` is the stored one; false when it did not delete. */
  deleteIfCurrent(user: UserRef, version: string): Promise<boolean>;
}

/** Port: redeeming a refresh token at the identity service (the token service). */
export interface RefreshTokenRedeemer {
  redeem(
    user: UserRef,
    refreshToken: string,
    scopes?: readonly string[],
  ): Promise<{ accessToken: string; expiresOn: Date; refreshToken: string | undefined }>;
  /** Drops whatever the redeemer holds in memory for the user. */
  forget(user: UserRef): void;
}

export interface AbsentUserTokensOptions {
  /** Write a rotated refresh token back only when the stored one is older than this. */
  rewriteAfterMs?: number;
  /** Renew an access token this long before it expires. */
  expiryMarginMs?: number;
  /** Users whose access tokens are kept in memory at most. */
  maxUsers?: number;
  /** Counts redemptions and records rewritten or deleted refresh tokens. */
  telemetry?: Telemetry;
  /** The instance's opt-outs, shared with the opt-out itself (a private one by default). */
  optOuts?: OptOuts;
  now?: () => number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Graph access tokens for users who are not there: from the refresh token stored at their last
 * visit. Access tokens are kept in memory per user until shortly before they expire, and
 * concurrent requests for one user share one vault read and one refresh (single flight).
 *
 * Entra ID issues a new refresh token on every redemption without revoking the old one, and each
 * lives 90 days from its issue; Key Vault allows few writes per vault. So the rotated token is
 * written back only when the stored one is older than a day, not on every refresh.
 */
export class AbsentUserTokens {
  private readonly tokens = new Map<string, { accessToken: string; expiresAt: number }>();
  private readonly inflight = new Map<string, Promise<string>>();
  private readonly rewriteAfterMs: number;
  private readonly expiryMarginMs: number;
  private readonly maxUsers: number;
  private readonly now: () => number;
  private readonly telemetry: Telemetry;
  private readonly optOuts: OptOuts;

  constructor(
    private readonly store: StoredRefreshTokens,
    private readonly redeemer: RefreshTokenRedeemer,
    private readonly log: Logger,
    options: AbsentUserTokensOptions = {},
  ) {
    this.rewriteAfterMs = options.rewriteAfterMs ?? DAY_MS;
    this.expiryMarginMs = options.expiryMarginMs ?? 5 * 60 * 1000;
    this.maxUsers = options.maxUsers ?? 10_000;
    this.now = options.now ?? Date.now;
    this.telemetry = options.telemetry ?? noTelemetry;
    this.optOuts = options.optOuts ?? new OptOuts();
  }

  /**
   * A Graph access token for the user. Throws `not_registered` (no stored token), `invalid_grant`
   * (the stored token was revoked or expired; it is deleted) or `upstream_unavailable`.
   * Side effects: may read, rewrite or delete the user's secret (secrets/get, set, delete, purge).
   */
  accessTokenFor(user: UserRef, scopes?: readonly string[]): Promise<string> {
    // One refresh token serves every channel; each channel's scopes get their own access token.
    const k = `${userKey(user)}|${scopes?.join(' ') ?? ''}`;
    const cached = this.tokens.get(k);
    if (cached && cached.expiresAt - this.expiryMarginMs > this.now())
      return Promise.resolve(cached.accessToken);
    const running = this.inflight.get(k);
    if (running) return running;
    const acquiring = this.acquire(user, k, scopes).finally(() => this.inflight.delete(k));
    this.inflight.set(k, acquiring);
    return acquiring;
  }

  /** Drops the user's access token from memory (e.g. after Graph refused it). */
  forget(user: UserRef): void {
    const prefix = `${userKey(user)}|`;
    for (const k of this.tokens.keys()) if (k.startsWith(prefix)) this.tokens.delete(k);
  }

  private async acquire(user: UserRef, k: string, scopes: readonly string[] | undefined): Promise<string> {
    const generation = this.optOuts.since(user);
    const stored = await this.store.load(user);
    if (!stored) throw notRegistered();
    let redeemed: Awaited<ReturnType<RefreshTokenRedeemer['redeem']>>;
    try {
      redeemed = await this.redeemer.redeem(user, stored.refreshToken, scopes);
      this.telemetry.trackMetric('RefreshTokenRedemptions', 1, { outcome: 'redeemed' });
    } catch (err) {
      this.telemetry.trackMetric('RefreshTokenRedemptions', 1, { outcome: codeOf(err) });
      if (isAppError(err) && err.code === 'invalid_grant') {
        // A revoked or expired token can never work again: keep no dead credential around. Only
        // that version: the user may have stored a new one since it was read.
        await this.store.deleteIfCurrent(user, stored.version).then(
          (deleted) => deleted && this.stored(user, 'RefreshTokenDeleted', 'revoked'),
          (deleteErr: unknown) =>
            this.log.warn('Deleting a revoked refresh token failed.', { code: codeOf(deleteErr) }),
        );
      }
      throw err;
    }
    if (this.optOuts.optedOutSince(user, generation)) {
      // The user opted out while this was redeemed: no token of theirs may be kept or used.
      this.redeemer.forget(user);
      throw notRegistered();
    }
    if (redeemed.refreshToken && this.now() - stored.storedAt.getTime() > this.rewriteAfterMs) {
      const rotated = redeemed.refreshToken;
      await this.optOuts
        .write(user, generation, async () => {
          if (await this.store.replace(user, rotated, stored.version)) {
            this.stored(user, 'RefreshTokenStored', 'rotated');
          }
        })
        .catch((err: unknown) =>
          // The stored token still works for weeks: a failed rewrite is retried at the next refresh.
          this.log.warn('Writing back the rotated refresh token failed.', { code: codeOf(err) }),
        );
      if (this.optOuts.optedOutSince(user, generation)) {
        this.redeemer.forget(user);
        throw notRegistered();
      }
    }
    this.tokens.delete(k);
    this.tokens.set(k, { accessToken: redeemed.accessToken, expiresAt: redeemed.expiresOn.getTime() });
    if (this.tokens.size > this.maxUsers) this.tokens.delete(this.tokens.keys().next().value!);
    return redeemed.accessToken;
  }

  private stored(user: UserRef, event: 'RefreshTokenStored' | 'RefreshTokenDeleted', cause: string): void {
    this.telemetry.trackEvent(event, { tenantId: user.tenantId, userId: user.userId, cause });
  }
}

function notRegistered(): AppError {
  return new AppError('not_registered', {
    detail:
      'No refresh token is stored for this user: they must open the client app (PUT /api/me/registration).',
  });
}

function codeOf(err: unknown): string {
  return isAppError(err) ? err.code : 'internal_error';
}
