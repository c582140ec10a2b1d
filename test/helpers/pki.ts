// Throw-away PKIs for tests, made with Baton's own `pki` code.
import { webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata'; // @peculiar/x509 needs it, loaded first
import * as x509 from '@peculiar/x509';
import { initCa, issueCert, pkiPaths } from '../../lib/pki.ts';

export interface TestPki {
  dir: string;
  ca: string;
  cert(name: string): string;
  key(name: string): string;
  /** Issues a certificate for `name` unless it exists already. */
  issue(name: string, altNames?: string[]): Promise<void>;
  remove(): void;
}

export async function makePki(names: string[] = [], prefix = 'baton-pki-'): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  await initCa(dir);
  const paths = pkiPaths(dir);
  const issued = new Set<string>();
  const pki: TestPki = {
    dir,
    ca: paths.caCert,
    cert: paths.cert,
    key: paths.key,
    async issue(name, altNames) {
      if (issued.has(name)) return;
      issued.add(name);
      await issueCert(dir, name, { altNames });
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  await pki.issue('broker', ['localhost', '127.0.0.1']);
  for (const n of names) await pki.issue(n);
  return pki;
}

/**
 * Writes a CRL of the test CA that revokes the certificates of `names` (as `puppetserver ca
 * revoke` would) to `<dir>/revoked.pem`; returns its path. The test CA's key is EC P-256.
 */
export async function writeRevocationList(pki: TestPki, names: string[]): Promise<string> {
  const paths = pkiPaths(pki.dir);
  const ca = new x509.X509Certificate(readFileSync(paths.caCert, 'utf8'));
  const der = x509.PemConverter.decode(readFileSync(paths.caKey, 'utf8'))[0]!;
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const signingKey = await webcrypto.subtle.importKey('pkcs8', der, alg, false, ['sign']);
  const now = Date.now();
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.subject,
    thisUpdate: new Date(now - 60_000),
    nextUpdate: new Date(now + 86_400_000),
    signingKey: signingKey as unknown as Parameters<typeof x509.X509CrlGenerator.create>[0]['signingKey'],
    signingAlgorithm: alg,
    entries: names.map((n) => ({ serialNumber: new x509.X509Certificate(readFileSync(pki.cert(n), 'utf8')).serialNumber, revocationDate: new Date(now - 30_000) })),
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca)],
  });
  const file = join(pki.dir, 'revoked.pem');
  writeFileSync(file, x509.PemConverter.encode(crl.rawData, 'X509 CRL'));
  return file;
}
