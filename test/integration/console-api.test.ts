// The web console's server side end to end: real Redis, broker, orchestrator and agents over TLS.
// /console/api/me, the job feed (to its end, resumed after Last-Event-ID), the feed of all jobs,
// and the app's files (SPA paths, CSP, no traversal).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { projectPath } from '../../lib/paths.ts';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { http } from '../helpers/http.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, VIEWER_TOKEN, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SseClient, type SseEventRead } from '../helpers/sse.ts';

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

describe('orchestrator: web console API and files', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  const agents: AgentProcess[] = [];
  const feeds: SseClient[] = [];
  let scratch: string;

  before(async () => {
    pki = await makePki(['node1', 'node2']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir() });
    for (const name of ['node1', 'node2']) agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`] }));
    await waitForConnected(orch, 2);
    scratch = mkdtempSync(join(tmpdir(), 'baton-console-'));
  });
  after(async () => {
    for (const f of feeds) f.close();
    await stopStack({ agents, orch, broker, redis, pki });
  });

  const feed = (query: string, opts: { token?: string; lastEventId?: string } = {}) => {
    const f = new SseClient(orch.url(`/console/api/feed${query}`), { ca: orch.ca, token: opts.token ?? ADMIN_TOKEN, ...(opts.lastEventId ? { lastEventId: opts.lastEventId } : {}) });
    feeds.push(f);
    return f;
  };
  const submit = async (body: object): Promise<string> => {
    const res = await orch.api('/orchestrator/v1/command/task', { body });
    assert.equal(res.status, 202, res.text);
    return res.json.job.name as string;
  };

  it('tells who the token is and what it may do, and refuses a wrong token with a message', async () => {
    const admin = await orch.api('/console/api/me');
    assert.equal(admin.status, 200);
    assert.deepEqual(admin.json, { login: 'admin', permissions: ['*'], can: { view_jobs: true, run_jobs: true, stop_jobs: true, view_inventory: true, view_tasks: true } });
    assert.equal(admin.headers['content-security-policy'], CSP);

    const viewer = await orch.api('/console/api/me', { token: VIEWER_TOKEN });
    assert.equal(viewer.status, 200);
    assert.equal(viewer.json.login, 'viewer');
    assert.deepEqual(viewer.json.can, { view_jobs: true, run_jobs: false, stop_jobs: false, view_inventory: true, view_tasks: true });

    const wrong = await orch.api('/console/api/me', { token: 'not-a-token' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.json.kind, 'puppetlabs.rbac/user-unauthenticated');
    assert.equal(wrong.json.msg, 'the token is not valid');
    const none = await http(orch.url('/console/api/me'), { ca: orch.ca });
    assert.equal(none.status, 401);
    assert.match(none.json.msg, /X-Authentication/);
    // A percent-encoded "api" is not a way around the token.
    const encoded = await http(orch.url('/console/%61pi/me'), { ca: orch.ca });
    assert.equal(encoded.text.includes('"login"'), false, encoded.text);
  });

  it('feeds a job: the job, a node event per job event, coalesced job changes, then end; resumes after Last-Event-ID', async () => {
    const gate = join(scratch, 'gate-1');
    const id = await submit({ task: 'sample::wait_for', params: { gate, word: 'through' }, scope: { nodes: ['node1', 'node2'] } });
    const live = feed(`?job=${id}`);
    await live.open;
    assert.equal(live.status, 200);
    assert.match(String(live.headers['content-type']), /^text\/event-stream/);
    const first = await live.waitFor(() => true);
    assert.equal(first.event, 'job');
    assert.equal(first.data.name, id);
    assert.equal(first.data.type, 'task');
    // Both nodes run (held at the gate): their node events come while the job goes on.
    for (const node of ['node1', 'node2']) await live.waitFor((e) => e.event === 'node' && e.data.name === node && e.data.state === 'running');
    writeFileSync(gate, '');
    await live.waitFor((e) => e.event === 'end');
    await live.done;

    const nodeEvents = live.events.filter((e) => e.event === 'node');
    const ids = nodeEvents.map((e) => Number(e.id));
    assert.ok(ids.every((n) => Number.isInteger(n) && n > 0), `node events carry job event ids: ${ids.join(',')}`);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in order');
    assert.equal(new Set(ids).size, ids.length, 'one node event per job event');
    for (const node of ['node1', 'node2']) {
      const last = nodeEvents.filter((e) => e.data.name === node).at(-1)!;
      assert.equal(last.data.state, 'finished');
      assert.deepEqual(last.data.result, { _output: 'through\n' });
    }
    const jobEvents = live.events.filter((e) => e.event === 'job');
    assert.equal(jobEvents.at(-1)!.data.state, 'finished');
    assert.deepEqual(jobEvents.at(-1)!.data.node_states, { finished: 2 });
    assert.equal(live.events.at(-1)!.event, 'end');
    assert.equal(live.events.at(-1)!.data.state, 'finished');
    // The job event ids match the Puppet face's events: a node event for each node event there.
    const apiEvents = (await orch.api(`/orchestrator/v1/jobs/${id}/events`)).json.items as { id: string; details: { node?: string } }[];
    assert.deepEqual(ids, apiEvents.filter((e) => e.details.node !== undefined).map((e) => Number(e.id)));

    // Resumed after the first node event: the job, then only what came after it, then end.
    const resumed = feed(`?job=${id}`, { lastEventId: String(ids[0]) });
    await resumed.done;
    assert.equal(resumed.events[0]!.event, 'job');
    assert.deepEqual(resumed.events.filter((e) => e.event === 'node').map((e) => Number(e.id)), ids.slice(1));
    assert.equal(resumed.events.at(-1)!.event, 'end');
  });

  it('answers 404 in the Puppet format for the feed of an unknown job, before any stream', async () => {
    for (const job of ['999999', 'nope']) {
      const res = await orch.api(`/console/api/feed?job=${job}`, { headers: { accept: 'text/event-stream' } });
      assert.equal(res.status, 404);
      assert.equal(res.json.kind, 'puppetlabs.orchestrator/unknown-job');
      assert.match(String(res.headers['content-type']), /^application\/json/);
    }
    const viewerless = await orch.api('/console/api/nothing-here');
    assert.equal(viewerless.status, 404);
    assert.equal(viewerless.json.kind, 'puppetlabs.orchestrator/not-found');
  });

  it('feeds every job: a new job and its end, resumable by the event id', async () => {
    const all = feed('');
    await all.open;
    assert.equal(all.status, 200);
    const id = await submit({ task: 'sample::echo', params: { message: 'hi' }, scope: { nodes: ['node1'] } });
    const created = await all.waitFor((e) => e.event === 'job' && e.data.name === id);
    assert.ok(created.id, 'an id to resume from');
    const ended = await all.waitFor((e) => e.event === 'job' && e.data.name === id && e.data.state === 'finished');
    assert.deepEqual(ended.data.node_states, { finished: 1 });
    await waitForJobEnd(orch, id);

    // Resumed after the creation: the end comes again, the creation does not.
    const second = await submit({ task: 'sample::echo', params: { message: 'again' }, scope: { nodes: ['node2'] } });
    const resumed = feed('', { lastEventId: created.id! });
    const seen = (e: SseEventRead) => e.event === 'job' && e.data.name === second && e.data.state === 'finished';
    await resumed.waitFor(seen);
    assert.ok(resumed.events.some((e) => e.data.name === id && e.data.state === 'finished'), 'the first job\'s end, after the id');
    assert.equal(resumed.events.some((e) => e.id === created.id), false, 'nothing up to Last-Event-ID again');
  });

  it('lists jobs of every face filtered by type, state and owner', async () => {
    const res = await orch.api('/console/api/jobs?type=task&state=finished&owner=admin&limit=2');
    assert.equal(res.status, 200);
    assert.equal(res.json.items.length, 2);
    assert.ok(res.json.pagination.total >= 3);
    for (const j of res.json.items) assert.deepEqual([j.type, j.state, j.owner.login], ['task', 'finished', 'admin']);
    assert.ok(Number(res.json.items[0].name) > Number(res.json.items[1].name), 'newest first');
    assert.equal((await orch.api('/console/api/jobs?owner=nobody')).json.pagination.total, 0);
    const bad = await orch.api('/console/api/jobs?state=sleeping');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.kind, 'puppetlabs.orchestrator/validation-error');
    assert.equal((await orch.api('/console/api/jobs', { token: 'not-a-token' })).status, 401);
  });

  it('serves the app for every console path without a token, with its CSP, and no file outside it', async () => {
    const built = existsSync(projectPath('dist', 'console', 'index.html'));
    const page = await http(orch.url('/console/jobs/5'), { ca: orch.ca });
    assert.equal(page.headers['content-security-policy'], CSP);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    if (built) {
      assert.equal(page.status, 200, page.text);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.equal(page.headers['cache-control'], 'no-cache');
      assert.match(page.text, /<html/i);
      const root = await http(orch.url('/console/'), { ca: orch.ca });
      assert.equal(root.text, page.text, 'the same app at /console/');
      const script = await http(orch.url('/console/assets/app.js'), { ca: orch.ca });
      assert.equal(script.status, 200);
      assert.match(String(script.headers['content-type']), /^text\/javascript/);
    } else {
      // Not built (yet): a clear answer, not a crash.
      assert.equal(page.status, 503);
      assert.equal(page.json.kind, 'puppetlabs.orchestrator/service-unavailable');
      assert.match(page.json.msg, /npm run build/);
    }
    // Percent-encoded dots and slashes reach the server as they are (a URL client resolves `..` and `%2e%2e` segments itself).
    for (const path of ['/console/assets/..%2f..%2fpackage.json', '/console/assets/%2e%2e%2f%2e%2e%2fpackage.json', '/console/assets/.hidden', '/console/assets/app.js%00.html']) {
      const res = await http(orch.url(path), { ca: orch.ca });
      assert.equal(res.status, 404, `${path}: ${res.status} ${res.text.slice(0, 200)}`);
      assert.equal(res.json.kind, 'puppetlabs.orchestrator/not-found');
      assert.equal(res.text.includes('"name": "baton"'), false, `${path} gave package.json`);
    }
  });
});
