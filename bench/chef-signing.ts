// `npm run bench:chef-signing [-- --requests N --signer ruby|ts]`: the cost of verifying a Chef
// Server API request signature (orchestrator/chef/signing.ts) with a 2048-bit RSA key, per signing
// version. N requests per version (GETs without a body and POSTs with a JSON body, alternately)
// are signed beforehand, by Ruby's mixlib-authentication when it is installed, else by the
// TypeScript signer below (the output's `signer` says which); then each is verified once after a
// warm-up. `rsa_us` is the bare RSA operation on the same signatures, for the verifier's overhead.
// Prints one JSON line.
import { constants, createHash, createPrivateKey, createPublicKey, privateEncrypt, publicDecrypt, sign, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CHEF_SIGN_ALGORITHM_FOR_VERSION, chefStringToSign, DEFAULT_CHEF_CLOCK_SKEW_S, verifyChefRequest, type ChefSignVersion } from '../orchestrator/chef/signing.ts';
import { asReceived, chefSigningMissing, signChefRequests, writeRsaKeyPair, type ChefSignInput } from '../test/helpers/chef-sign.ts';
import { round } from './harness.ts';

const { values: args } = parseArgs({ options: { requests: { type: 'string', default: '3000' }, signer: { type: 'string', default: 'auto' } } });
const count = Number(args.requests);
const VERSIONS: readonly ChefSignVersion[] = ['1.0', '1.1', '1.3'];
const WARMUP = Math.min(500, count);
const BODY = JSON.stringify({ command: 'chef-client', nodes: ['web1.example.com', 'web2.example.com'], quorum: 2, run_timeout: 300 });

/** Signs as a Chef client does (for machines without Ruby's library): the same headers mixlib-authentication makes. */
function tsSign(input: ChefSignInput, key: KeyObject): Record<string, string> {
  const algorithm = CHEF_SIGN_ALGORITHM_FOR_VERSION[input.version];
  const contentHash = createHash(algorithm).update(input.body).digest('base64');
  const timestamp = `${new Date(input.timestamp!).toISOString().slice(0, 19)}Z`;
  const text = Buffer.from(chefStringToSign({ version: input.version, method: input.method, path: input.path, contentHash, timestamp, userid: input.userid, serverApiVersion: '0' }));
  const signature = input.version === '1.3' ? sign('sha256', text, key) : privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, text);
  const headers: Record<string, string> = { 'X-Ops-Sign': `algorithm=${algorithm};version=${input.version};`, 'X-Ops-Userid': input.userid, 'X-Ops-Timestamp': timestamp, 'X-Ops-Content-Hash': contentHash };
  signature.toString('base64').match(/.{1,60}/g)!.forEach((line, i) => (headers[`X-Ops-Authorization-${i + 1}`] = line));
  return headers;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

const dir = mkdtempSync(join(tmpdir(), 'baton-bench-chef-'));
try {
  const paths = writeRsaKeyPair(dir, 'bench-client', 2048);
  const publicKey = createPublicKey(readFileSync(paths.publicKey));
  const missing = chefSigningMissing();
  const useRuby = args.signer === 'ruby' || (args.signer === 'auto' && !missing);
  if (useRuby && missing) throw new Error(missing);
  const timestamp = new Date().toISOString();
  const inputs: ChefSignInput[] = [];
  for (const version of VERSIONS) {
    for (let i = 0; i < count; i++) {
      const post = i % 2 === 1;
      inputs.push({ key_path: paths.privateKey, userid: 'bench-client', version, timestamp, method: post ? 'POST' : 'GET', path: `/organizations/bench/pushy/jobs/${i}`, body: post ? BODY : '' });
    }
  }
  const signStart = process.hrtime.bigint();
  const privateKey = createPrivateKey(readFileSync(paths.privateKey));
  const signedHeaders = useRuby ? await signChefRequests(inputs) : inputs.map((input) => tsSign(input, privateKey));
  const signS = Number(process.hrtime.bigint() - signStart) / 1e9;
  const requests = inputs.map((input, i) => ({ version: input.version, req: { method: input.method, path: input.path, body: input.body, headers: asReceived(signedHeaders[i]!) } }));

  const perVersion: Record<string, unknown> = {};
  for (const version of VERSIONS) {
    const mine = requests.filter((r) => r.version === version).map((r) => r.req);
    const opts = { nowMs: Date.now(), skewS: DEFAULT_CHEF_CLOCK_SKEW_S, publicKeyFor: (u: string) => (u === 'bench-client' ? publicKey : null) };
    for (let i = 0; i < WARMUP; i++) verifyChefRequest(mine[i]!, opts);
    const times: number[] = new Array(mine.length);
    const start = process.hrtime.bigint();
    for (let i = 0; i < mine.length; i++) {
      const t = process.hrtime.bigint();
      verifyChefRequest(mine[i]!, opts);
      times[i] = Number(process.hrtime.bigint() - t) / 1e3;
    }
    const totalUs = Number(process.hrtime.bigint() - start) / 1e3;
    // The bare RSA operation on the same signatures.
    const sigs = mine.map((r) => {
      let b64 = '';
      for (let n = 1; r.headers[`x-ops-authorization-${n}`] !== undefined; n++) b64 += r.headers[`x-ops-authorization-${n}`];
      return Buffer.from(b64, 'base64');
    });
    const data = Buffer.from('x'.repeat(200));
    const rsaStart = process.hrtime.bigint();
    for (const s of sigs) {
      if (version === '1.3') verify('sha256', data, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, s);
      else publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, s);
    }
    const rsaUs = Number(process.hrtime.bigint() - rsaStart) / 1e3 / sigs.length;
    times.sort((a, b) => a - b);
    perVersion[version] = {
      mean_us: round(totalUs / mine.length, 1),
      p50_us: round(percentile(times, 0.5), 1),
      p99_us: round(percentile(times, 0.99), 1),
      verifies_per_s: Math.round(mine.length / (totalUs / 1e6)),
      rsa_us: round(rsaUs, 1),
    };
  }
  console.log(JSON.stringify({
    bench: 'chef-signing',
    key_bits: 2048,
    requests_per_version: count,
    signer: useRuby ? 'ruby mixlib-authentication' : `typescript (${missing ?? 'asked for'})`,
    sign_s: round(signS, 2),
    ...perVersion,
  }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
