// The edges of the orchestrator: connections that stop mid-TLS-handshake or mid-request-head are
// closed at their deadlines while a real client is served, and an event stream outlives those
// deadlines; /status/v1/services turns unavailable (503) while Redis is frozen and back after; NUL
// and control characters in any path segment of the three faces are a 400 in the face's format
// that creates nothing.
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { metricValue, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { http } from '../helpers/http.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { within } from '../helpers/pcp-client.ts';
import { holdHandshake, holdRequestHead, type Held } from '../helpers/held-connections.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { pollUntil } from '../helpers/postgres.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SseClient } from '../helpers/sse.ts';

/** Connections held in each way. */
const HELD = 250;
/** The handshake and request-head deadlines: long enough to open 500 connections on a shared machine. */
const DEADLINE_MS = 5_000;
/** requestTimeout: a whole request must be read within this; a response may stream far longer. */
const REQUEST_TIMEOUT_MS = 6_000;
/** A deadline may fire this much later (sweep period, a busy machine)... */
const LATE_MS = 3_000;
/** ...and look this much early (the server accepts a little after the client saw its connection). */
const EARLY_MS = 100;
const REDIS_TIMEOUT_MS = 500;
/** From SIGSTOP to a 503, and from SIGCONT to a 200: a probe's bound plus a busy machine. */
const HEALTH_BOUND_MS = 5_000;

/** Finishes TLS, then sends a request head that never ends. */
const holdHead = (port: number, ca: Buffer): Promise<Held> =>
  holdRequestHead(port, { ca, servername: 'localhost' }, 'GET /orchestrator/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Authentication: ');

/** A private stack (Redis, a broker, the orchestrator under test with `config`), stopped after its suite; held sockets destroyed first. */
function edgeStack(config: Record<string, unknown>) {
  const stack = { pki: undefined as unknown as TestPki, redis: undefined as unknown as TestRedis, broker: undefined as unknown as BrokerProcess, orch: undefined as unknown as OrchestratorProcess, sockets: [] as Socket[] };
  before(async () => {
    stack.pki = await makePki([]);
    stack.redis = await startRedis();
    stack.broker = await startBrokerProcess({ pki: stack.pki, logLevel: 'info' });
    stack.orch = await startOrchestratorProcess({ pki: stack.pki, brokerUris: [`wss://127.0.0.1:${stack.broker.port}/pcp2/`], redisUrl: stack.redis.url, codedir: makeCodedir(), config: { 'log-level': 'info', ...config } });
  });
  after(async () => {
    for (const s of stack.sockets) s.destroy();
    if (stack.redis?.paused) stack.redis.resume();
    await stopStack({ agents: [], orch: stack.orch, broker: stack.broker, redis: stack.redis, pki: stack.pki });
  });
  return stack;
}

describe('orchestrator edges', () => {
  const stack = edgeStack({ 'redis-timeout': REDIS_TIMEOUT_MS, 'tls-handshake-timeout': DEADLINE_MS, 'headers-timeout': DEADLINE_MS, 'request-timeout': REQUEST_TIMEOUT_MS, 'voting-timeout': 1 });
  const { sockets } = stack;

  const status = async () => {
    const res = await stack.orch.api('/status/v1/services', { token: undefined });
    return { code: res.status, s: res.json['orchestrator-service'] };
  };
  const metrics = async () => (await stack.orch.api('/metrics', { token: undefined })).text;

  it('closes 500 connections stopped mid-handshake and mid-request-head at their deadlines while serving a real client', async () => {
    const before = await metrics();
    const held: Held[] = [];
    for (let i = 0; i < HELD; i++) held.push(await holdHandshake(stack.orch.port, i % 2 === 1));
    for (let i = 0; i < HELD; i++) held.push(await holdHead(stack.orch.port, stack.orch.ca));
    for (const h of held) sockets.push(h.socket);
    // While they are held, a real client is served, and /status counts them as pending.
    const served = await stack.orch.api('/orchestrator/v1/jobs?limit=1');
    assert.equal(served.status, 200, served.text);
    const { code, s } = await status();
    assert.equal(code, 200, JSON.stringify(s));
    assert.ok(s.status.pending_connections > 0, `pending connections: ${s.status.pending_connections}`);

    const open = new Set(held.map((_, i) => i));
    held.forEach((h, i) => void h.closedAt.then(() => open.delete(i)));
    const closed = await within(Promise.all(held.map((h) => h.closedAt)), 'every held connection closed', DEADLINE_MS + LATE_MS + 5_000).catch((err: Error) => {
      throw new Error(`${err.message}; still open: ${[...open].filter((i) => i < HELD).length} mid-handshake, ${[...open].filter((i) => i >= HELD).length} mid-head`);
    });
    closed.forEach((at, i) => {
      const after = at - held[i]!.since;
      assert.ok(after >= DEADLINE_MS - EARLY_MS, `connection ${i} closed after ${Math.round(after)} ms, before its deadline`);
      assert.ok(after <= DEADLINE_MS + LATE_MS, `connection ${i} closed after ${Math.round(after)} ms`);
    });
    const text = await metrics();
    const count = (t: string, reason: string) => metricValue(t, 'baton_orchestrator_connections_refused_total', { reason }) || 0;
    const grew = (reason: string) => count(text, reason) - count(before, reason);
    assert.ok(grew('handshake_timeout') >= HELD, `handshake_timeout grew by ${grew('handshake_timeout')}`);
    assert.ok(grew('headers_timeout') >= HELD, `headers_timeout grew by ${grew('headers_timeout')}`);
    assert.equal((await status()).s.status.pending_connections, 0);
  });

  it('keeps an event stream open past the request and header deadlines', async () => {
    const feed = new SseClient(stack.orch.url('/organizations/edge/pushy/jobs_status_feed'), { ca: stack.orch.ca, token: ADMIN_TOKEN });
    await within(feed.open, 'the feed opening');
    assert.equal(feed.status, 200);
    // The time under test: longer than request-timeout and headers-timeout.
    await new Promise((resolve) => setTimeout(resolve, REQUEST_TIMEOUT_MS + 1_000));
    const job = await stack.orch.api('/organizations/edge/pushy/jobs', { body: { command: 'uptime', nodes: ['ghost'] } });
    assert.equal(job.status, 201, job.text);
    const event = await within(feed.waitFor((e) => e.data.job === job.json.id), 'the new job on the still open feed');
    assert.ok(event);
    feed.close();
  });

  it('reports Redis unavailable (503, an alert, the gauge at 0) while it is frozen, and running again after', async () => {
    assert.equal((await status()).code, 200);
    stack.redis.pause();
    let down;
    try {
      down = await until('a 503 with Redis frozen', HEALTH_BOUND_MS, async () => {
        const r = await status();
        return r.code === 503 ? r.s : undefined;
      });
      assert.equal(down.state, 'error');
      assert.equal(down.status.dependencies.redis.state, 'error');
      assert.equal(down.status.redis.connected, false);
      assert.ok(down.active_alerts.some((a: { name: string }) => a.name === 'redis'), JSON.stringify(down.active_alerts));
      assert.equal(down.status.dependencies.broker.state, 'running');
      assert.equal(metricValue(await metrics(), 'baton_orchestrator_dependency_up', { dependency: 'redis' }), 0);
    } finally {
      stack.redis.resume();
    }
    const up = await until('a 200 after SIGCONT', HEALTH_BOUND_MS, async () => {
      const r = await status();
      return r.code === 200 ? r.s : undefined;
    });
    assert.equal(up.state, 'running');
    assert.deepEqual(up.active_alerts, []);
    assert.equal(up.status.broker.connected, true);
    assert.ok(up.status.dependencies.broker.session_age_ms > 0);
  });

  it('answers NUL and control characters in every path segment of the three faces with a 400 in the face\'s format, creating nothing', async () => {
    const uuid = '00000000-0000-4000-8000-000000000000';
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const spec = { ID: 'web', TaskGroups: [{ Name: 'web', Scope: { nodes: ['ghost'] }, Task: { task: 'sample::echo', params: { message: 'x' } } }] };
    const routes: { method: string; path: string; body?: unknown }[] = [
      { method: 'POST', path: '/orchestrator/v1/command/task', body: { task: 'sample::echo', params: { message: 'x' }, scope: { nodes: ['ghost'] } } },
      { method: 'POST', path: '/orchestrator/v1/command/deploy', body: { environment: 'production', scope: { nodes: ['ghost'] } } },
      { method: 'POST', path: '/orchestrator/v1/command/schedule_task', body: { task: 'sample::echo', params: { message: 'x' }, scope: { nodes: ['ghost'] }, scheduled_time: future } },
      { method: 'GET', path: '/orchestrator/v1/jobs/1/nodes' },
      { method: 'GET', path: '/orchestrator/v1/jobs/1/events' },
      { method: 'GET', path: '/orchestrator/v1/inventory/ghost' },
      { method: 'GET', path: '/orchestrator/v1/tasks/sample/echo' },
      { method: 'DELETE', path: '/orchestrator/v1/scheduled_jobs/1' },
      { method: 'POST', path: '/orchestrator/v1/command/plan_run', body: { plan_name: 'sample::check_and_preview', params: { targets: ['ghost'] } } },
      { method: 'GET', path: '/orchestrator/v1/plan_jobs/1/events' },
      { method: 'GET', path: '/orchestrator/v1/plans/sample/check_and_preview' },
      { method: 'POST', path: '/organizations/edge/pushy/jobs', body: { command: 'uptime', nodes: ['ghost'] } },
      { method: 'PUT', path: '/organizations/edge/pushy/jobs/1', body: { status: 'abort' } },
      { method: 'GET', path: '/organizations/edge/pushy/jobs/1/output/ghost/stdout' },
      { method: 'GET', path: '/organizations/edge/pushy/node_states/ghost' },
      { method: 'PUT', path: '/v1/jobs', body: { Job: spec } },
      { method: 'GET', path: '/v1/job/web/versions' },
      { method: 'POST', path: `/v1/deployment/fail/${uuid}`, body: {} },
      { method: 'GET', path: `/v1/deployment/allocations/${uuid}` },
    ];
    const counts = async () => ({
      jobs: (await stack.orch.api('/orchestrator/v1/jobs?limit=1')).json.pagination.total as number,
      schedules: (await stack.orch.api('/orchestrator/v1/scheduled_jobs?limit=1')).json.pagination.total as number,
      plans: (await stack.orch.api('/orchestrator/v1/plan_jobs?limit=1')).json.pagination.total as number,
      nomad: ((await stack.orch.api('/v1/jobs')).json as unknown[]).length,
    });
    const before = await counts();
    let asked = 0;
    for (const r of routes) {
      const segments = r.path.split('/');
      for (let i = 1; i < segments.length; i++) {
        for (const bad of ['%00', '%0A', '%1F', '%7F', '%C2%85']) {
          const path = segments.map((s, j) => (j === i ? `${s}${bad}` : s)).join('/');
          const res = await stack.orch.api(path, { method: r.method, ...(r.body === undefined ? {} : { body: r.body }) });
          asked++;
          const what = `${r.method} ${path}: ${res.status} ${res.text.slice(0, 200)}`;
          assert.equal(res.status, 400, what);
          if (path.startsWith('/organizations/')) assert.ok(Array.isArray(res.json?.error), what);
          else if (path.startsWith('/v1/')) assert.match(String(res.headers['content-type']), /^text\/plain/, what);
          else assert.equal(res.json?.kind, 'puppetlabs.orchestrator/validation-error', what);
        }
      }
    }
    assert.ok(asked > 300, `${asked} requests`);
    assert.deepEqual(await counts(), before, 'nothing was created');
    // The request of the known bug: a 400 in Chef's format, with no job behind it.
    const nul = await stack.orch.api('/organizations/%00/pushy/jobs', { body: { command: 'uptime', nodes: ['ghost'] } });
    assert.equal(nul.status, 400, nul.text);
    assert.match(nul.json.error[0], /path segment 2/);
    // Identifiers off their grammar are 400s too; a well-formed one that names nothing is 404.
    assert.equal((await stack.orch.api('/orchestrator/v1/jobs/abc')).status, 400);
    assert.equal((await stack.orch.api('/orchestrator/v1/jobs/999999')).status, 404);
    assert.equal((await stack.orch.api('/v1/deployment/short')).status, 400);
    assert.equal((await stack.orch.api('/organizations/edge/pushy/node_states/a%20b')).status, 400);
    assert.deepEqual(await counts(), before, 'nothing was created');
    // The control case: the same Chef request, well-formed, creates one job and links it by a clean Location.
    // (Without the CA: the client would check the certificate against that Host.)
    const ok = await http(stack.orch.url('/organizations/edge/pushy/jobs'), { token: ADMIN_TOKEN, body: { command: 'uptime', nodes: ['ghost'] }, headers: { host: 'evil.example/x' } });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.headers.location, `https://localhost/organizations/edge/pushy/jobs/${ok.json.id}`);
    assert.equal((await counts()).jobs, before.jobs + 1);
  });
});

describe('orchestrator edges: budgets at accept', () => {
  /** Small budgets, and deadlines far beyond the test, so that only the budgets close connections. */
  const PER_SOURCE = 4;
  const MAX_CONNECTIONS = 12;
  const stack = edgeStack({ 'tls-handshake-timeout': 600_000, 'headers-timeout': 600_000, 'request-timeout': 600_000, 'max-pending-per-source': PER_SOURCE, 'max-connections': MAX_CONNECTIONS });
  const { sockets } = stack;

  /** A request from its own source address, on a connection of its own that ends with it. */
  const fromElsewhere = (path: string, localAddress: string) => http(stack.orch.url(path), { ca: stack.orch.ca, token: ADMIN_TOKEN, localAddress, agent: new Agent({ keepAlive: false }) });
  const refusals = async (reason: string) => metricValue((await fromElsewhere('/metrics', '127.0.0.9')).text, 'baton_orchestrator_connections_refused_total', { reason }) || 0;
  /** Resolves once `n` of `held` have been closed by the server. */
  const closedCount = (held: Held[], n: number, what: string) => {
    let closed = 0;
    return within(new Promise<void>((resolve) => held.forEach((h) => void h.closedAt.then(() => ++closed === n && resolve()))), what);
  };
  const releaseAll = async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await until('no pending connections', 10_000, async () => ((await fromElsewhere('/status/v1/services', '127.0.0.9')).json['orchestrator-service'].status.pending_connections === 0 ? true : undefined));
  };

  it('resets connections beyond max-pending-per-source at accept and counts them; another source is still served', async () => {
    const before = await refusals('per_source');
    const held: Held[] = [];
    for (let i = 0; i < PER_SOURCE + 3; i++) held.push(await holdHandshake(stack.orch.port, false, '127.0.0.1'));
    sockets.push(...held.map((h) => h.socket));
    await closedCount(held, 3, 'the connections beyond the per-source budget being reset');
    const served = await fromElsewhere('/orchestrator/v1/jobs?limit=1', '127.0.0.3');
    assert.equal(served.status, 200, served.text);
    await releaseAll();
    assert.ok((await refusals('per_source')) - before >= 3, 'per_source refusals counted');
  });

  it('drops connections beyond max-connections (those in handshake count) and counts them; served again once they go', async () => {
    const before = await refusals('max_connections');
    const held: Held[] = [];
    // Each from its own address: only max-connections can refuse them.
    for (let i = 0; i < MAX_CONNECTIONS + 5; i++) held.push(await holdHandshake(stack.orch.port, false, `127.0.1.${i + 1}`));
    sockets.push(...held.map((h) => h.socket));
    await closedCount(held, 5, 'the connections beyond max-connections being dropped');
    await releaseAll();
    assert.ok((await refusals('max_connections')) - before >= 5, 'max_connections refusals counted');
    const served = await fromElsewhere('/orchestrator/v1/jobs?limit=1', '127.0.0.3');
    assert.equal(served.status, 200, served.text);
  });
});

/** Polls `probe` (every 50 ms, the poll period, not a synchronisation) until it returns a value, for at most `ms`. */
function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  return pollUntil(what, probe, { timeoutMs: ms, intervalMs: 50 });
}
