// Reads a PKCS#12 (.p12/.pfx) file into its certificates and private key with Node's own crypto
// (Node parses neither the container nor its password-based encryption, only what is inside).
// It covers what App Service and Key Vault hand out and what OpenSSL 3 writes: PBES2 (PBKDF2 with
// AES or 3DES) and PKCS#12's own pbeWithSHAAnd3-KeyTripleDES-CBC. RC2 (OpenSSL's -legacy export)
// is not available in Node's OpenSSL 3 without the legacy provider and is refused by name.
import { createDecipheriv, createHash, createPrivateKey, pbkdf2Sync, type KeyObject } from 'node:crypto';
import { children, DerError, expect, integer, octets, oid, parse, TAG, type Element } from './der';

export interface Pkcs12Contents {
  /** Every certificate in the file, DER, in file order. */
  certificates: Buffer[];
  privateKey: KeyObject;
}

export class Pkcs12Error extends Error {
  override readonly name = 'Pkcs12Error';
}

const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  keyBag: '1.2.840.113549.1.12.10.1.1',
  shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbeSha1TripleDes: '1.2.840.113549.1.12.1.3',
  pbeSha1Rc2_128: '1.2.840.113549.1.12.1.5',
  pbeSha1Rc2_40: '1.2.840.113549.1.12.1.6',
} as const;

const PRF: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};

const CIPHERS: Record<string, { name: string; keyLength: number }> = {
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24 },
};

/**
 * The certificates and the private key of a PKCS#12 file. `password` is empty for the files App
 * Service loads. Pure apart from the CPU the key derivation costs. Throws `Pkcs12Error` saying what
 * it could not read (never the password or key material).
 */
export function readPkcs12(data: Buffer, password = ''): Pkcs12Contents {
  try {
    return readPfx(data, password);
  } catch (err) {
    if (err instanceof DerError) throw new Pkcs12Error(`not a readable PKCS#12 file (${err.message})`);
    throw err;
  }
}

function readPfx(data: Buffer, password: string): Pkcs12Contents {
  const [version, authSafe] = children(expect(parse(data), TAG.sequence, 'a PFX'));
  if (!version || integer(version) !== 3) throw new Pkcs12Error('not a PKCS#12 v3 file');
  const authenticatedSafe = dataContent(expect(authSafe, TAG.sequence, 'the authenticated safe'));
  const certificates: Buffer[] = [];
  const keys: KeyObject[] = [];
  for (const contentInfo of children(expect(parse(authenticatedSafe), TAG.sequence, 'the safes'))) {
    for (const bag of children(expect(parse(safeContents(contentInfo, password)), TAG.sequence, 'a safe'))) {
      const [bagId, wrapped] = children(expect(bag, TAG.sequence, 'a bag'));
      const value = children(expect(wrapped, TAG.context0, 'a bag value'))[0];
      if (!bagId || !value) throw new Pkcs12Error('a bag without a value');
      switch (oid(bagId)) {
        case OID.certBag: {
          const [certId, certValue] = children(expect(value, TAG.sequence, 'a certificate bag'));
          if (certId && oid(certId) === OID.x509Certificate && certValue) {
            certificates.push(octets(expect(children(certValue)[0], TAG.octetString, 'a certificate')));
          }
          break;
        }
        case OID.keyBag:
          keys.push(createPrivateKey({ key: value.raw, format: 'der', type: 'pkcs8' }));
          break;
        case OID.shroudedKeyBag: {
          const [algorithm, encrypted] = children(expect(value, TAG.sequence, 'an encrypted key'));
          if (!algorithm || !encrypted) throw new Pkcs12Error('an encrypted key without its algorithm');
          const pkcs8 = decrypt(algorithm, octets(encrypted), password);
          keys.push(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }));
          break;
        }
        default:
          // CRL and secret bags: nothing a client credential needs.
          break;
      }
    }
  }
  const privateKey = keys[0];
  if (!privateKey) throw new Pkcs12Error('the file holds no private key');
  if (keys.length > 1) throw new Pkcs12Error('the file holds more than one private key');
  return { certificates, privateKey };
}

/** The octets of a ContentInfo of type data. */
function dataContent(contentInfo: Element): Buffer {
  const [type, content] = children(contentInfo);
  if (!type || oid(type) !== OID.data || !content) throw new Pkcs12Error('expected plain data content');
  return octets(expect(children(content)[0], TAG.octetString, 'data octets'));
}

/** A safe's contents: plain, or password-encrypted (EncryptedData). Public-key encryption is not used by App Service. */
function safeContents(contentInfo: Element, password: string): Buffer {
  const [type, content] = children(expect(contentInfo, TAG.sequence, 'a safe'));
  if (!type || !content) throw new Pkcs12Error('a safe without content');
  const kind = oid(type);
  if (kind === OID.data) return dataContent(contentInfo);
  if (kind !== OID.encryptedData) throw new Pkcs12Error(`unsupported safe type ${kind}`);
  const [, encryptedContentInfo] = children(expect(children(content)[0], TAG.sequence, 'encrypted data'));
  const [, algorithm, encrypted] = children(expect(encryptedContentInfo, TAG.sequence, 'encrypted content'));
  if (!algorithm || !encrypted) throw new Pkcs12Error('encrypted data without its algorithm or content');
  // [0] IMPLICIT OCTET STRING: primitive in DER, possibly constructed (chunked) in BER.
  const bytes = encrypted.constructed ? Buffer.concat(children(encrypted).map(octets)) : encrypted.content;
  return decrypt(algorithm, bytes, password);
}

/** Decrypts with a password-based scheme; `algorithm` is its AlgorithmIdentifier. */
function decrypt(algorithm: Element, data: Buffer, password: string): Buffer {
  const [algOid, params] = children(expect(algorithm, TAG.sequence, 'an algorithm'));
  if (!algOid || !params) throw new Pkcs12Error('an algorithm without parameters');
  const scheme = oid(algOid);
  if (scheme === OID.pbes2) return pbes2(params, data, password);
  if (scheme === OID.pbeSha1TripleDes) {
    const [salt, iterations] = children(expect(params, TAG.sequence, 'PBE parameters'));
    if (!salt || !iterations) throw new Pkcs12Error('PBE parameters incomplete');
    const saltBytes = octets(salt);
    const count = integer(iterations);
    // An empty password is a BMPString of just its terminator for some writers and no bytes at
    // all for others: whichever decrypts to well-formed DER is the one.
    return firstThatDecrypts(
      bmpPasswords(password).map((pw) => () => {
        const key = pkcs12Kdf(pw, saltBytes, 1, count, 24);
        const iv = pkcs12Kdf(pw, saltBytes, 2, count, 8);
        return decipher('des-ede3-cbc', key, iv, data);
      }),
    );
  }
  if (scheme === OID.pbeSha1Rc2_40 || scheme === OID.pbeSha1Rc2_128) {
    throw new Pkcs12Error(
      'it is encrypted with RC2 (a legacy export), which Node cannot decrypt: export it again with AES (or 3DES)',
    );
  }
  throw new Pkcs12Error(`unsupported encryption ${scheme}`);
}

function pbes2(params: Element, data: Buffer, password: string): Buffer {
  const [kdf, scheme] = children(expect(params, TAG.sequence, 'PBES2 parameters'));
  const [kdfOid, kdfParams] = children(expect(kdf, TAG.sequence, 'a key derivation'));
  if (!kdfOid || oid(kdfOid) !== OID.pbkdf2 || !kdfParams) throw new Pkcs12Error('PBES2 without PBKDF2');
  const [salt, iterations, ...rest] = children(expect(kdfParams, TAG.sequence, 'PBKDF2 parameters'));
  if (!salt || !iterations) throw new Pkcs12Error('PBKDF2 parameters incomplete');
  // keyLength (an INTEGER) is optional, and so is the PRF (default HMAC-SHA1).
  const prfElement = rest.find((e) => e.tag === TAG.sequence);
  const prfOid = prfElement ? children(prfElement)[0] : undefined;
  const digest = prfOid ? PRF[oid(prfOid)] : 'sha1';
  if (!digest) throw new Pkcs12Error('unsupported PBKDF2 pseudo-random function');
  const [cipherOid, iv] = children(expect(scheme, TAG.sequence, 'an encryption scheme'));
  const cipher = cipherOid ? CIPHERS[oid(cipherOid)] : undefined;
  if (!cipher || !iv) throw new Pkcs12Error('unsupported PBES2 cipher');
  const key = pbkdf2Sync(
    Buffer.from(password, 'utf8'),
    octets(salt),
    integer(iterations),
    cipher.keyLength,
    digest,
  );
  return firstThatDecrypts([() => decipher(cipher.name, key, octets(iv), data)]);
}

function decipher(name: string, key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const d = createDecipheriv(name, key, iv);
  return Buffer.concat([d.update(data), d.final()]);
}

/** The first attempt that decrypts to one whole DER element; a wrong key fails padding or parsing. */
function firstThatDecrypts(attempts: Array<() => Buffer>): Buffer {
  for (const attempt of attempts) {
    try {
      const plain = attempt();
      if (parse(plain).raw.length === plain.length) return plain;
    } catch {
      // Bad padding or not DER: the next candidate, or the error below.
    }
  }
  throw new Pkcs12Error('it cannot be decrypted without a password (App Service loads password-less files)');
}

/** The password as PKCS#12's BMPString with its two-byte terminator; for an empty one, also no bytes. */
function bmpPasswords(password: string): Buffer[] {
  const bmp = Buffer.alloc((password.length + 1) * 2);
  for (let i = 0; i < password.length; i++) bmp.writeUInt16BE(password.charCodeAt(i), i * 2);
  return password === '' ? [bmp, Buffer.alloc(0)] : [bmp];
}

/** PKCS#12's key derivation with SHA-1 (RFC 7292, appendix B.2). `id` 1 is key material, 2 an IV. */
function pkcs12Kdf(password: Buffer, salt: Buffer, id: number, iterations: number, length: number): Buffer {
  const u = 20;
  const v = 64;
  const fill = (source: Buffer): Buffer => {
    if (source.length === 0) return Buffer.alloc(0);
    const out = Buffer.alloc(v * Math.ceil(source.length / v));
    for (let i = 0; i < out.length; i++) out[i] = source[i % source.length]!;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([fill(salt), fill(password)]);
  const result: Buffer[] = [];
  for (let produced = 0; produced < length; produced += u) {
    let A = createHash('sha1').update(D).update(I).digest();
    for (let i = 1; i < iterations; i++) A = createHash('sha1').update(A).digest();
    result.push(A);
    const B = fill(A);
    // I_j = (I_j + B + 1) mod 2^(v*8), for each v-byte block of I.
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = I[j + k]! + B[k]! + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(result).subarray(0, length);
}
