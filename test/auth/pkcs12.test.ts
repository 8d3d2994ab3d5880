import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Pkcs12Error, readPkcs12 } from '../../shared/auth/pkcs12';
import { appServiceCertificate } from '../support/app-service-certificate';

describe('readPkcs12', () => {
  it.each(['aes', '3des'] as const)(
    'reads the certificate and key of a password-less file OpenSSL wrote (%s)',
    async (encryption) => {
      const cert = await appServiceCertificate(encryption);
      const contents = readPkcs12(readFileSync(cert.file));
      expect(contents.certificates).toHaveLength(1);
      const x509 = new X509Certificate(contents.certificates[0]!);
      expect(x509.raw.equals(new X509Certificate(cert.certPem).raw)).toBe(true);
      expect(x509.checkPrivateKey(contents.privateKey)).toBe(true);
      expect(contents.privateKey.export({ format: 'pem', type: 'pkcs8' })).toBe(
        createPrivateKey(cert.keyPem).export({ format: 'pem', type: 'pkcs8' }),
      );
    },
  );

  it('refuses a file that needs a password, and one that is not PKCS#12, saying why', async () => {
    const cert = await appServiceCertificate();
    const locked = path.join(cert.directory, 'locked.p12');
    execFileSync('openssl', [
      'pkcs12',
      '-export',
      '-in',
      path.join(cert.directory, `${cert.thumbprint}.pem`),
      '-passout',
      'pass:hunter2',
      '-out',
      locked,
    ]);
    expect(() => readPkcs12(readFileSync(locked))).toThrow(/cannot be decrypted without a password/);
    expect(readPkcs12(readFileSync(locked), 'hunter2').certificates).toHaveLength(1);
    expect(() => readPkcs12(Buffer.from(cert.certPem))).toThrow(Pkcs12Error);
  });
});
