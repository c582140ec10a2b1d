// A deployment waiting on its canary survives the SIGKILL of the orchestrator it was registered
// through: two orchestrators on one Redis and broker; A is killed while the canary runs (its node
// run is taken over by B's engine: stalled-job recovery plus `status query`), or while the canary
// waits out MinHealthyTime (a deadline kept in Redis, taken by B's deadline worker). B promotes
// and completes the deployment; every node runs exactly once (counted from the runs themselves).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const NODES = ['k1', 'k2', 'k3'];
/** Short locks: B's engine takes over A's running node run this soon after A dies. */
const LOCK_DURATION_MS = 2_000;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Records the run (its spool directory, which names its agent) and waits for the gate. */
const MARKED_GATE_SCRIPT = '#!/bin/sh\npwd -P >> "$PT_dir/runs"\nwhile [ ! -f "$PT_gate" ]; do sleep 0.05; done\necho "passed $PT_tag"\n';

describe('deployments: the orchestrator a deployment was registered through is SIGKILLed', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let a: OrchestratorProcess | undefined;
  let b: OrchestratorProcess;
  let common: Parameters<typeof startOrchestratorProcess>[0];
  const agents = new Map<string, AgentProcess>();
  let scratch: string;

  before(async () => {
    pki = await makePki(NODES);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'controller-cns': ['orch-*'] } });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    const codedir = makeCodedir();
    const tasks = join(codedir, 'environments', 'production', 'modules', 'sample', 'tasks');
    writeFileSync(join(tasks, 'marked_gate.sh'), MARKED_GATE_SCRIPT);
    chmodSync(join(tasks, 'marked_gate.sh'), 0o755);
    writeFileSync(join(tasks, 'marked_gate.json'), JSON.stringify({ parameters: { dir: { type: 'String' }, gate: { type: 'String' }, tag: { type: 'String' } } }));
    common = { pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, keyPrefix: `takeover${process.pid}`, config: { 'node-run-lock-duration': LOCK_DURATION_MS } };
    a = await startOrchestratorProcess({ ...common, name: 'orch-a' });
    b = await startOrchestratorProcess({ ...common, name: 'orch-b' });
    // Task files come from either orchestrator: the agents fail over to B once A is gone.
    for (const name of NODES) agents.set(name, await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${a.port}`, `https://127.0.0.1:${b.port}`] }));
    await waitForConnected(a, NODES.length);
    await waitForConnected(b, NODES.length);
    scratch = mkdtempSync(join(tmpdir(), 'baton-takeover-'));
  });

  after(async () => {
    await a?.stop();
    await stopStack({ agents: agents.values(), orch: b, broker, redis, pki });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const get = async (o: OrchestratorProcess, path: string) => {
    const res = await o.api(path);
    assert.equal(res.status, 200, `${path}: ${res.text}`);
    return res;
  };
  /** Follows a deployment's allocations through `o` with blocking queries until `pred` holds. */
  async function untilAllocs(o: OrchestratorProcess, id: string, pred: (allocs: Json[]) => boolean): Promise<Json[]> {
    let index = 0;
    for (;;) {
      const res = await get(o, `/v1/deployment/allocations/${id}?index=${index}&wait=20s`);
      if (pred(res.json)) return res.json;
      index = Number(res.headers['x-nomad-index']);
    }
  }
  async function untilDeployment(o: OrchestratorProcess, id: string, pred: (d: Json) => boolean): Promise<Json> {
    let index = 0;
    for (;;) {
      const res = await get(o, `/v1/deployment/${id}?index=${index}&wait=20s`);
      if (pred(res.json)) return res.json;
      index = Number(res.headers['x-nomad-index']);
    }
  }
  /** How many times each node ran, from the runs' own marks (a run's spool directory is its agent's). */
  function runsPerNode(dir: string): Record<string, number> {
    const lines = readFileSync(join(dir, 'runs'), 'utf8').split('\n').filter(Boolean);
    return Object.fromEntries(NODES.map((n) => {
      const spool = realpathSync(agents.get(n)!.dirs.spool);
      return [n, lines.filter((l) => l.startsWith(`${spool}/`)).length];
    }));
  }

  async function killA(): Promise<void> {
    a!.proc.kill('SIGKILL');
    await a!.exited;
  }

  async function deploy(job: string, dir: string, minHealthy: string): Promise<string> {
    const res = await a!.api('/v1/jobs', {
      method: 'PUT',
      body: {
        Job: {
          ID: job,
          TaskGroups: [{
            Name: 'web', Scope: { nodes: NODES },
            Task: { task: 'sample::marked_gate', params: { dir, gate: join(dir, 'open'), tag: job } },
            Update: { Canary: 1, MaxParallel: 2, MinHealthyTime: minHealthy, HealthyDeadline: '5m', ProgressDeadline: '10m' },
          }],
        },
      },
    });
    assert.equal(res.status, 200, res.text);
    return (await get(a!, `/v1/job/${job}/deployment`)).json.ID as string;
  }

  /** Through B: the canary healthy, a promotion, the rest rolled out; each node ran once. */
  async function finishThroughB(id: string, dir: string): Promise<void> {
    const waiting = await untilDeployment(b, id, (d) => d.Status !== 'running' || d.StatusDescription === 'Deployment is running but requires manual promotion');
    assert.equal(waiting.Status, 'running', JSON.stringify(waiting));
    const promoted = await b.api(`/v1/deployment/promote/${id}`, { body: { All: true } });
    assert.equal(promoted.status, 200, promoted.text);
    const d = await untilDeployment(b, id, (x) => x.Status !== 'running');
    assert.equal(d.Status, 'successful', JSON.stringify(d));
    const allocs = (await get(b, `/v1/deployment/allocations/${id}`)).json as Json[];
    assert.deepEqual(allocs.map((x) => x.NodeName).sort(), NODES);
    for (const x of allocs) {
      assert.equal(x.ClientStatus, 'complete', JSON.stringify(x));
      assert.equal(x.DeploymentStatus.Healthy, true);
    }
    assert.deepEqual(runsPerNode(dir), Object.fromEntries(NODES.map((n) => [n, 1])), 'every node ran exactly once');
  }

  it('killed while the canary runs: B takes the run over and completes the deployment', async () => {
    const dir = mkdtempSync(join(scratch, 'running-'));
    const id = await deploy('takeover-running', dir, '100ms');
    const [canary] = await untilAllocs(a!, id, (xs) => xs.length === 1 && xs[0]!.ClientStatus === 'running');
    await killA();
    writeFileSync(join(dir, 'open'), '');
    await finishThroughB(id, dir);
    assert.ok(b.logs.some((l) => l.msg === 're-attaching to a node run' && l.node === canary!.NodeName), 'B took the canary\'s run over');
    assert.ok(b.logs.some((l) => l.msg === 'allocation placed' && l.node !== canary!.NodeName), 'B placed the rest');
    a = await startOrchestratorProcess({ ...common, name: 'orch-a' });
    await waitForConnected(a, NODES.length);
  });

  it('killed while the canary waits out MinHealthyTime: the deadline, kept in Redis, fires on B', async () => {
    const dir = mkdtempSync(join(scratch, 'healthy-'));
    writeFileSync(join(dir, 'open'), '');
    const id = await deploy('takeover-deadline', dir, '3s');
    const [canary] = await untilAllocs(a!, id, (xs) => xs.length === 1 && xs[0]!.ClientStatus === 'complete' && xs[0]!.DeploymentStatus.Healthy === null);
    await killA();
    a = undefined;
    await finishThroughB(id, dir);
    assert.ok(b.logs.some((l) => l.msg === 'allocation healthy' && l.allocation === canary!.ID), 'B decided the canary healthy');
  });
});
