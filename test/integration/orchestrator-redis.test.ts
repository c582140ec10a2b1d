// Redis restarting during a job: the API answers 503 meanwhile, and the job completes afterwards.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

describe('orchestrator while Redis restarts', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  let agent: AgentProcess;
  let again: OrchestratorProcess | undefined;
  let brokerUri: string;
  let codedir: string;

  before(async () => {
    pki = await makePki(['node1']);
    redis = await startRedis({ persistent: true });
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    codedir = makeCodedir();
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, config: { 'node-run-lock-duration': 2000 } });
    agent = await startAgentProcess({ pki, name: 'node1', brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`] });
    await waitForConnected(orch, 1);
  });
  after(async () => {
    await agent?.stop();
    await orch?.stop();
    await again?.stop();
    await broker?.stop();
    await redis?.stop();
    pki?.remove();
  });

  it('answers 503 while Redis is away and completes the job once it is back', async () => {
    const gate = join(mkdtempSync(join(tmpdir(), 'baton-redis-gate-')), 'gate');
    const id = (await orch.api('/orchestrator/v1/command/task', { body: { task: 'sample::wait_for', params: { gate, word: 'survived' }, scope: { nodes: ['node1'] } } })).json.job.name;
    await orch.waitForLog((l) => l.msg === 'node run started' && l.job === id);
    await agent.waitForLog((l) => l.msg === 'action started');

    await redis.stop();
    const during = await orch.api(`/orchestrator/v1/jobs/${id}`);
    assert.equal(during.status, 503);
    assert.equal(during.json.kind, 'puppetlabs.orchestrator/service-unavailable');
    const status = (await orch.api('/status/v1/services', { token: undefined })).json['orchestrator-service'];
    assert.equal(status.state, 'error');
    assert.equal(status.status.redis.connected, false);

    writeFileSync(gate, ''); // the task ends while Redis is down
    await agent.waitForLog((l) => l.msg === 'action ended');
    const apiBack = orch.waitForNextLog((l) => l.msg === 'redis connected' && l.connection === 'api');
    await redis.restart();
    await apiBack;

    await waitForJobEnd(orch, id);
    const job = (await orch.api(`/orchestrator/v1/jobs/${id}`)).json;
    assert.equal(job.state, 'finished');
    const node = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items[0];
    assert.deepEqual(node.result, { _output: 'survived\n' });
  });

  it('picks a job up again after a graceful restart of the orchestrator in the middle of a run', async () => {
    const gate = join(mkdtempSync(join(tmpdir(), 'baton-restart-gate-')), 'gate');
    const id = (await orch.api('/orchestrator/v1/command/task', { body: { task: 'sample::wait_for', params: { gate, word: 'resumed' }, scope: { nodes: ['node1'] } } })).json.job.name;
    const started = await orch.waitForLog((l) => l.msg === 'node run started' && l.job === id);
    await agent.waitForLog((l) => l.msg === 'action started' && l.transaction_id === started.transaction_id);
    await orch.stop(); // SIGTERM: it stops while the run goes on
    writeFileSync(gate, '');
    await agent.waitForLog((l) => l.msg === 'action ended' && l.transaction_id === started.transaction_id);
    again = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, port: orch.port, config: { 'node-run-lock-duration': 2000 } });
    await waitForJobEnd(again, id);
    const node = (await again.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items[0];
    assert.equal(node.state, 'finished');
    assert.deepEqual(node.result, { _output: 'resumed\n' });
  });
});
