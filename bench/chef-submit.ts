// `npm run bench:chef-submit -- --jobs N --rounds R`: the Chef face's push job submit path, with a
// token and with a Chef-signed request (X-Ops-Sign version 1.3, a 2048-bit key), against a private
// Redis, a broker and the built orchestrator. Rounds of each alternate so that the machine's noise
// falls on both alike. Prints one JSON line: the median submit latency and the orchestrator's CPU
// per submit for each, the signed/token ratios over all submits, and the median of the ratios of
// each pair of adjacent rounds (`*_pair_median`, steadier on a shared machine).
// `--only token|signed` runs one kind; `--cpu-prof-dir DIR` has the orchestrator write a V8 CPU
// profile there (node --cpu-prof) when it exits.
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '400' },
    rounds: { type: 'string', default: '8' },
    only: { type: 'string' },
    'cpu-prof-dir': { type: 'string' },
  },
});
const JOBS = Number(args.jobs);
const ROUNDS = Number(args.rounds);
const KINDS = ['token', 'signed'] as const;
type Kind = (typeof KINDS)[number];
if (args.only !== undefined && !(KINDS as readonly string[]).includes(args.only)) {
  console.error(`--only takes token or signed, not ${args.only}`);
  process.exit(2);
}
const only = args.only as Kind | undefined;

/** CPU time of all of a process's threads in nanoseconds (/proc schedstat: finer than stat's 10 ms ticks). */
function threadsCpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return ns;
}
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
  const profFlags = args['cpu-prof-dir'] === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof-dir']}`];
  const { proc: orch, port } = await startOrchestratorChild(join(work, 'orchestrator.json'), () => {}, profFlags);
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
  /** Per round of each kind: its median latency and the orchestrator's CPU ns per submit. */
  const rounds = { token: [] as { ms: number; cpuNs: number }[], signed: [] as { ms: number; cpuNs: number }[] };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const run = (kind: Kind) => (kind === 'token' ? submit({}, TOKEN) : submit(signed!));
  const ran: readonly Kind[] = only ? [only] : KINDS;
  for (const kind of ran) for (let i = 0; i < 50; i++) await run(kind); // warm-up
  const perRound = Math.round(JOBS / ROUNDS);
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of r % 2 === 0 ? ran : [...ran].reverse()) {
      const cpu0 = cpuMs(orch.pid!);
      const ns0 = threadsCpuNs(orch.pid!);
      const ms: number[] = [];
      for (let i = 0; i < perRound; i++) ms.push(await run(kind));
      rounds[kind].push({ ms: median(ms), cpuNs: (threadsCpuNs(orch.pid!) - ns0) / perRound });
      kinds[kind].ms.push(...ms);
      kinds[kind].cpu += cpuMs(orch.pid!) - cpu0;
    }
  }
  const perSubmit = (k: Kind) => kinds[k].cpu / kinds[k].ms.length;
  const out: Record<string, unknown> = { bench: 'chef-submit', submits_each: perRound * ROUNDS, rounds_each: ROUNDS };
  for (const k of ran) {
    out[`${k}_median_ms`] = round(median(kinds[k].ms), 3);
    out[`${k}_orchestrator_cpu_ms_per_submit`] = round(perSubmit(k), 3);
  }
  if (!only) {
    out.latency_ratio_signed_to_token = round(median(kinds.signed.ms) / median(kinds.token.ms), 3);
    out.cpu_ratio_signed_to_token = round(perSubmit('signed') / perSubmit('token'), 3);
    const pairs = rounds.token.map((t, r) => ({ ms: rounds.signed[r]!.ms / t.ms, cpu: rounds.signed[r]!.cpuNs / t.cpuNs }));
    out.latency_ratio_pair_median = round(median(pairs.map((p) => p.ms)), 3);
    out.cpu_ratio_pair_median = round(median(pairs.map((p) => p.cpu)), 3);
  }
  out.signing = 'X-Ops-Sign version 1.3, RSA 2048';
  console.log(JSON.stringify(out));
  agent.destroy();
  const exited = once(orch, 'exit');
  orch.kill('SIGTERM');
  await exited; // a CPU profile is written as the orchestrator exits
} finally {
  await broker.stop();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
}
