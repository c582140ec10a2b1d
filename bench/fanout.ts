// `npm run bench:fanout -- --agents N`: one task job over N agents. Starts a private Redis, a
// broker, the orchestrator and a fleet of N real agents in one process (with an in-memory task
// in place of a shell process), submits the job and prints one JSON line:
// {agents, submit_to_all_done_s, node_runs_per_s, orchestrator_cpu_ms_per_node}.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { issueCert } from '../lib/pki.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { http } from '../test/helpers/http.ts';
import { issueFleetCerts, startFleet } from '../test/fleet/fleet.ts';
import { cpuMs, makeBenchPki, startBrokerChild, startOrchestratorChild } from './fixtures.ts';
import { round } from './harness.ts';

const { values: args } = parseArgs({ options: { agents: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '250' } } });
const N = Number(args.agents);
const TOKEN = 'bench-token-0123456789abcdef';

const pki = await makeBenchPki(0);
const work = mkdtempSync(join(tmpdir(), 'baton-fanout-'));
const redis = await startRedis();
const broker = await startBrokerChild(pki, { 'controller-cns': ['orchestrator'] });
try {
  await issueCert(pki.dir, 'orchestrator', { altNames: ['127.0.0.1'] });
  const names = Array.from({ length: N }, (_, i) => `node${String(i).padStart(5, '0')}`);
  await issueFleetCerts(pki.dir, names);
  const codedir = join(work, 'code');
  mkdirSync(join(codedir, 'environments', 'production', 'modules', 'bench', 'tasks'), { recursive: true });
  writeFileSync(join(codedir, 'environments', 'production', 'modules', 'bench', 'tasks', 'echo.sh'), '#!/bin/sh\necho "$PT_message"\n');
  writeFileSync(join(work, 'tokens.json'), JSON.stringify([{ token: TOKEN, login: 'bench', permissions: ['*'] }]));
  writeFileSync(join(work, 'orchestrator.json'), JSON.stringify({
    host: '127.0.0.1', port: 0, 'ssl-ca-cert': pki.paths.caCert, 'ssl-cert': pki.paths.cert('orchestrator'), 'ssl-key': pki.paths.key('orchestrator'),
    'broker-ws-uris': [`wss://127.0.0.1:${broker.port}/pcp2/`], redis: `redis://127.0.0.1:${redis.port}`, codedir, 'tokens-file': join(work, 'tokens.json'),
    'task-concurrency': Number(args.concurrency), 'log-level': 'info',
  }));
  const ended = new Map<string, () => void>();
  const { proc: orch, port } = await startOrchestratorChild(join(work, 'orchestrator.json'), (l) => {
    if (l.msg === 'job ended' && typeof l.job === 'string') ended.get(l.job)?.();
  });
  const fleet = await startFleet({ pkiDir: pki.dir, names, brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], inMemoryTask: true });
  const ca = readFileSync(pki.paths.caCert);
  const api = (path: string, body?: unknown) => http(`https://127.0.0.1:${port}${path}`, { ca, token: TOKEN, ...(body ? { body } : {}) });
  // The orchestrator's inventory follows its subscription; wait until it sees every agent.
  for (;;) {
    const connected = (await api('/orchestrator/v1/inventory')).json.items.filter((i: { connected: boolean }) => i.connected).length;
    if (connected === N) break;
    await new Promise((r) => setTimeout(r, 200)); // a benchmark's setup, not a test: polling is fine here
  }

  const cpu0 = cpuMs(orch.pid!);
  const brokerCpu0 = cpuMs(broker.proc.pid!);
  const fleetCpu0 = cpuMs(fleet.proc.pid!);
  const t0 = performance.now();
  const res = await api('/orchestrator/v1/command/task', { task: 'bench::echo', params: { message: 'hi' }, scope: { nodes: names } });
  if (res.status !== 202) throw new Error(`submit failed: ${res.text}`);
  const id = res.json.job.name as string;
  await new Promise<void>((resolve) => ended.set(id, resolve));
  const elapsedS = (performance.now() - t0) / 1000;
  const cpu = cpuMs(orch.pid!) - cpu0;
  const brokerCpu = cpuMs(broker.proc.pid!) - brokerCpu0;
  const fleetCpu = cpuMs(fleet.proc.pid!) - fleetCpu0;
  const job = (await api(`/orchestrator/v1/jobs/${id}`)).json;
  console.log(JSON.stringify({
    bench: 'fanout',
    agents: N,
    submit_to_all_done_s: round(elapsedS, 3),
    node_runs_per_s: Math.round(N / elapsedS),
    orchestrator_cpu_ms_per_node: round(cpu / N, 3),
    broker_cpu_ms_per_node: round(brokerCpu / N, 3),
    fleet_cpu_ms_per_node: round(fleetCpu / N, 3),
    job_state: job.state,
    node_states: job.node_states,
    task_concurrency: Number(args.concurrency),
  }));
  await fleet.stop();
  orch.kill('SIGTERM');
} finally {
  await broker.stop();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
}
