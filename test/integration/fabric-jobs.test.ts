// Jobs over a fabric of two brokers (real Redis, brokers, orchestrator and agents): the
// orchestrator is on broker A, the agents on broker B. Tasks run across the fabric; when B is
// SIGKILLed mid-job its agents fail over to A and the job completes, every result kept and no node
// run twice (counted from the runs themselves).
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const NODES = ['f1', 'f2', 'f3'];
/** Records the run (its spool directory names its agent), then waits for the gate. */
const MARK_AND_WAIT = '#!/bin/sh\npwd -P >> "$PT_dir/runs"\nwhile [ ! -f "$PT_gate" ]; do sleep 0.05; done\necho passed\n';

describe('jobs over a fabric of two brokers', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let a: BrokerProcess;
  let b: BrokerProcess;
  let orch: OrchestratorProcess;
  const agents = new Map<string, AgentProcess>();
  let scratch: string;

  before(async () => {
    pki = await makePki(NODES);
    redis = await startRedis();
    const fabric = (id: string) => ({ fabric: { redis: redis.url, 'broker-id': id }, 'inventory-update-interval': 50 });
    a = await startBrokerProcess({ pki, logLevel: 'info', config: fabric('fab-a') });
    b = await startBrokerProcess({ pki, logLevel: 'info', config: fabric('fab-b') });
    const codedir = makeCodedir();
    const tasks = join(codedir, 'environments', 'production', 'modules', 'sample', 'tasks');
    writeFileSync(join(tasks, 'mark_wait.sh'), MARK_AND_WAIT);
    chmodSync(join(tasks, 'mark_wait.sh'), 0o755);
    writeFileSync(join(tasks, 'mark_wait.json'), JSON.stringify({ parameters: { dir: { type: 'String' }, gate: { type: 'String' } } }));
    orch = await startOrchestratorProcess({ pki, brokerUris: [a.url('/pcp2/')], redisUrl: redis.url, codedir });
    // On B first; A when B is gone.
    for (const name of NODES) agents.set(name, await startAgentProcess({ pki, name, brokerUris: [b.url('/pcp2/'), a.url('/pcp2/')], masterUris: [`https://127.0.0.1:${orch.port}`] }));
    await waitForConnected(orch, NODES.length);
    scratch = mkdtempSync(join(tmpdir(), 'baton-fabric-jobs-'));
  });

  after(async () => {
    await b?.stop();
    await stopStack({ agents: agents.values(), orch, broker: a, redis, pki });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('a task job through broker A runs on the agents of broker B', async () => {
    const res = await orch.api('/orchestrator/v1/command/task', { body: { task: 'sample::echo', params: { message: 'across' }, scope: { nodes: NODES } } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.job.name as string;
    await waitForJobEnd(orch, id);
    const job = (await orch.api(`/orchestrator/v1/jobs/${id}`)).json;
    assert.equal(job.state, 'finished', JSON.stringify(job));
    const nodes = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items as { name: string; result: { _output?: string } }[];
    assert.deepEqual(nodes.map((n) => n.name).sort(), NODES);
    for (const n of nodes) assert.match(String(n.result._output), /across/);
    for (const name of NODES) assert.ok(b.logs.some((l) => l.msg === 'session opened' && l.uri === `pcp://${name}/agent`), `${name} is on B`);
  });

  it('B SIGKILLed mid-job: its agents fail over to A and the job completes, each node once', async () => {
    const dir = mkdtempSync(join(scratch, 'kill-'));
    const gate = join(dir, 'gate');
    const res = await orch.api('/orchestrator/v1/command/task', { body: { task: 'sample::mark_wait', params: { dir, gate }, scope: { nodes: NODES } } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.job.name as string;
    await orch.waitForCount((l) => l.msg === 'node run started' && l.job === id, NODES.length);
    const reconnected = Promise.all(NODES.map((n) => a.waitForLog((l) => l.msg === 'session opened' && l.uri === `pcp://${n}/agent`)));
    b.proc.kill('SIGKILL');
    await b.exited;
    await reconnected;
    writeFileSync(gate, '');
    await waitForJobEnd(orch, id);
    const job = (await orch.api(`/orchestrator/v1/jobs/${id}`)).json;
    assert.equal(job.state, 'finished', JSON.stringify(job));
    const nodes = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items as { name: string; state: string; result: { _output?: string } }[];
    for (const n of nodes) {
      assert.equal(n.state, 'finished', JSON.stringify(n));
      assert.match(String(n.result._output), /passed/);
    }
    const runs = readFileSync(join(dir, 'runs'), 'utf8').split('\n').filter(Boolean);
    for (const name of NODES) {
      const spool = realpathSync(agents.get(name)!.dirs.spool);
      assert.equal(runs.filter((r) => r.startsWith(`${spool}/`)).length, 1, `${name} ran once`);
    }
  });
});
