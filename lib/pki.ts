// A small certificate authority for Baton (`baton pki`), built on @peculiar/x509 and WebCrypto.
// Layout of DIR (like a Puppet ssldir): certs/ca.pem, ca/ca_key.pem, certs/NAME.pem, private_keys/NAME.pem,
// and crl.pem once something needs a CRL (Puppet agents do). `importPuppetCa` makes DIR from an
// existing Puppet CA instead, so that `issueCert` signs with the Puppet CA's key.
import { createPrivateKey, randomBytes, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it, loaded first
import * as x509 from '@peculiar/x509';
import { BatonError } from '../protocol/errors.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const PkiErrorCode = {
  exists: 'pki/exists',
  noCa: 'pki/no-ca',
  badName: 'pki/bad-name',
  notPuppetCa: 'pki/not-a-puppet-ca',
  keyMismatch: 'pki/key-mismatch',
} as const;

export class PkiError extends BatonError {}

export type KeyType = 'ec' | 'rsa';
export const DEFAULT_KEY_TYPE: KeyType = 'ec';
export const CA_VALIDITY_DAYS = 15 * 365;
export const CERT_VALIDITY_DAYS = 5 * 365;
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

const KEY_ALGORITHMS = {
  ec: {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
  },
  rsa: {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  },
} as const;

export interface PkiPaths {
  caCert: string;
  caKey: string;
  /** The CA's certificate revocation list (made by ensureCrl, or a Puppet CA's ca_crl.pem). */
  crl: string;
  cert(name: string): string;
  key(name: string): string;
}

export function pkiPaths(dir: string): PkiPaths {
  return {
    caCert: join(dir, 'certs', 'ca.pem'),
    caKey: join(dir, 'ca', 'ca_key.pem'),
    crl: join(dir, 'crl.pem'),
    cert: (name) => join(dir, 'certs', `${name}.pem`),
    key: (name) => join(dir, 'private_keys', `${name}.pem`),
  };
}

export interface InitOptions {
  keyType?: KeyType;
  commonName?: string;
  force?: boolean;
}

/** Makes a CA in `dir`. Refuses to overwrite an existing one unless `force`. */
export async function initCa(dir: string, opts: InitOptions = {}): Promise<PkiPaths> {
  const paths = pkiPaths(dir);
  if (!opts.force && existsSync(paths.caCert)) {
    throw new PkiError(PkiErrorCode.exists, `a CA already exists in ${dir} (${paths.caCert}); use --force to replace it`);
  }
  const alg = KEY_ALGORITHMS[opts.keyType ?? DEFAULT_KEY_TYPE];
  const keys = (await webcrypto.subtle.generateKey(alg.generate, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [opts.commonName ?? `Baton CA ${new Date(now).toISOString().slice(0, 10)}`] }],
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + CA_VALIDITY_DAYS * DAY_MS),
    keys,
    signingAlgorithm: alg.sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeFile(paths.caKey, await privateKeyPem(keys.privateKey), 0o600);
  writeFile(paths.caCert, cert.toString('pem'), 0o644);
  return paths;
}

export interface IssueOptions {
  keyType?: KeyType;
  /** DNS names or IP addresses added to the subject alternative names (the name itself is always there). */
  altNames?: string[];
  force?: boolean;
}

/** Issues a key and a certificate with CN=name, signed by the CA in `dir`. */
export async function issueCert(dir: string, name: string, opts: IssueOptions = {}): Promise<{ cert: string; key: string }> {
  if (!NAME_RE.test(name)) {
    throw new PkiError(PkiErrorCode.badName, `'${name}' is not a valid certificate name (letters, digits, '.', '_' and '-')`);
  }
  const paths = pkiPaths(dir);
  if (!existsSync(paths.caCert) || !existsSync(paths.caKey)) {
    throw new PkiError(PkiErrorCode.noCa, `no CA in ${dir}; run 'baton pki init --dir ${dir}' first`);
  }
  if (!opts.force && existsSync(paths.cert(name))) {
    throw new PkiError(PkiErrorCode.exists, `a certificate for '${name}' already exists (${paths.cert(name)}); use --force to replace it`);
  }
  const caCert = new x509.X509Certificate(readFileSync(paths.caCert, 'utf8'));
  const caKey = await importPrivateKey(readFileSync(paths.caKey, 'utf8'));
  const alg = KEY_ALGORITHMS[opts.keyType ?? DEFAULT_KEY_TYPE];
  const keys = (await webcrypto.subtle.generateKey(alg.generate, true, ['sign', 'verify'])) as CryptoKeyPair;
  const altNames = [...new Set([name, ...(opts.altNames ?? [])])].map((n) => ({ type: isIP(n) ? 'ip' : 'dns', value: n }) as const);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [name] }],
    issuer: caCert.subject,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(Math.min(now + CERT_VALIDITY_DAYS * DAY_MS, caCert.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey: caKey.key,
    signingAlgorithm: caKey.sign,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(altNames),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  writeFile(paths.key(name), await privateKeyPem(keys.privateKey), 0o600);
  writeFile(paths.cert(name), cert.toString('pem'), 0o644);
  return { cert: paths.cert(name), key: paths.key(name) };
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return bytes.toString('hex');
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importPrivateKey(pem: string): Promise<{ key: CryptoKey; sign: (typeof KEY_ALGORITHMS)[KeyType]['sign'] }> {
  const type: KeyType = createPrivateKey(pem).asymmetricKeyType === 'rsa' ? 'rsa' : 'ec';
  const alg = KEY_ALGORITHMS[type];
  const der = x509.PemConverter.decodeFirst(pem);
  const key = await webcrypto.subtle.importKey('pkcs8', der, alg.generate, false, ['sign']);
  return { key, sign: alg.sign };
}

function writeFile(path: string, text: string, mode: number): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: mode === 0o600 ? 0o700 : 0o755 });
  writeFileSync(path, text, { mode });
}

// ---------------------------------------------------------------------------------------------
// A CRL, and a Puppet CA as a Baton PKI directory

/** Whether the first CRL in `crlFile` is signed by the CA in `caCertFile`. */
async function crlSignedBy(crlFile: string, caCertFile: string): Promise<boolean> {
  try {
    const crl = new x509.X509Crl(readFileSync(crlFile, 'utf8'));
    const ca = new x509.X509Certificate(readFileSync(caCertFile, 'utf8'));
    return await crl.verify({ publicKey: ca.publicKey });
  } catch {
    return false;
  }
}

/**
 * The CA's CRL (`crl.pem`): kept when it is signed by the CA (a Puppet CA's own, after import),
 * else made: empty, signed by the CA, valid as long as the CA. Returns its path.
 */
export async function ensureCrl(dir: string): Promise<string> {
  const paths = pkiPaths(dir);
  if (!existsSync(paths.caCert) || !existsSync(paths.caKey)) {
    throw new PkiError(PkiErrorCode.noCa, `no CA in ${dir}; run 'baton pki init --dir ${dir}' first`);
  }
  if (existsSync(paths.crl) && (await crlSignedBy(paths.crl, paths.caCert))) return paths.crl;
  await writeCrl(dir, paths.crl, []);
  return paths.crl;
}

/**
 * Writes to `file` a CRL signed by the CA in `dir`, valid as long as the CA, revoking the
 * certificates with these serial numbers (hex, as X509Certificate.serialNumber gives them).
 */
export async function writeCrl(dir: string, file: string, revokedSerials: readonly string[]): Promise<void> {
  const paths = pkiPaths(dir);
  const ca = new x509.X509Certificate(readFileSync(paths.caCert, 'utf8'));
  const caKey = await importPrivateKey(readFileSync(paths.caKey, 'utf8'));
  const now = Date.now();
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.subject,
    thisUpdate: new Date(now - CLOCK_SKEW_MS),
    nextUpdate: ca.notAfter,
    signingKey: caKey.key as unknown as Parameters<typeof x509.X509CrlGenerator.create>[0]['signingKey'],
    signingAlgorithm: caKey.sign,
    entries: revokedSerials.map((serialNumber) => ({ serialNumber, revocationDate: new Date(now - CLOCK_SKEW_MS) })),
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(ca),
      new x509.Extension('2.5.29.20', false, new Uint8Array([0x02, 0x01, 0x01])), // cRLNumber 1
    ],
  });
  // OpenSSL (Puppet's Ruby) reads only the "X509 CRL" label.
  writeFile(file, x509.PemConverter.encode(crl.rawData, 'X509 CRL'), 0o644);
}

/** The files of a Puppet CA directory (Puppet Server's `cadir`). */
export const PUPPET_CA_FILES = { cert: 'ca_crt.pem', key: 'ca_key.pem', crl: 'ca_crl.pem' } as const;

export interface PuppetCaImport extends PkiPaths {
  /** The Puppet CA directory the files came from. */
  cadir: string;
  /** The signing CA's subject, and how many certificates the chain in certs/ca.pem has. */
  subject: string;
  chainLength: number;
  /** Whether the Puppet CA's CRL was imported (else ensureCrl makes one when needed). */
  crlImported: boolean;
}

/** `from` itself when it holds ca_crt.pem (Puppet Server 7's cadir), else `from/ca` (an older ssldir). */
export function findPuppetCadir(from: string): string {
  for (const dir of [from, join(from, 'ca')]) if (existsSync(join(dir, PUPPET_CA_FILES.cert)) && existsSync(join(dir, PUPPET_CA_FILES.key))) return dir;
  throw new PkiError(
    PkiErrorCode.notPuppetCa,
    `no Puppet CA in ${from}: neither ${join(from, PUPPET_CA_FILES.cert)} nor ${join(from, 'ca', PUPPET_CA_FILES.cert)} exists with its ${PUPPET_CA_FILES.key} (Puppet Server 7's CA directory is its cadir: /etc/puppetlabs/puppetserver/ca, on Debian /etc/puppet/puppetserver/ca)`,
  );
}

/**
 * Makes the PKI directory `dir` from a Puppet CA: certs/ca.pem is its ca_crt.pem (the signing CA
 * first, then the rest of its chain), ca/ca_key.pem its key (as PKCS#8), crl.pem its ca_crl.pem.
 * Certificates issued from `dir` afterwards are signed by the Puppet CA; the Puppet CA's own
 * inventory and serial file do not learn of them (serials are random, 128 bits).
 */
export async function importPuppetCa(dir: string, from: string, opts: { force?: boolean } = {}): Promise<PuppetCaImport> {
  const cadir = findPuppetCadir(from);
  const paths = pkiPaths(dir);
  if (!opts.force && (existsSync(paths.caCert) || existsSync(paths.caKey))) {
    throw new PkiError(PkiErrorCode.exists, `a CA already exists in ${dir} (${paths.caCert}); use --force to replace it`);
  }
  const chainPem = readFileSync(join(cadir, PUPPET_CA_FILES.cert), 'utf8');
  const chain = x509.PemConverter.decode(chainPem).map((der) => new x509.X509Certificate(der));
  const signer = chain[0];
  if (!signer) throw new PkiError(PkiErrorCode.notPuppetCa, `${join(cadir, PUPPET_CA_FILES.cert)} holds no certificate`);
  const isCa = signer.getExtension(x509.BasicConstraintsExtension)?.ca === true;
  if (!isCa) throw new PkiError(PkiErrorCode.notPuppetCa, `the first certificate of ${join(cadir, PUPPET_CA_FILES.cert)} (${signer.subject}) is not a CA certificate`);
  let key;
  try {
    key = createPrivateKey(readFileSync(join(cadir, PUPPET_CA_FILES.key), 'utf8'));
  } catch (err) {
    throw new PkiError(PkiErrorCode.notPuppetCa, `${join(cadir, PUPPET_CA_FILES.key)} is not a private key: ${(err as Error).message}`, { cause: err });
  }
  if (!new NodeX509Certificate(Buffer.from(signer.rawData)).checkPrivateKey(key)) {
    throw new PkiError(PkiErrorCode.keyMismatch, `${join(cadir, PUPPET_CA_FILES.key)} is not the key of ${signer.subject}, the first certificate of ${join(cadir, PUPPET_CA_FILES.cert)}`);
  }
  writeFile(paths.caKey, key.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  writeFile(paths.caCert, chain.map((c) => c.toString('pem')).join('\n') + '\n', 0o644);
  const crlFile = join(cadir, PUPPET_CA_FILES.crl);
  const crlImported = existsSync(crlFile) && (await crlSignedBy(crlFile, paths.caCert));
  if (crlImported) writeFile(paths.crl, readFileSync(crlFile, 'utf8'), 0o644);
  else rmSync(paths.crl, { force: true }); // a CRL of a CA replaced with --force
  return { ...paths, cadir, subject: signer.subject, chainLength: chain.length, crlImported };
}
