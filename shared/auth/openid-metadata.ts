import { AppError } from '../errors';

export interface OpenIdMetadata {
  issuer: string;
  token_endpoint: string;
  jwks_uri: string;
  [field: string]: unknown;
}

const RETRY_AFTER_SEC = 5;

function sameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === origin;
  } catch {
    return false;
  }
}

/**
 * The identity service's OpenID metadata for the app's tenant, read once per worker and shared by
 * the caller verifier (its `jwks_uri`) and the token service (handed to msal as
 * `authorityMetadata`). A failed read is not kept: the next caller tries again.
 */
export class OpenIdMetadataSource {
  private doc: Promise<OpenIdMetadata> | undefined;
  readonly url: string;

  constructor(
    private readonly authorityHost: string,
    tenantId: string,
    private readonly timeoutMs = 5000,
  ) {
    this.url = `${authorityHost}/${tenantId}/v2.0/.well-known/openid-configuration`;
  }

  /** Side effect: the first call (and the one after a failure) reads the document over HTTPS. */
  get(): Promise<OpenIdMetadata> {
    this.doc ??= this.read().catch((err: unknown) => {
      this.doc = undefined;
      throw err;
    });
    return this.doc;
  }

  private async read(): Promise<OpenIdMetadata> {
    let doc: Partial<OpenIdMetadata>;
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs) });
      if (!res.ok) throw new Error(`OpenID metadata answered ${res.status}`);
      doc = (await res.json()) as Partial<OpenIdMetadata>;
    } catch (err) {
      throw new AppError('upstream_unavailable', {
        detail: "The identity service's OpenID metadata could not be read.",
        retryAfterSeconds: RETRY_AFTER_SEC,
        cause: err,
      });
    }
    // msal checks the issuer only for metadata it fetched itself, and jose takes the key set's
    // address from here: everything named must belong to the configured identity service.
    const origin = new URL(this.authorityHost).origin;
    const { issuer, token_endpoint: tokenEndpoint, jwks_uri: jwksUri } = doc;
    if (
      typeof issuer !== 'string' ||
      typeof tokenEndpoint !== 'string' ||
      typeof jwksUri !== 'string' ||
      ![issuer, tokenEndpoint, jwksUri].every((u) => sameOrigin(u, origin))
    ) {
      throw new AppError('invalid_config', {
        detail: `The OpenID metadata at ${this.url} names an issuer, token endpoint or key set outside ${origin}.`,
      });
    }
    return doc as OpenIdMetadata;
  }
}
