// `npm run bench:chef-submit -- --jobs N`: the Chef face's push job submit path, with a token and
// with a Chef-signed request (X-Ops-Sign version 1.3, a 2048-bit key), against a private Redis, a
// broker and the built orchestrator. Rounds of each alternate so that the machine's noise falls
// on both alike. Prints one JSON line: the median submit latency and the orchestrator's CPU per
// submit for each, and the signed/token ratios.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { issueCert } from '../lib/pki.ts';
import { chefSigningMissing, signChefRequests } from '../test/helpers/chef-sign.ts';
import { http } from '../test/helpers/http.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { cpuMs, makeBenchPki, startBrokerChild, startOrchestratorChild } from './fixtures.ts';
import { round } from './harness.ts';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '400' }, rounds: { type: 'string', default: '8' } } });
const JOBS = Number(args.jobs);
const ROUNDS = Number(args.rounds);
const TOKEN = 'bench-token-0123456789abcdef';
const PATH = '/organizations/bench/pushy/jobs';
const BODY = JSON.stringify({ command: 'uptime', nodes: ['absent-node'] });

const missing = chefSigningMissing();
if (missing) {
  console.error(`bench:chef-submit needs Chef's signing library: ${missing}`);
  process.exit(2);
}
const pki = await makeBenchPki(0);
const work = mkdtempSync(join(tmpdir(), 'baton-chef-submit-'));
const redis = await startRedis();
const broker = await startBrokerChild(pki, { 'controller-cns': ['orchestrator'] });
try {
  await issueCert(pki.dir, 'orchestrator', { altNames: ['127.0.0.1'] });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(work, 'client.pem'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
  writeFileSync(join(work, 'client.pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(work, 'tokens.json'), JSON.stringify([{ token: TOKEN, login: 'bench', permissions: ['*'] }]));
  writeFileSync(join(work, 'orchestrator.json'), JSON.stringify({
    host: '127.0.0.1', port: 0, 'ssl-ca-cert': pki.paths.caCert, 'ssl-cert': pki.paths.cert('orchestrator'), 'ssl-key': pki.paths.key('orchestrator'),
    'broker-ws-uris': [`wss://127.0.0.1:${broker.port}/pcp2/`], redis: `redis://127.0.0.1:${redis.port}`, codedir: work, 'tokens-file': join(work, 'tokens.json'),
    chef: { organizations: { bench: { clients: { bench: join(work, 'client.pub.pem') }, nodes: ['*'] } } }, 'log-level': 'info',
  }));
  const { proc: orch, port } = await startOrchestratorChild(join(work, 'orchestrator.json'));
  const ca = readFileSync(pki.paths.caCert);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  // One signature serves every signed submit: the body is the same and the timestamp is within the skew window.
  const [signed] = await signChefRequests([{ key_path: join(work, 'client.pem'), userid: 'bench', method: 'POST', path: PATH, body: BODY, version: '1.3' }]);
  const submit = async (headers: Record<string, string>, token?: string) => {
    const t0 = performance.now();
    const res = await http(`https://127.0.0.1:${port}${PATH}`, { ca, agent, rawBody: BODY, headers, ...(token ? { token } : {}) });
    if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${res.text}`);
    return performance.now() - t0;
  };
  const kinds = { token: { ms: [] as number[], cpu: 0 }, signed: { ms: [] as number[], cpu: 0 } };
  for (let i = 0; i < 50; i++) await submit({}, TOKEN); // warm-up
  for (let i = 0; i < 50; i++) await submit(signed!);
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of r % 2 === 0 ? (['token', 'signed'] as const) : (['signed', 'token'] as const)) {
      const cpu0 = cpuMs(orch.pid!);
      for (let i = 0; i < JOBS / ROUNDS; i++) kinds[kind].ms.push(await (kind === 'token' ? submit({}, TOKEN) : submit(signed!)));
      kinds[kind].cpu += cpuMs(orch.pid!) - cpu0;
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const perSubmit = (k: keyof typeof kinds) => kinds[k].cpu / kinds[k].ms.length;
  console.log(JSON.stringify({
    bench: 'chef-submit',
    submits_each: kinds.token.ms.length,
    token_median_ms: round(median(kinds.token.ms), 3),
    signed_median_ms: round(median(kinds.signed.ms), 3),
    latency_ratio_signed_to_token: round(median(kinds.signed.ms) / median(kinds.token.ms), 3),
    token_orchestrator_cpu_ms_per_submit: round(perSubmit('token'), 3),
    signed_orchestrator_cpu_ms_per_submit: round(perSubmit('signed'), 3),
    cpu_ratio_signed_to_token: round(perSubmit('signed') / perSubmit('token'), 3),
    signing: 'X-Ops-Sign version 1.3, RSA 2048',
  }));
  agent.destroy();
  orch.kill('SIGTERM');
} finally {
  await broker.stop();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
}
