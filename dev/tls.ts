import { createHash, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { APP_ROOT } from './root';

/** Where the local stack keeps what it creates once: git-ignored, never deployed. */
export const LOCAL_DIR = path.join(APP_ROOT, '.local');
const TLS_DIR = path.join(LOCAL_DIR, 'tls');

export interface LocalTls {
  /** PEM of the local CA: what `NODE_EXTRA_CA_CERTS` points at. */
  caPath: string;
  ca: string;
  /** Server certificate for 127.0.0.1 / localhost / ::1, signed by the CA. */
  cert: string;
  key: string;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

/**
 * A new CA (its private key kept only in memory, so nothing can be signed with it later) and a
 * server certificate it signed for 127.0.0.1 / localhost / ::1, all as PEM.
 */
export async function createLoopbackTls(
  caName = 'graph-notify local development CA',
): Promise<{ ca: string; cert: string; key: string }> {
  x509.cryptoProvider.set(webcrypto as never);
  const now = Date.now();
  const caKeys = await webcrypto.subtle.generateKey(ALG, false, ['sign', 'verify']);
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Date.now().toString(16),
    name: `CN=${caName}`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 825 * DAY),
    keys: caKeys as never,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leafKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: (Date.now() + 1).toString(16),
    subject: 'CN=localhost',
    issuer: caCert.subject,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 825 * DAY),
    signingKey: caKeys.privateKey as never,
    publicKey: leafKeys.publicKey as never,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
  return {
    ca: caCert.toString('pem') + '\n',
    cert: leaf.toString('pem') + '\n',
    key: toPem(pkcs8, 'PRIVATE KEY'),
  };
}

function stillValid(certPem: string): boolean {
  const cert = new x509.X509Certificate(certPem);
  return cert.notAfter.getTime() - Date.now() > 30 * DAY;
}

/**
 * The local CA and server certificate, created on first use and kept under `.local/tls`.
 * Side effect: writes three PEM files there (the CA's private key is never written: a new
 * certificate means a new CA, so nothing can be signed with it later).
 */
export async function ensureLocalTls(): Promise<LocalTls> {
  const caPath = path.join(TLS_DIR, 'ca.pem');
  const certPath = path.join(TLS_DIR, 'server.pem');
  const keyPath = path.join(TLS_DIR, 'server-key.pem');
  if (existsSync(caPath) && existsSync(certPath) && existsSync(keyPath)) {
    const cert = readFileSync(certPath, 'utf8');
    if (stillValid(cert)) {
      return { caPath, ca: readFileSync(caPath, 'utf8'), cert, key: readFileSync(keyPath, 'utf8') };
    }
  }
  const made = await createLoopbackTls();
  mkdirSync(TLS_DIR, { recursive: true });
  // Written beside and renamed so a concurrent reader never sees half a file; the CA goes last
  // because its presence is what marks the set complete.
  for (const [file, text] of [
    [keyPath, made.key],
    [certPath, made.cert],
    [caPath, made.ca],
  ] as const) {
    writeFileSync(`${file}.${process.pid}.tmp`, text, { mode: 0o600 });
    renameSync(`${file}.${process.pid}.tmp`, file);
  }
  return { caPath, ...made };
}

/**
 * The file a process must get as `NODE_EXTRA_CA_CERTS` (read by Node only as a process starts, and
 * only one file) to trust what the environment trusts and, when `local` is given because a
 * stand-in was started, the local CA as well:
 * - no local CA needed: the environment's file as it is (or none);
 * - no CA in the environment: the local CA;
 * - both: a bundle of the two under `.local/tls`, named by its content so that concurrent stacks
 *   share it (the environment's file is left as it is, and used as it is when it already holds the
 *   local CA).
 * Side effect: may write that bundle. Throws when the environment's file cannot be read: silently
 * dropping the user's CA is what made every given endpoint unreachable.
 */
export function trustedCaFile(
  envCaPath: string | undefined,
  local: LocalTls | undefined,
): string | undefined {
  const own = envCaPath?.trim() || undefined;
  if (!local) return own;
  if (!own) return local.caPath;
  let text: string;
  try {
    text = readFileSync(path.resolve(own), 'utf8');
  } catch (err) {
    throw new Error(
      `NODE_EXTRA_CA_CERTS names ${own}, which cannot be read (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (text.includes(local.ca.trim())) return own;
  const bundle = `${text.trimEnd()}\n${local.ca}`;
  const file = path.join(
    TLS_DIR,
    `trust-${createHash('sha256').update(bundle).digest('hex').slice(0, 16)}.pem`,
  );
  if (!existsSync(file)) {
    mkdirSync(TLS_DIR, { recursive: true });
    writeFileSync(`${file}.${process.pid}.tmp`, bundle);
    renameSync(`${file}.${process.pid}.tmp`, file);
  }
  return file;
}
