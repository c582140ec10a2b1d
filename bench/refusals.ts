// `npm run bench:refusals -- --agents N --rounds R`: how long the orchestrator takes to refuse
// requests it will refuse, against a private Redis, a broker, the orchestrator and N agents
// (Baton's, which run facter for their facts when it is installed). Each refusal path is asked
// R times; a path's figure is its median. The whole-environment deploy of an environment without
// nodes is timed twice: its first ask (the facts of every connected node are fetched once per
// connection) and its repeats. Prints one JSON line: the slowest path after its first ask, its
// median, every path's median and first ask, in milliseconds.
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startAgentProcess, type AgentProcess } from '../test/helpers/agent.ts';
import { startBrokerProcess } from '../test/helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, stopStack, waitForConnected } from '../test/helpers/orchestrator.ts';
import { makePki } from '../test/helpers/pki.ts';
import { startRedis } from '../test/helpers/redis.ts';

const { values: args } = parseArgs({ options: { agents: { type: 'string', default: '4' }, rounds: { type: 'string', default: '9' } } });
const AGENTS = Number(args.agents);
const ROUNDS = Number(args.rounds);

interface Path {
  name: string;
  method?: string;
  path: string;
  body?: unknown;
  status: number;
}

const PATHS: Path[] = [
  { name: 'body_validation', path: '/orchestrator/v1/command/task', body: { scope: { nodes: ['n1'] } }, status: 400 },
  { name: 'path_control_character', path: '/orchestrator/v1/jobs/1%00', status: 400 },
  { name: 'unknown_environment_deploy', path: '/orchestrator/v1/command/deploy', body: { environment: 'nowhere' }, status: 404 },
  { name: 'empty_target_task', path: '/orchestrator/v1/command/task', body: { task: 'sample::echo', params: { message: 'x' }, scope: { nodes: [] } }, status: 400 },
  { name: 'empty_environment_deploy', path: '/orchestrator/v1/command/deploy', body: { environment: 'staging' }, status: 400 },
  { name: 'chef_org_nul', path: '/organizations/%00/pushy/jobs', body: { command: 'uptime', nodes: ['n1'] }, status: 400 },
  { name: 'nomad_bad_deployment_id', method: 'POST', path: '/v1/deployment/fail/short', body: {}, status: 400 },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => Math.round(x * 10) / 10;

const pki = await makePki(Array.from({ length: AGENTS }, (_, i) => `bench-node${i}`));
const redis = await startRedis();
const broker = await startBrokerProcess({ pki });
const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
const orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir() });
const agents: AgentProcess[] = [];
try {
  for (let i = 0; i < AGENTS; i++) agents.push(await startAgentProcess({ pki, name: `bench-node${i}`, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`] }));
  await waitForConnected(orch, AGENTS);
  const first: Record<string, number> = {};
  const medians: Record<string, number> = {};
  for (const p of PATHS) {
    const times: number[] = [];
    for (let r = 0; r <= ROUNDS; r++) {
      const t0 = performance.now();
      const res = await orch.api(p.path, { ...(p.method ? { method: p.method } : {}), ...(p.body === undefined ? {} : { body: p.body }) });
      const took = performance.now() - t0;
      if (res.status !== p.status) throw new Error(`${p.name}: expected ${p.status}, got ${res.status} ${res.text.slice(0, 300)}`);
      if (r === 0) first[p.name] = ms(took);
      else times.push(took);
    }
    medians[p.name] = ms(median(times));
  }
  const slowest = Object.entries(medians).sort((a, b) => b[1] - a[1])[0]!;
  console.log(JSON.stringify({ bench: 'refusals', agents: AGENTS, rounds: ROUNDS, slowest_path: slowest[0], slowest_median_ms: slowest[1], slowest_first_ms: Math.max(...Object.values(first)), median_ms: medians, first_ms: first }));
} finally {
  await stopStack({ agents, orch, broker, redis, pki });
}
