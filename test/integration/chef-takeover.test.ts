// A Chef push job outlives the orchestrator it was started through: two orchestrator processes on
// one Redis and one broker, real agents. The job's runs are under way on A (B starts only then, so
// that A's worker holds them) when A is SIGKILLed; B re-attaches to them and completes the job,
// every node having run once. Node busy marks live in Redis: B shows them while A's job runs and
// none is left once the job ended.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { appears } from '../helpers/files.ts';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { within } from '../helpers/pcp-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SseClient } from '../helpers/sse.ts';

const PUSHY = '/organizations/ops/pushy';
const NODES = ['n1', 'n2'];
const WHITELIST = {
  // One line per run in the node's file, a marker that it runs, then holds until its gate exists.
  hold: 'echo "ran $CHEF_PUSH_JOB_ID" >> "$RUNS/$CHEF_PUSH_NODE_NAME"; : > "$RUNS/$CHEF_PUSH_NODE_NAME.started"; while [ ! -f "$GATE" ]; do sleep 0.05; done; echo "done $CHEF_PUSH_NODE_NAME"',
};
/** The longest a command's start marker is waited for. */
const MARKER_WAIT_MS = 30_000;
/** The longest a job is waited for once its gate is open (B's stalled-run check, re-attach, end). */
const JOB_END_WAIT_MS = 120_000;
/** A short vote: a vote A began is taken up by B once A's vote lease (this plus a margin) lapses. */
const VOTING_TIMEOUT_S = 3;
/** Short node-run locks: B takes A's runs over soon after A dies. */
const LOCK_DURATION_MS = 2_000;

describe('Chef push jobs across orchestrators: busy marks and takeover after SIGKILL', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let brokerUri: string;
  let common: Parameters<typeof startOrchestratorProcess>[0];
  let a: OrchestratorProcess;
  const bs: OrchestratorProcess[] = [];
  const agents: AgentProcess[] = [];
  const gates: string[] = [];

  before(async () => {
    pki = await makePki(NODES);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, config: { 'controller-cns': ['orch-*'] } });
    brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    common = {
      pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(), keyPrefix: `takeover${process.pid}`,
      config: { 'node-run-lock-duration': LOCK_DURATION_MS, 'job-feed-linger': 1, 'voting-timeout': VOTING_TIMEOUT_S },
    };
    a = await startOrchestratorProcess({ ...common, name: 'orch-a' });
    for (const name of NODES) agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], config: { 'command-whitelist': WHITELIST } }));
    await waitForConnected(a, NODES.length);
  });

  after(async () => {
    for (const g of gates) writeFileSync(g, ''); // whatever still holds ends
    for (const b of bs) await b.stop();
    await stopStack({ agents, orch: a, broker, redis, pki });
  });

  /** Starts B (another process, another controller identity) and waits until it sees the nodes. */
  async function startB(): Promise<OrchestratorProcess> {
    const b = await startOrchestratorProcess({ ...common, name: 'orch-b' });
    bs.push(b);
    await within(waitForConnected(b, NODES.length), 'B sees the nodes connected', MARKER_WAIT_MS);
    return b;
  }

  /** Starts a `hold` job through A on `nodes` and waits until its command runs on each; returns its id, run dir and gate. */
  async function holdThroughA(nodes: string[]): Promise<{ id: string; runs: string; gate: string }> {
    const runs = mkdtempSync(join(tmpdir(), 'baton-chef-takeover-'));
    const gate = join(runs, 'gate');
    gates.push(gate);
    const res = await a.api(`${PUSHY}/jobs`, { body: { command: 'hold', nodes, env: { RUNS: runs, GATE: gate }, capture_output: true, run_timeout: 300 } });
    assert.equal(res.status, 201, res.text);
    const id = res.json.id as string;
    await Promise.all(nodes.map((n) => appears(join(runs, `${n}.started`), MARKER_WAIT_MS, 'the command never ran')));
    for (const n of nodes) assert.ok(a.logs.some((l) => l.msg === 'node run started' && l.job === id && l.node === n), `A runs ${n}`);
    return { id, runs, gate };
  }

  const availability = async (o: OrchestratorProcess): Promise<Record<string, string>> => {
    const res = await o.api(`${PUSHY}/node_states`);
    assert.equal(res.status, 200, res.text);
    return Object.fromEntries((res.json as { node_name: string; availability: string }[]).map((n) => [n.node_name, n.availability]));
  };
  const feedOf = (o: OrchestratorProcess, id: string) => new SseClient(o.url(`${PUSHY}/jobs_status_feed/${id}`), { ca: o.ca, token: ADMIN_TOKEN });

  it('a node running a job started through A is busy when read through B, and available there once the job ended', async () => {
    const { id, gate } = await holdThroughA(['n1']);
    const b = await startB();
    try {
      assert.deepEqual(await availability(b), { n1: 'busy', n2: 'available' });
      assert.equal((await b.api(`${PUSHY}/node_states/n1`)).json.availability, 'busy');
      const feed = feedOf(b, id);
      writeFileSync(gate, '');
      await within(feed.done, `job ${id} ends on B's feed`, JOB_END_WAIT_MS);
      assert.equal(feed.events.at(-1)?.event, 'job_complete');
      assert.equal(feed.events.at(-1)?.data.status, 'complete');
      assert.deepEqual(await availability(b), { n1: 'available', n2: 'available' });
      assert.deepEqual(await availability(a), { n1: 'available', n2: 'available' });
    } finally {
      await b.stop(); // the next test's runs are A's alone until it starts B again
    }
  });

  it('a job started through A that is SIGKILLed mid-run completes through B, every node run exactly once, no node left busy', async () => {
    const { id, runs, gate } = await holdThroughA(NODES);
    const b = await startB();
    assert.deepEqual(await availability(b), { n1: 'busy', n2: 'busy' });
    const feed = feedOf(b, id);
    await within(feed.open, 'B opens the job feed');
    await a.stop('SIGKILL');
    writeFileSync(gate, '');
    await within(feed.done, `job ${id} ends on B's feed`, JOB_END_WAIT_MS);

    assert.equal(feed.events.at(-1)?.event, 'job_complete');
    assert.equal(feed.events.at(-1)?.data.status, 'complete');
    const runEnds = feed.events.filter((e) => e.event === 'run_complete');
    assert.deepEqual(runEnds.map((e) => e.data.node).sort(), NODES);
    for (const e of runEnds) assert.equal(e.data.status, 'success', JSON.stringify(e.data));
    for (const n of NODES) {
      assert.ok(b.logs.some((l) => l.msg === 're-attaching to a node run' && l.job === id && l.node === n), `B took over ${n}'s run`);
      assert.deepEqual(readFileSync(join(runs, n), 'utf8').split('\n').filter(Boolean), [`ran ${id}`], `${n} ran once`);
      const out = await b.api(`${PUSHY}/jobs/${id}/output/${n}/stdout`);
      assert.equal(out.status, 200, out.text);
      assert.equal(out.text, `done ${n}\n`);
    }
    const job = (await b.api(`${PUSHY}/jobs/${id}`)).json;
    assert.equal(job.status, 'complete');
    assert.deepEqual(job.nodes, { complete: NODES });
    assert.deepEqual(await availability(b), { n1: 'available', n2: 'available' });
  });

  it('a job whose vote is under way when A is SIGKILLed is voted and run through B, each node once', async () => {
    if (a.proc.exitCode !== null || a.proc.signalCode !== null) {
      a = await startOrchestratorProcess({ ...common, name: 'orch-a' });
      await within(waitForConnected(a, NODES.length), 'A sees the nodes connected', MARKER_WAIT_MS);
    }
    const b = bs.find((o) => o.proc.exitCode === null && o.proc.signalCode === null) ?? (await startB()); // one B at a time: one controller identity
    const frozen = agents[1]!; // n2: connected, but answers nothing, so A's vote waits for it
    const runs = mkdtempSync(join(tmpdir(), 'baton-chef-vote-'));
    const gate = join(runs, 'gate');
    writeFileSync(gate, '');
    frozen.proc.kill('SIGSTOP');
    try {
      const res = await a.api(`${PUSHY}/jobs`, { body: { command: 'hold', nodes: NODES, quorum: 1, env: { RUNS: runs, GATE: gate }, run_timeout: 60 } });
      assert.equal(res.status, 201, res.text);
      const id = res.json.id as string;
      const feed = feedOf(b, id);
      const voted = (node: string) => feed.events.some((e) => e.event === 'quorum_vote' && e.data.node === node);
      await within(feed.waitFor((e) => e.event === 'quorum_vote' && e.data.node === 'n1'), 'n1 acks A\'s commit', MARKER_WAIT_MS);
      assert.ok(!voted('n2'), 'the vote is still under way (n2 has not answered)');
      await a.stop('SIGKILL');
      await within(feed.done, `job ${id} ends on B's feed`, JOB_END_WAIT_MS);
      assert.ok(b.logs.some((l) => l.msg === 'taking up the vote of a command job' && l.job === id), 'B took the vote up');
      assert.equal(feed.events.at(-1)?.data.status, 'complete', JSON.stringify(feed.events.at(-1)));
      const job = (await b.api(`${PUSHY}/jobs/${id}`)).json;
      assert.equal(job.status, 'complete');
      assert.deepEqual(job.nodes, { complete: ['n1'], unavailable: ['n2'] });
      assert.deepEqual(readFileSync(join(runs, 'n1'), 'utf8').split('\n').filter(Boolean), [`ran ${id}`], 'n1 ran once');
      assert.ok(!existsSync(join(runs, 'n2')), 'n2 never ran');
      assert.equal((await availability(b)).n1, 'available');
    } finally {
      frozen.proc.kill('SIGCONT');
    }
  });
});
