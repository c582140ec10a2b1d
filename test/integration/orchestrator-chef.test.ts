// The Chef Push Jobs face end to end: real Redis, broker, orchestrator and agents running
// whitelisted commands. Voting and quorum, node and job states, output capture, live output,
// both SSE feeds read with a real SSE parser, and the API's refusals.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, startSilentAgent, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, waitForConnected, stopStack, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SseClient } from '../helpers/sse.ts';

const PUSHY = '/organizations/test/pushy';
const WHITELIST = {
  'echo hello': 'echo hello; echo oops >&2',
  '/^say (.+)$/': 'echo "$1"',
  env: 'echo "$CHEF_PUSH_NODE_NAME $CHEF_PUSH_JOB_ID $FOO"; cat "$CHEF_PUSH_JOB_FILE"',
  wait: 'echo started; while [ ! -f "$GATE" ]; do sleep 0.05; done; echo finished',
  'sleep long': 'sleep 61',
  big: "head -c 5000 /dev/zero | tr '\\0' x; echo END",
  fail: 'echo failing >&2; exit 4',
};

describe('orchestrator: Chef Push Jobs API', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  let brokerUri: string;
  const agents = new Map<string, AgentProcess>();
  let scratch: string;

  before(async () => {
    pki = await makePki(['n1', 'n2', 'n3', 'hung']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    orch = await startOrchestratorProcess({
      pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(),
      config: { 'voting-timeout': 2, 'max-output-bytes': 2048, 'job-feed-linger': 2, 'org-feed-expiration': 3 },
    });
    for (const name of ['n1', 'n2', 'n3']) agents.set(name, await startAgentProcess({ pki, name, brokerUris: [brokerUri], config: { 'command-whitelist': WHITELIST } }));
    await waitForConnected(orch, 3);
    scratch = mkdtempSync(join(tmpdir(), 'baton-chef-'));
  });

  after(() => stopStack({ agents: agents.values(), orch, broker, redis, pki }));

  const post = (body: unknown) => orch.api(`${PUSHY}/jobs`, { body });
  const job = async (id: string, q = '') => (await orch.api(`${PUSHY}/jobs/${id}${q}`)).json;
  const complete = (id: string) => orch.waitForLog((l) => l.msg === 'command job complete' && l.job === id);
  const started = (id: string, node: string) => orch.waitForLog((l) => l.msg === 'node run started' && l.job === id && l.node === node);
  async function start(body: object): Promise<string> {
    const res = await post(body);
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.equal(res.headers.location, orch.url(`${PUSHY}/jobs/${res.json.id}`));
    return res.json.id as string;
  }
  const sse = (path: string, lastEventId?: string) => new SseClient(orch.url(`${PUSHY}${path}`), { ca: orch.ca, token: ADMIN_TOKEN, ...(lastEventId ? { lastEventId } : {}) });

  it('runs a command when the quorum acks, and keeps its output', async () => {
    const id = await start({ command: 'echo hello', nodes: ['n1', 'n2'], capture_output: true });
    await complete(id);
    const j = await job(id);
    assert.equal(j.status, 'complete');
    assert.deepEqual(j.nodes, { complete: ['n1', 'n2'] });
    assert.equal(j.command, 'echo hello');
    assert.equal(j.run_timeout, 3600);
    assert.equal(j.capture_output, true);
    assert.equal(j.file_specified, false);
    assert.match(j.created_at, /GMT$/);
    const out = await orch.api(`${PUSHY}/jobs/${id}/output/n1/stdout`);
    assert.equal(out.status, 200);
    assert.equal(out.headers['content-type'], 'application/octet-stream');
    assert.equal(out.text, 'hello\n');
    assert.equal((await orch.api(`${PUSHY}/jobs/${id}/output/n2/stderr`)).text, 'oops\n');
    assert.ok((await orch.api(`${PUSHY}/jobs`)).json.some((x: { id: string; status: string }) => x.id === id && x.status === 'complete'));
  });

  it('passes env, file and the job identity; include_file shows the file', async () => {
    const id = await start({ command: 'env', nodes: ['n1'], env: { FOO: 'bar' }, file: 'raw:file-content\n', capture_output: true, quorum: 1 });
    await complete(id);
    assert.equal((await orch.api(`${PUSHY}/jobs/${id}/output/n1/stdout`)).text, `n1 ${id} bar\nfile-content\n`);
    assert.equal((await job(id)).file_specified, true);
    const withFile = await job(id, '?include_file=true');
    assert.equal(withFile.file, 'raw:file-content\n');
    assert.equal(withFile.file_specified, undefined);
    assert.deepEqual(withFile.env, { FOO: 'bar' });
  });

  it('regex whitelist entries pass captures as arguments, never as shell text', async () => {
    const marker = join(scratch, 'injected');
    const id = await start({ command: `say hi; touch ${marker}`, nodes: ['n2'], capture_output: true });
    await complete(id);
    assert.equal((await orch.api(`${PUSHY}/jobs/${id}/output/n2/stdout`)).text, `hi; touch ${marker}\n`);
    assert.throws(() => execFileSync('test', ['-e', marker]), 'nothing was injected');
  });

  it('quorum failed: a busy node nacks, an unknown one is unavailable, a non-whitelisted command is nacked', async () => {
    const gate = join(scratch, 'gate-busy');
    const busy = await start({ command: 'wait', nodes: ['n1'], env: { GATE: gate } });
    await started(busy, 'n1');
    assert.equal((await orch.api(`${PUSHY}/node_states/n1`)).json.availability, 'busy');
    const id = await start({ command: 'echo hello', nodes: ['n1', 'n2', 'ghost'], quorum: 3 });
    await complete(id);
    const j = await job(id);
    assert.equal(j.status, 'quorum_failed');
    assert.deepEqual(j.nodes, { nacked: ['n1'], unavailable: ['ghost'], was_ready: ['n2'] });
    writeFileSync(gate, '');
    await complete(busy);
    assert.equal((await job(busy)).status, 'complete');
    assert.equal((await orch.api(`${PUSHY}/node_states/n1`)).json.availability, 'available');

    const refused = await start({ command: 'rm -rf /', nodes: ['n2'] });
    await complete(refused);
    assert.equal((await job(refused)).status, 'quorum_failed');
    assert.deepEqual((await job(refused)).nodes, { nacked: ['n2'] });

    const partial = await start({ command: 'fail', nodes: ['n2', 'ghost'], quorum: 1, capture_output: true });
    await complete(partial);
    const p = await job(partial);
    assert.equal(p.status, 'complete');
    assert.deepEqual(p.nodes, { failed: ['n2'], unavailable: ['ghost'] });
    assert.equal((await orch.api(`${PUSHY}/jobs/${partial}/output/n2/stderr`)).text, 'failing\n');
  });

  it('a connected node that does not answer the commit within voting-timeout is unavailable', async () => {
    const hung = await startSilentAgent(pki, [brokerUri], 'hung');
    try {
      await waitForConnected(orch, 4);
      const id = await start({ command: 'echo hello', nodes: ['n1', 'hung'], quorum: 1 });
      await complete(id);
      const j = await job(id);
      assert.equal(j.status, 'complete');
      assert.deepEqual(j.nodes, { complete: ['n1'], unavailable: ['hung'] });
    } finally {
      await hung.stop();
    }
  });

  it('run_timeout kills the command (its whole process group)', async () => {
    const id = await start({ command: 'sleep long', nodes: ['n2'], run_timeout: 1 });
    await complete(id);
    const j = await job(id);
    assert.equal(j.status, 'timed_out');
    assert.deepEqual(j.nodes, { timed_out: ['n2'] });
    assert.throws(() => execFileSync('pgrep', ['-f', 'sleep 61']), 'no sleep left behind');
  });

  it('keeps the end of output larger than max-output-bytes, marked', async () => {
    const id = await start({ command: 'big', nodes: ['n1'], capture_output: true });
    await complete(id);
    const out = (await orch.api(`${PUSHY}/jobs/${id}/output/n1/stdout`)).text;
    assert.ok(Buffer.byteLength(out) <= 2048, `${Buffer.byteLength(out)} bytes`);
    assert.match(out, /^\[baton: output truncated: the first \d+ of 5004 bytes were dropped\]\nx+END\n$/);
  });

  it('follows output live while the command runs', async () => {
    const gate = join(scratch, 'gate-follow');
    const id = await start({ command: 'wait', nodes: ['n2'], env: { GATE: gate }, capture_output: true });
    await started(id, 'n2');
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(orch.url(`${PUSHY}/jobs/${id}/output/n2/stdout?follow=true`), { ca: orch.ca, headers: { 'x-authentication': ADMIN_TOKEN } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
          if (text === 'started\n') writeFileSync(gate, ''); // only once the first line came live
        });
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, 'started\nfinished\n');
    await complete(id);
  });

  it('a node whose agent dies mid-run has crashed', async () => {
    const gate = join(scratch, 'gate-crash');
    const id = await start({ command: 'wait', nodes: ['n3'], env: { GATE: gate } });
    await started(id, 'n3');
    await agents.get('n3')!.stop('SIGKILL');
    await complete(id);
    writeFileSync(gate, ''); // lets the orphaned command end
    assert.deepEqual((await job(id)).nodes, { crashed: ['n3'] });
    assert.equal((await orch.api(`${PUSHY}/node_states/n3`)).json.status, 'down');
    agents.set('n3', await startAgentProcess({ pki, name: 'n3', brokerUris: [brokerUri], config: { 'command-whitelist': WHITELIST } }));
  });

  it('node_states lists every node up or down', async () => {
    const states = (await orch.api(`${PUSHY}/node_states`)).json as { node_name: string; status: string; updated_at: string }[];
    assert.deepEqual(states.map((s) => s.node_name).sort(), ['hung', 'n1', 'n2', 'n3']);
    assert.equal(states.find((s) => s.node_name === 'hung')!.status, 'down');
    for (const s of states) assert.match(s.updated_at, /GMT$/);
    const unknown = await orch.api(`${PUSHY}/node_states/nobody`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.error[0], /nobody/);
  });

  it('job feed: every event in order, replay after Last-Event-ID, then linger, then a summary', async () => {
    const gate = join(scratch, 'gate-feed');
    const id = await start({ command: 'wait', nodes: ['n1'], env: { GATE: gate } });
    const feed = sse(`/jobs_status_feed/${id}`);
    await feed.waitFor((e) => e.event === 'run_start');
    assert.equal(feed.status, 200);
    assert.equal(feed.headers['x-accel-buffering'], 'no');
    writeFileSync(gate, '');
    await feed.done;
    assert.deepEqual(feed.events.map((e) => e.event), ['start', 'quorum_vote', 'quorum_succeeded', 'run_start', 'run_complete', 'job_complete']);
    assert.equal(feed.events[0]!.data.command, 'wait');
    assert.equal(feed.events[1]!.data.node, 'n1');
    assert.equal(feed.events[4]!.data.status, 'success');
    assert.equal(feed.events[5]!.data.status, 'complete');

    const replay = sse(`/jobs_status_feed/${id}`, feed.events[2]!.id);
    await replay.done;
    assert.deepEqual(replay.events.map((e) => e.event), ['run_start', 'run_complete', 'job_complete'], 'after Last-Event-ID, within the linger');

    // After the linger (2 s), one summary event with the job.
    for (;;) {
      const late = sse(`/jobs_status_feed/${id}`);
      await late.done;
      if (late.events[0]?.event === 'summary') {
        assert.equal(late.events.length, 1);
        assert.equal(late.events[0].data.status, 'complete');
        break;
      }
      assert.equal(late.events.at(-1)?.event, 'job_complete', 'still lingering: the whole feed');
    }
  });

  it('organisation feed: only new events without Last-Event-ID; start_of_history for an unknown one; expiry', async () => {
    const live = sse('/jobs_status_feed');
    await live.open; // nothing comes until there is activity
    const id = await start({ command: 'echo hello', nodes: ['n2'] });
    const done = await live.waitFor((e) => e.event === 'job_complete' && e.data.job === id);
    live.close();
    assert.equal(live.events[0]!.event, 'start', 'no history without Last-Event-ID');
    assert.equal(live.events[0]!.data.job, id);
    assert.equal(live.events[0]!.data.command, 'echo hello');
    assert.equal(done.data.status, 'complete');

    const fromStart = sse('/jobs_status_feed', live.events[0]!.id);
    const next = await fromStart.waitFor((e) => e.data.job === id);
    fromStart.close();
    assert.equal(next.event, 'job_complete', 'a known id: the events after it');

    const unknown = sse('/jobs_status_feed', '1-0');
    await unknown.waitFor((e) => e.event === 'job_complete' && e.data.job === id);
    unknown.close();
    assert.equal(unknown.events[0]!.event, 'start_of_history');

    // After org-feed-expiration (3 s) the events are gone: only the synthetic start remains.
    for (;;) {
      const expired = sse('/jobs_status_feed', 'unknown-id');
      await expired.waitFor((e) => e.event === 'start_of_history');
      const more = expired.events.length;
      expired.close();
      if (more === 1) break;
    }
  });

  it('refuses bad requests with Chef\'s error format, naming the problem', async () => {
    const cases: [unknown, RegExp][] = [
      [{ command: 'echo hello', nodes: ['n1'], bogus: 1 }, /bogus/],
      [{ command: 'echo hello', nodes: ['n1'], env: { FOO: 1 } }, /env/],
      [{ command: 'echo hello', nodes: ['n1'], file: 'plain text' }, /file/],
      [{ command: 'echo hello', nodes: ['n1'], file: 'base64:!!!' }, /base64/],
      [{ command: 'echo hello', nodes: ['n1'], file: `raw:${'x'.repeat(100 * 1024 + 1)}` }, /102401 bytes decoded/],
      [{ command: 'echo hello', nodes: ['n1'], quorum: 2 }, /quorum/],
      [{ command: 'echo hello', nodes: [] }, /nodes/],
      [{ nodes: ['n1'] }, /command/],
      [{ command: 'echo hello', nodes: ['n1'], run_timeout: 0 }, /run_timeout/],
    ];
    for (const [body, msg] of cases) {
      const res = await post(body);
      assert.equal(res.status, 400, JSON.stringify(body).slice(0, 100));
      assert.ok(Array.isArray(res.json.error), JSON.stringify(res.json));
      assert.match(res.json.error[0], msg);
    }
    const huge = await orch.api(`${PUSHY}/jobs`, { rawBody: JSON.stringify({ command: 'x', nodes: ['n1'], pad: 'y'.repeat(1024 * 1024) }) });
    assert.equal(huge.status, 400);
    assert.match(huge.json.error[0], /larger than 1048576 bytes/);
    const notJson = await orch.api(`${PUSHY}/jobs`, { rawBody: '{nope' });
    assert.equal(notJson.status, 400);
    assert.equal((await orch.api(`${PUSHY}/jobs/999999`)).status, 404);
    const id = await start({ command: 'echo hello', nodes: ['n1'] });
    await complete(id);
    const uncaptured = await orch.api(`${PUSHY}/jobs/${id}/output/n1/stdout`);
    assert.equal(uncaptured.status, 404);
    assert.match(uncaptured.json.error[0], /capture_output/);
    const noAccept = await orch.api(`${PUSHY}/jobs_status_feed/${id}`, { headers: { accept: 'application/json' } });
    assert.equal(noAccept.status, 406);
    assert.equal((await orch.api(`${PUSHY}/jobs`, { body: { command: 'x', nodes: ['n1'] }, token: 'wrong-token-0123456789' })).status, 401);
  });
});
