import { createPublicKey, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT, createLocalJWKSet, jwtVerify, type JWK, type JWTPayload, type JWTVerifyResult } from 'jose';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  jwk: JWK;
}

function newKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID().replace(/-/g, '').slice(0, 27);
  // Exported from the public half directly: jose refuses to export a non-extractable key.
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  return { kid, privateKey, jwk: { ...jwk, kid, use: 'sig', kty: 'RSA', alg: 'RS256' } };
}

/**
 * The Entra stand-in's token-signing keys: RS256, published as a JWKS, rotated on demand. The
 * previous key stays published after a rotation (as Entra ID keeps old keys in its JWKS for a
 * while), so tokens signed before the rotation still verify.
 */
export class SigningKeys {
  private keys: SigningKey[] = [newKey()];

  get current(): SigningKey {
    return this.keys[0]!;
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.keys.map((k) => k.jwk) };
  }

  /** Starts signing with a new key. `retireOld` drops every older key from the JWKS. */
  rotate(options: { retireOld?: boolean } = {}): string {
    const fresh = newKey();
    this.keys = options.retireOld ? [fresh] : [fresh, ...this.keys].slice(0, 3);
    return fresh.kid;
  }

  async sign(payload: JWTPayload, options: { kid?: string; typ?: string } = {}): Promise<string> {
    const key = options.kid ? this.keys.find((k) => k.kid === options.kid) : this.current;
    if (!key) throw new Error(`no signing key ${options.kid}`);
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', typ: options.typ ?? 'JWT', kid: key.kid })
      .sign(key.privateKey);
  }

  /** Verifies a token this authority issued (signature, expiry with 5 minutes skew, audience). */
  async verify(
    token: string,
    options: { audience?: string | string[]; issuer?: string | string[] } = {},
  ): Promise<JWTVerifyResult> {
    return jwtVerify(token, createLocalJWKSet(this.jwks()), { ...options, clockTolerance: 300 });
  }
}
