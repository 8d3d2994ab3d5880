// The app's own credential in msal-node's terms, from the one the settings chose: a secret, a
// certificate (a PEM file, or the PKCS#12 file App Service loaded), or a managed identity's token
// presented as the client assertion (workload identity federation).
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { NodeAuthOptions } from '@azure/msal-node';
import type { ClientCredential } from '../config';
import { AppError } from '../errors';
import { DEPENDENCY_BUDGET } from '../http/dependency-budget';
import { boundedClientOptions } from './credential-on-first-use';
import { appServiceManagedIdentity } from './managed-identity';
import { Pkcs12Error, readPkcs12 } from './pkcs12';

export type MsalClientCredential = Pick<
  NodeAuthOptions,
  'clientSecret' | 'clientCertificate' | 'clientAssertion'
>;

/**
 * The audience Entra ID expects in a federated credential's token: a managed identity's token for
 * it is what a federated identity credential on the app registration trusts.
 */
export const TOKEN_EXCHANGE_SCOPE = 'api://AzureADTokenExchange/.default';

/**
 * msal-node's credential options for `credential`. Side effects: reads the certificate file now
 * (a certificate that cannot be used stops the app at startup); a managed identity is only checked
 * now (App Service advertises it) and asked for its token at the first grant, then again when the
 * credential's cached token nears expiry. Throws `invalid_config` naming the problem.
 */
export function msalClientCredential(
  credential: ClientCredential,
  env: Readonly<Record<string, string | undefined>>,
): MsalClientCredential {
  switch (credential.kind) {
    case 'secret':
      return { clientSecret: credential.secret };
    case 'certificate':
      return { clientCertificate: pemCertificate(credential.path) };
    case 'appServiceCertificate':
      return { clientCertificate: appServiceCertificate(credential.thumbprint, credential.directory) };
    case 'managedIdentity':
      return { clientAssertion: managedIdentityAssertion(credential.clientId, env) };
  }
}

/**
 * The assertion callback msal calls for each grant that goes to the identity service. The
 * ManagedIdentityCredential (App Service's endpoint only, never a chain that could fall through to
 * the instance-metadata address) caches the token until shortly before it expires.
 */
function managedIdentityAssertion(
  clientId: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): () => Promise<string> {
  const credential = appServiceManagedIdentity(
    env,
    clientId,
    'ENTRA_CLIENT_ASSERTION=managed-identity',
    // One try within the identity service's per-try budget: the grant waiting on it has no other.
    boundedClientOptions(
      { perTryMs: DEPENDENCY_BUDGET.identity.perTryMs, tries: 1, retryDelayMs: 0, deadlineMs: 0 },
      { deadline: false },
    ),
  );
  return async () => {
    let token: { token: string } | null;
    try {
      token = await credential.getToken(TOKEN_EXCHANGE_SCOPE);
    } catch (err) {
      throw new AppError('upstream_unavailable', {
        detail: "The app's managed identity could not get its token for the identity service.",
        retryAfterSeconds: 5,
        cause: err,
      });
    }
    if (!token) {
      throw new AppError('upstream_unavailable', {
        detail: "The app's managed identity returned no token for the identity service.",
        retryAfterSeconds: 5,
      });
    }
    return token.token;
  };
}

interface CertificateCredential {
  thumbprintSha256: string;
  privateKey: string;
  x5c: string;
}

/** A PEM file holding the certificate (and any chain) and its unencrypted private key. */
function pemCertificate(file: string): CertificateCredential {
  const invalid = (why: string, cause?: unknown) =>
    new AppError('invalid_config', { detail: `ENTRA_CLIENT_CERTIFICATE_PATH (${file}): ${why}`, cause });
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
  }
  const certificates = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const keyBlock = /-----BEGIN ((?:RSA |ENCRYPTED )?PRIVATE KEY)-----[\s\S]+?-----END \1-----/.exec(pem)?.[0];
  if (certificates.length === 0) throw invalid('holds no PEM certificate');
  if (!keyBlock) throw invalid('holds no PEM private key (the file must hold the certificate and its key)');
  let chain: X509Certificate[];
  try {
    chain = certificates.map((c) => new X509Certificate(c));
  } catch (err) {
    throw invalid('its certificate cannot be parsed', err);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyBlock);
  } catch (err) {
    throw invalid('its private key cannot be read (an encrypted key is not supported)', err);
  }
  return certificateCredential(chain, key, invalid);
}

/**
 * The certificate App Service loaded because WEBSITE_LOAD_CERTIFICATES names its thumbprint: on
 * Linux, a password-less PKCS#12 file `{thumbprint}.p12` in /var/ssl/private.
 */
function appServiceCertificate(thumbprint: string, directory: string): CertificateCredential {
  const invalid = (why: string, cause?: unknown) =>
    new AppError('invalid_config', {
      detail: `The certificate App Service loaded (WEBSITE_LOAD_CERTIFICATES ${thumbprint}): ${why}`,
      cause,
    });
  let names: string[];
  try {
    names = readdirSync(directory);
  } catch (err) {
    throw invalid(
      `${directory} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): is the certificate added to the app?`,
      err,
    );
  }
  // App Service names the file by the thumbprint as it shows it (upper case); accept either case.
  const name = names.find((n) => n.toLowerCase() === `${thumbprint}.p12`.toLowerCase());
  if (!name) {
    throw invalid(
      `no ${thumbprint}.p12 in ${directory}: is the certificate (with its private key) added to the app?`,
    );
  }
  let contents: ReturnType<typeof readPkcs12>;
  try {
    contents = readPkcs12(readFileSync(path.join(directory, name)));
  } catch (err) {
    if (err instanceof Pkcs12Error) throw invalid(err.message, err);
    throw invalid('cannot be read', err);
  }
  const chain = contents.certificates.map((der) => new X509Certificate(der));
  // The key's certificate first: it is the one Entra ID knows, the rest is its chain.
  const leafIndex = chain.findIndex((c) => c.checkPrivateKey(contents.privateKey));
  if (leafIndex < 0) throw invalid('the file holds no certificate for its private key');
  const ordered = [chain[leafIndex]!, ...chain.filter((_, i) => i !== leafIndex)];
  const sha1 = createHash('sha1').update(ordered[0]!.raw).digest('hex');
  if (sha1.toLowerCase() !== thumbprint.toLowerCase()) {
    throw invalid(`the file's certificate has the thumbprint ${sha1.toUpperCase()}`);
  }
  return certificateCredential(ordered, contents.privateKey, invalid);
}

/** Checks the leaf (first) certificate against its key, and puts both as msal-node takes them. */
function certificateCredential(
  chain: X509Certificate[],
  key: KeyObject,
  invalid: (why: string, cause?: unknown) => AppError,
): CertificateCredential {
  const leaf = chain[0]!;
  // msal-node signs the client assertion with PS256 when given a SHA-256 thumbprint.
  if (key.asymmetricKeyType !== 'rsa')
    throw invalid(`its key is ${key.asymmetricKeyType ?? 'unknown'}, not RSA`);
  if (!leaf.checkPrivateKey(key)) throw invalid('the private key does not belong to the certificate');
  if (Date.parse(leaf.validTo) <= Date.now()) throw invalid(`the certificate expired on ${leaf.validTo}`);
  return {
    // Hex, as msal-node expects; it sends it base64url-encoded as the assertion's x5t#S256.
    thumbprintSha256: createHash('sha256').update(leaf.raw).digest('hex'),
    privateKey: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    // The chain as PEM: msal sends it as x5c, which subject-name/issuer authentication (and so
    // rolling a certificate over without re-registering it) needs.
    x5c: chain.map((c) => c.toString()).join('\n'),
  };
}
