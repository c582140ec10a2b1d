// Chef Push Jobs node states for each way a run can end (the seed's `nodes` of GET jobs/ID), end
// to end: real Redis, broker, orchestrator and agents. A forced stop aborts, the agent stopping
// (SIGTERM) or dying (SIGKILL) mid-run crashes, a non-zero exit fails, exit 0 completes. Runs are
// acted on only once their command wrote its marker file (it runs on the agent).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appears } from '../helpers/files.ts';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SseClient } from '../helpers/sse.ts';
import { PxpErrorCode } from '../../protocol/pxp.ts';
import type { TransactionMetadata } from '../../pxp-agent/spool.ts';

const PUSHY = '/organizations/test/pushy';
const WHITELIST = {
  // Marks that it runs, then holds until its gate exists (so an orphan of a killed agent ends too).
  hold: ': > "$MARK"; while [ ! -f "$GATE" ]; do sleep 0.05; done; echo released',
  'exit 3': 'echo three >&2; exit 3',
  'exit 0': 'echo zero',
};
/** The longest a marker file is waited for. */
const MARKER_WAIT_MS = 30_000;

describe('Chef node states: aborted, crashed, failed and complete as the Push Jobs API defines them', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  const agents = new Map<string, AgentProcess>();
  let scratch: string;
  const gates: string[] = [];

  before(async () => {
    pki = await makePki(['n1', 't1', 'k1']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(), config: { 'voting-timeout': 5, 'job-feed-linger': 2 } });
    for (const name of ['n1', 't1', 'k1']) agents.set(name, await startAgentProcess({ pki, name, brokerUris: [brokerUri], config: { 'command-whitelist': WHITELIST } }));
    await waitForConnected(orch, 3);
    scratch = mkdtempSync(join(tmpdir(), 'baton-chef-states-'));
  });

  after(async () => {
    for (const g of gates) writeFileSync(g, ''); // whatever still holds ends
    await stopStack({ agents: agents.values(), orch, broker, redis, pki });
  });

  const job = async (id: string) => (await orch.api(`${PUSHY}/jobs/${id}`)).json;

  /** Starts a job on one node, follows its feed from the start, and waits for its `hold` command to run there. */
  async function startHeld(node: string, name: string): Promise<{ id: string; feed: SseClient; gate: string }> {
    const mark = join(scratch, `${name}.mark`);
    const gate = join(scratch, `${name}.gate`);
    gates.push(gate);
    const { id, feed } = await startJob({ command: 'hold', nodes: [node], env: { MARK: mark, GATE: gate } });
    await appears(mark, MARKER_WAIT_MS, 'the command never ran');
    return { id, feed, gate };
  }

  async function startJob(body: object): Promise<{ id: string; feed: SseClient }> {
    const res = await orch.api(`${PUSHY}/jobs`, { body });
    assert.equal(res.status, 201, JSON.stringify(res.json));
    const id = res.json.id as string;
    return { id, feed: new SseClient(orch.url(`${PUSHY}/jobs_status_feed/${id}`), { ca: orch.ca, token: ADMIN_TOKEN }) };
  }

  /** The feed's run_complete status of `node` and its job_complete status, once the job completed (the feed closes). */
  async function feedEnd(feed: SseClient, node: string): Promise<{ run: Record<string, unknown>; job: unknown }> {
    await feed.done;
    const run = feed.events.find((e) => e.event === 'run_complete' && e.data.node === node);
    const end = feed.events.find((e) => e.event === 'job_complete');
    assert.ok(run && end, `run_complete and job_complete in the feed; got ${feed.events.map((e) => e.event).join(', ')}`);
    return { run: run.data, job: end.data.status };
  }

  /** The agent's spooled record of the job's command run on it. */
  function spooled(node: string, jobId: string): TransactionMetadata {
    const spool = agents.get(node)!.dirs.spool;
    const name = readdirSync(spool).find((d) => d.includes(`-${jobId}-`) && existsSync(join(spool, d, 'metadata.json')));
    assert.ok(name, `a transaction of job ${jobId} in ${spool}`);
    return JSON.parse(readFileSync(join(spool, name, 'metadata.json'), 'utf8')) as TransactionMetadata;
  }

  it('a run stopped with force (an abort) is aborted, and so is its job, in the job and in its feed', async () => {
    const { id, feed } = await startHeld('n1', 'abort');
    const stop = await orch.api('/orchestrator/v1/command/stop', { body: { job: id, force: true } });
    assert.equal(stop.status, 202, JSON.stringify(stop.json));
    const end = await feedEnd(feed, 'n1');
    assert.equal(end.run.status, 'aborted');
    assert.equal(end.job, 'aborted');
    const j = await job(id);
    assert.equal(j.status, 'aborted');
    assert.deepEqual(j.nodes, { aborted: ['n1'] });
    const meta = spooled('n1', id);
    assert.equal(meta.status, 'failure');
    assert.equal(meta.error_code, PxpErrorCode.stopped, 'the agent recorded why, as a code');
    assert.equal(existsSync(join(scratch, 'abort.gate')), false, 'the command was killed, not let go');
  });

  it('a run whose agent is stopped (SIGTERM) mid-run has crashed; the agent recorded agent-shutdown', async () => {
    const { id, feed } = await startHeld('t1', 'term');
    await agents.get('t1')!.stop('SIGTERM');
    const end = await feedEnd(feed, 't1');
    assert.equal(end.run.status, 'crashed');
    assert.deepEqual((await job(id)).nodes, { crashed: ['t1'] });
    const meta = spooled('t1', id);
    assert.equal(meta.status, 'failure');
    assert.equal(meta.error_code, PxpErrorCode.agentShutdown);
  });

  it('a run whose agent is killed (SIGKILL) mid-run has crashed', async () => {
    const { id, feed, gate } = await startHeld('k1', 'kill');
    await agents.get('k1')!.stop('SIGKILL');
    const end = await feedEnd(feed, 'k1');
    writeFileSync(gate, ''); // lets the orphaned command end
    assert.equal(end.run.status, 'crashed');
    assert.deepEqual((await job(id)).nodes, { crashed: ['k1'] });
  });

  it('a command exiting 3 has failed; one exiting 0 is complete', async () => {
    const failing = await startJob({ command: 'exit 3', nodes: ['n1'] });
    const f = await feedEnd(failing.feed, 'n1');
    assert.equal(f.run.status, 'failure');
    assert.equal(f.run.exit_code, 3);
    assert.equal(f.job, 'complete');
    assert.deepEqual((await job(failing.id)).nodes, { failed: ['n1'] });

    const ok = await startJob({ command: 'exit 0', nodes: ['n1'] });
    const o = await feedEnd(ok.feed, 'n1');
    assert.equal(o.run.status, 'success');
    assert.equal(o.run.exit_code, 0);
    const j = await job(ok.id);
    assert.equal(j.status, 'complete');
    assert.deepEqual(j.nodes, { complete: ['n1'] });
  });
});
