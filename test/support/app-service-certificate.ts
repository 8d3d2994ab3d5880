import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { selfSignedCertificate, type ClientCertificate } from './certificate';

export interface AppServiceCertificate extends ClientCertificate {
  /** The SHA-1 thumbprint as App Service shows it (upper-case hex): WEBSITE_LOAD_CERTIFICATES. */
  thumbprint: string;
  /** Where the `.p12` is: what WEBSITE_PRIVATE_CERTS_PATH names in a test. */
  directory: string;
  file: string;
}

/**
 * A certificate as App Service on Linux loads it: a password-less PKCS#12 file named
 * `{thumbprint}.p12` in a directory of its own. Written by the OpenSSL command line, so the reader
 * is tested against another implementation's files: `aes` is OpenSSL 3's default (PBES2, PBKDF2,
 * AES-256-CBC), `3des` the older PKCS#12 PBE that Windows and Key Vault exports use.
 */
export async function appServiceCertificate(
  encryption: 'aes' | '3des' = 'aes',
  directory = mkdtempSync(path.join(tmpdir(), 'graph-notify-certs-')),
): Promise<AppServiceCertificate> {
  const certificate = await selfSignedCertificate('graph-notify app service certificate');
  const thumbprint = createHash('sha1')
    .update(new X509Certificate(certificate.certPem).raw)
    .digest('hex')
    .toUpperCase();
  const pem = path.join(directory, `${thumbprint}.pem`);
  writeFileSync(pem, certificate.pem, { mode: 0o600 });
  const file = path.join(directory, `${thumbprint}.p12`);
  const legacy =
    encryption === '3des' ? ['-certpbe', 'PBE-SHA1-3DES', '-keypbe', 'PBE-SHA1-3DES', '-macalg', 'sha1'] : [];
  execFileSync('openssl', ['pkcs12', '-export', '-in', pem, '-passout', 'pass:', ...legacy, '-out', file]);
  return { ...certificate, thumbprint, directory, file };
}
