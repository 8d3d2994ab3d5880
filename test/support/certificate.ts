import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ClientCertificate {
  certPem: string;
  keyPem: string;
  /** Certificate and key in one PEM, as ENTRA_CLIENT_CERTIFICATE_PATH takes it. */
  pem: string;
  thumbprintSha256: string;
}

/** A self-signed RSA certificate with its key, for client-certificate authentication tests. */
export async function selfSignedCertificate(cn = 'graph-notify test client'): Promise<ClientCertificate> {
  x509.cryptoProvider.set(webcrypto as never);
  const alg = {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16),
    name: `CN=${cn}`,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + DAY_MS),
    keys: keys as never,
    signingAlgorithm: alg,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  const certPem = `${cert.toString('pem')}\n`;
  return {
    certPem,
    keyPem,
    pem: certPem + keyPem,
    thumbprintSha256: createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex'),
  };
}
