// Kill the orchestrator with SIGKILL in the middle of a 50-node job and start it again: the job
// finishes, no node runs twice, no result is lost.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { issueFleetCerts, startFleet, type Fleet } from './fleet.ts';

const NODES = 50;
const CONCURRENCY = 10;

describe('orchestrator restart during a job', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let fleet: Fleet;
  const orchestrators: OrchestratorProcess[] = [];

  before(async () => {
    pki = await makePki([]);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
  });
  after(async () => {
    for (const o of orchestrators) await o.stop();
    await fleet?.stop();
    await broker?.stop();
    await redis?.stop();
    pki?.remove();
  });

  it('finishes the job after a SIGKILL, with every node run exactly once', async () => {
    const names = Array.from({ length: NODES }, (_, i) => `fleet${String(i).padStart(3, '0')}`);
    await issueFleetCerts(pki.dir, names);
    const brokerUris = [`wss://127.0.0.1:${broker.port}/pcp2/`];
    const codedir = makeCodedir();
    const start = (port?: number) =>
      startOrchestratorProcess({ pki, brokerUris, redisUrl: redis.url, codedir, keyPrefix: 'restart', port, config: { 'node-run-lock-duration': 2000 } });
    const first = await start();
    orchestrators.push(first);
    fleet = await startFleet({ pkiDir: pki.dir, names, brokerUris, masterUris: [`https://127.0.0.1:${first.port}`] });
    await waitForConnected(first, NODES);
    const scratch = mkdtempSync(join(tmpdir(), 'baton-restart-'));
    const gate = join(scratch, 'gate');
    const marker = join(scratch, 'runs');
    const res = await first.api('/orchestrator/v1/command/task', {
      body: { task: 'sample::gated_count', params: { gate, file: marker }, scope: { nodes: names }, concurrency: CONCURRENCY },
    });
    assert.equal(res.status, 202);
    const id = res.json.job.name;
    // Wait until a full wave is running, then kill the orchestrator without a chance to clean up.
    await first.waitForCount((l) => l.msg === 'node run started' && l.job === id, CONCURRENCY);
    await first.stop('SIGKILL');
    writeFileSync(gate, ''); // the running tasks finish while no orchestrator listens

    const second = await start(first.port); // same port: agents download task files from it
    orchestrators.push(second);
    const events = await waitForJobEnd(second, id);
    const job = (await second.api(`/orchestrator/v1/jobs/${id}`)).json;
    if (job.state !== 'finished') {
      const bad = (await second.api(`/orchestrator/v1/jobs/${id}/nodes?state=errored`)).json.items[0];
      console.error('ERRORED', JSON.stringify(bad), JSON.stringify(second.logs.filter((l) => l.msg === 're-attaching to a node run').slice(0, 3)));
    }
    assert.equal(job.state, 'finished', JSON.stringify(job.node_states));
    assert.deepEqual(job.node_states, { finished: NODES });
    const nodes = (await second.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items;
    assert.equal(nodes.length, NODES);
    for (const n of nodes) assert.deepEqual(n.result, { _output: 'counted\n' }, n.name);
    assert.equal(readFileSync(marker, 'utf8').split('\n').filter(Boolean).length, NODES, 'every node ran exactly once');
    assert.equal(events.filter((e) => e.type === 'node_finished').length, NODES);
    assert.ok(second.logs.some((l) => l.msg === 're-attaching to a node run'), 'in-flight runs were re-attached by status query');
  });
});
