// Chef request signing for tests, by Chef's own library: runs test/helpers/chef-sign.rb (Ruby's
// mixlib-authentication), one Ruby process per batch of requests. Tests skip themselves with
// chefSigningMissing()'s message where Ruby or the library is not installed.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./chef-sign.rb', import.meta.url));
/** Bound on one batch: Ruby's start plus about 1 ms per 2048-bit signature. */
const SIGN_TIMEOUT_MS = 120_000;
const PROBE_TIMEOUT_MS = 30_000;

export interface ChefSignInput {
  /** PEM RSA private key file. */
  key_path: string;
  userid: string;
  method: string;
  /** The path signed (no query string). */
  path: string;
  /** The body signed ('' without one). */
  body: string;
  version: '1.0' | '1.1' | '1.3';
  /** Any time Ruby's Time.parse reads; now by default. X-Ops-Timestamp is its canonical form. */
  timestamp?: string;
  /** Sent as X-Ops-Server-API-Version (and covered by version 1.3); absent by default (= "0"). */
  server_api_version?: string;
  /** The algorithm asked of mixlib-authentication; the version's own by default. */
  algorithm?: string;
}

/** Headers as mixlib-authentication names them: X-Ops-Sign, X-Ops-Userid, X-Ops-Authorization-1, ... */
export type ChefSignedHeaders = Record<string, string>;

let missingCache: string | null | undefined;

/** Why requests cannot be signed by mixlib-authentication here, or null when they can. */
export function chefSigningMissing(): string | null {
  if (missingCache !== undefined) return missingCache;
  const probe = spawnSync('ruby', ['-e', 'require "openssl"; require "mixlib/authentication/signedheaderauth"'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  if (probe.error) missingCache = `ruby is not installed (${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}); install the Debian package ruby-mixlib-authentication`;
  else if (probe.status !== 0) missingCache = `Ruby's mixlib-authentication is not installed (${probe.stderr.trim().split('\n')[0] ?? ''}); install the Debian package ruby-mixlib-authentication`;
  else missingCache = null;
  return missingCache;
}

/** Signs each request with mixlib-authentication (one Ruby process for all); the headers in order. */
export function signChefRequests(inputs: readonly ChefSignInput[]): Promise<ChefSignedHeaders[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('ruby', [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], timeout: SIGN_TIMEOUT_MS });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString().trim();
      if (code !== 0) return reject(new Error(`ruby ${SCRIPT} exited with ${code ?? signal}: ${stderr}`));
      let results: (ChefSignedHeaders & { error?: string })[];
      try {
        results = JSON.parse(Buffer.concat(out).toString()) as typeof results;
      } catch (cause) {
        return reject(new Error(`ruby ${SCRIPT} printed no JSON: ${stderr}`, { cause }));
      }
      const failed = results.findIndex((r) => r.error !== undefined);
      if (failed >= 0) return reject(new Error(`mixlib-authentication could not sign request ${failed} (${inputs[failed]!.method} ${inputs[failed]!.path}, version ${inputs[failed]!.version}): ${results[failed]!.error}`));
      resolve(results);
    });
    child.stdin.end(JSON.stringify(inputs));
  });
}

/** Writes `<name>.pem` (PKCS#1 private key, as Chef writes client keys) and `<name>.pub` (SPKI); their paths. */
export function writeRsaKeyPair(dir: string, name: string, bits = 2048): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const paths = { privateKey: join(dir, `${name}.pem`), publicKey: join(dir, `${name}.pub`) };
  writeFileSync(paths.privateKey, privateKey, { mode: 0o600 });
  writeFileSync(paths.publicKey, publicKey);
  return paths;
}

/** Headers as Node hands them to a server: lowercase names. */
export function asReceived(headers: ChefSignedHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}
