// `npm run bench:fanout -- --agents N [--orchestrators K]`: one task job over N agents. Starts a
// private Redis, a broker, the orchestrator(s) and a fleet of N real agents in one process (with
// an in-memory task in place of a shell process), submits the job and prints one JSON line:
// {agents, submit_to_all_done_s, node_runs_per_s, orchestrator_cpu_ms_per_node, status_queries_per_node, ...}.
// With K > 1 the same fleet first runs a job with one orchestrator, then with K on the same Redis
// and broker (each its own controller identity), and prints both figures and their ratios.
// `--brokers B` (default 1): B brokers as one fabric on the Redis, the agents spread over them
// (the orchestrators on the first), so that runs cross brokers. Each measured job follows a
// warm-up job of the same orchestrators. `--cpu-prof-dir D`: each
// orchestrator writes a V8 CPU profile there as it stops.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { issueCert } from '../lib/pki.ts';
import { Redis } from 'ioredis';
import { startRedis } from '../test/helpers/redis.ts';
import { http } from '../test/helpers/http.ts';
import { fleetCpuMs, issueFleetCerts, startFleet } from '../test/fleet/fleet.ts';
import { cpuMs, makeBenchPki, startBrokerChild, startOrchestratorChild, type BrokerChild } from './fixtures.ts';
import { round } from './harness.ts';

const { values: args } = parseArgs({ options: { agents: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '250' }, orchestrators: { type: 'string', default: '1' }, 'cpu-prof-dir': { type: 'string' }, 'spool-on-disk': { type: 'boolean' }, brokers: { type: 'string', default: '1' } } });
const B = Number(args.brokers);
const SHM_DIR = '/dev/shm';
const N = Number(args.agents);
const K = Number(args.orchestrators);
const TOKEN = 'bench-token-0123456789abcdef';
/** The warm-up job's share of the fleet (JIT and connections warm before the measured job). */
const WARM_UP_FRACTION = 0.2;

interface Orch { name: string; proc: ChildProcess; port: number }

const pki = await makeBenchPki(0);
const work = mkdtempSync(join(tmpdir(), 'baton-fanout-'));
const redis = await startRedis();
const brokers: BrokerChild[] = [];
for (let i = 1; i <= B; i++) brokers.push(await startBrokerChild(pki, { 'controller-cns': ['orch-*'], ...(B > 1 ? { fabric: { redis: `redis://127.0.0.1:${redis.port}`, 'broker-id': `bench-${i}` } } : {}) }));
const broker = brokers[0]!;
const brokerUri = (i: number) => `wss://127.0.0.1:${brokers[i % B]!.port}/pcp2/`;
const orchs: Orch[] = [];
let fleetStop: (() => Promise<void>) | null = null;
let probe: Redis | null = null;
try {
  const names = Array.from({ length: N }, (_, i) => `node${String(i).padStart(5, '0')}`);
  await issueFleetCerts(pki.dir, names);
  const codedir = join(work, 'code');
  mkdirSync(join(codedir, 'environments', 'production', 'modules', 'bench', 'tasks'), { recursive: true });
  writeFileSync(join(codedir, 'environments', 'production', 'modules', 'bench', 'tasks', 'echo.sh'), '#!/bin/sh\necho "$PT_message"\n');
  writeFileSync(join(work, 'tokens.json'), JSON.stringify([{ token: TOKEN, login: 'bench', permissions: ['*'] }]));
  const ca = readFileSync(pki.paths.caCert);
  const ended = new Map<string, () => void>();
  const startOrch = async (i: number): Promise<Orch> => {
    const name = `orch-${i}`;
    await issueCert(pki.dir, name, { altNames: ['127.0.0.1'] });
    const file = join(work, `${name}.json`);
    writeFileSync(file, JSON.stringify({
      host: '127.0.0.1', port: 0, 'ssl-ca-cert': pki.paths.caCert, 'ssl-cert': pki.paths.cert(name), 'ssl-key': pki.paths.key(name),
      'broker-ws-uris': [`wss://127.0.0.1:${broker.port}/pcp2/`], redis: `redis://127.0.0.1:${redis.port}`, codedir, 'tokens-file': join(work, 'tokens.json'),
      'task-concurrency': Number(args.concurrency), 'log-level': 'info',
    }));
    const { proc, port } = await startOrchestratorChild(file, (l) => {
      if (l.msg === 'job ended' && typeof l.job === 'string') ended.get(l.job)?.();
    }, args['cpu-prof-dir'] ? ['--cpu-prof', '--cpu-prof-dir', args['cpu-prof-dir']] : []);
    const o = { name, proc, port };
    orchs.push(o);
    return o;
  };
  const api = (o: Orch, path: string, body?: unknown) => http(`https://127.0.0.1:${o.port}${path}`, { ca, token: TOKEN, ...(body ? { body } : {}) });
  const seesAll = async (o: Orch) => {
    // The orchestrator's inventory follows its subscription; wait until it sees every agent.
    for (;;) {
      const connected = (await api(o, '/orchestrator/v1/inventory')).json.items.filter((i: { connected: boolean }) => i.connected).length;
      if (connected === N) return;
      await new Promise((r) => setTimeout(r, 200)); // a benchmark's setup, not a test: polling is fine here
    }
  };
  const statusQueries = async (o: Orch): Promise<number> => {
    const text = (await api(o, '/metrics')).text;
    const m = /^baton_orchestrator_status_queries_total (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  };
  probe = new Redis(redis.port, '127.0.0.1', { lazyConnect: false });
  /** Redis's commands served and CPU used so far (INFO). */
  const redisUse = async (): Promise<{ commands: number; cpuMs: number }> => {
    const info = await probe!.info();
    const num = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
    return { commands: num('total_commands_processed'), cpuMs: (num('used_cpu_sys') + num('used_cpu_user')) * 1000 };
  };
  const job = async (nodes: string[]) => {
    const res = await api(orchs[0]!, '/orchestrator/v1/command/task', { task: 'bench::echo', params: { message: 'hi' }, scope: { nodes } });
    if (res.status !== 202) throw new Error(`submit failed: ${res.text}`);
    const id = res.json.job.name as string;
    const done = new Promise<void>((resolve) => ended.set(id, resolve));
    return { id, done };
  };

  // The agents' spools in memory when the machine has /dev/shm: a thousand agents share this one
  // process and its disk, where on real hosts each has its own; their fsyncs would measure the disk.
  const shm = existsSync(SHM_DIR) && args['spool-on-disk'] !== true ? { parentDir: SHM_DIR } : {};
  // One fleet per broker: its share of the agents, that broker first and the others to fail over to.
  const fleets = await Promise.all(brokers.map((_b, i) => startFleet({
    pkiDir: pki.dir, names: names.filter((_n, j) => j % B === i), brokerUris: brokers.map((_x, k) => brokerUri(i + k)), inMemoryTask: true, ...shm,
  })));
  fleetStop = async () => void (await Promise.all(fleets.map((f) => f.stop())));
  const fleetCpu = () => fleets.reduce((sum, f) => sum + fleetCpuMs(f), 0);
  /** A warm-up job, then the measured one, with the orchestrators running now. */
  const measure = async () => {
    await (await job(names.slice(0, Math.max(1, Math.floor(N * WARM_UP_FRACTION))))).done;
    const cpu0 = orchs.map((o) => cpuMs(o.proc.pid!));
    const sq0 = await Promise.all(orchs.map(statusQueries));
    const brokerCpu = () => brokers.reduce((sum, b) => sum + cpuMs(b.proc.pid!), 0);
    const brokerCpu0 = brokerCpu();
    const fleetCpu0 = fleetCpu();
    const redis0 = await redisUse();
    const t0 = performance.now();
    const { id, done } = await job(names);
    await done;
    const elapsedS = (performance.now() - t0) / 1000;
    const cpu = orchs.reduce((sum, o, i) => sum + cpuMs(o.proc.pid!) - cpu0[i]!, 0);
    const sq = (await Promise.all(orchs.map(statusQueries))).reduce((sum, n, i) => sum + n - sq0[i]!, 0);
    const redis1 = await redisUse();
    const record = (await api(orchs[0]!, `/orchestrator/v1/jobs/${id}`)).json;
    return {
      orchestrators: orchs.length,
      submit_to_all_done_s: round(elapsedS, 3),
      node_runs_per_s: Math.round(N / elapsedS),
      orchestrator_cpu_ms_per_node: round(cpu / N, 3),
      status_queries_per_node: round(sq / N, 4),
      broker_cpu_ms_per_node: round((brokerCpu() - brokerCpu0) / N, 3),
      redis_commands_per_node: round((redis1.commands - redis0.commands) / N, 1),
      redis_cpu_ms_per_node: round((redis1.cpuMs - redis0.cpuMs) / N, 3),
      fleet_cpu_ms_per_node: round((fleetCpu() - fleetCpu0) / N, 3),
      job_state: record.state,
      node_states: record.node_states,
    };
  };

  await seesAll(await startOrch(0));
  const one = await measure();
  let many: Awaited<ReturnType<typeof measure>> | null = null;
  if (K > 1) {
    for (let i = 1; i < K; i++) await seesAll(await startOrch(i));
    many = await measure();
  }
  console.log(JSON.stringify({
    bench: 'fanout',
    agents: N,
    brokers: B,
    task_concurrency: Number(args.concurrency),
    ...one,
    ...(many ? {
      with_orchestrators: many,
      throughput_ratio: round(many.node_runs_per_s / one.node_runs_per_s, 2),
      cpu_per_node_ratio: round(many.orchestrator_cpu_ms_per_node / one.orchestrator_cpu_ms_per_node, 2),
    } : {}),
  }));
} finally {
  await fleetStop?.();
  probe?.disconnect();
  await Promise.all(orchs.map((o) => new Promise<void>((resolve) => {
    if (o.proc.exitCode !== null) return resolve();
    o.proc.once('exit', () => resolve());
    o.proc.kill('SIGTERM');
  })));
  for (const b of brokers) await b.stop();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
}
