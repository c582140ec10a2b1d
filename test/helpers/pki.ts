// Throw-away PKIs for tests, made with Baton's own `pki` code.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueCert, pkiPaths, writeCrl } from '../../lib/pki.ts';

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
 * revoke` would) to `<dir>/revoked.pem`; returns its path.
 */
export async function writeRevocationList(pki: TestPki, names: string[]): Promise<string> {
  const file = join(pki.dir, 'revoked.pem');
  await writeCrl(pki.dir, file, names.map((n) => new X509Certificate(readFileSync(pki.cert(n))).serialNumber));
  return file;
}
