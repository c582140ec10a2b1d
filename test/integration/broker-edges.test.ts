// The edges of the broker's listening socket: connections that stop mid-handshake or mid-upgrade
// are closed at their deadlines without keeping a real agent out; a source address may hold only
// so many pending connections; pending connections count against max-connections. And honest
// health: a fabric broker whose Redis is frozen (SIGSTOP) says so at /status and /metrics.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MAX_CONNECTIONS_PENDING_RESERVE } from '../../broker/defaults.ts';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { metricValue, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { identity, TestClient, within } from '../helpers/pcp-client.ts';
import { holdHandshake, holdRequestHead, type Held } from '../helpers/held-connections.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { pollUntil } from '../helpers/postgres.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

/** Connections held in each way. */
const HELD = 250;
/** Deadlines of the test broker: long enough to open 500 connections and start an agent on a shared machine. */
const DEADLINE_MS = 8_000;
/** A deadline may fire this much later (sweep period, a busy machine)... */
const LATE_MS = 3_000;
/** ...and look this much early (the broker accepts a little after the client saw its connection). */
const EARLY_MS = 100;

/** Finishes TLS with a valid client certificate, then sends an upgrade request that never ends. */
const holdUpgrade = (port: number, pki: TestPki): Promise<Held> =>
  holdRequestHead(port, identity(pki, 'edge'), 'GET /pcp2/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');

/** Resolves with how a connection ended: reset (ECONNRESET), or closed without an error. */
function ending(socket: Socket): Promise<string> {
  return within(new Promise((resolve) => {
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    socket.once('close', () => resolve('closed'));
  }), 'the broker ending a connection');
}

/**
 * The source address of this test's own status and metrics requests: another than the held
 * connections', so that the per-source cap does not refuse them.
 */
const MONITOR_ADDRESS = '127.0.0.3';

function get(port: number, path: string): Promise<{ code: number; text: string }> {
  return new Promise((resolve, reject) => {
    request(`https://127.0.0.1:${port}${path}`, { rejectUnauthorized: false, localAddress: MONITOR_ADDRESS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, text }));
    })
      .on('error', reject)
      .end();
  });
}

async function getStatus(port: number): Promise<{ code: number; body: Record<string, any> }> {
  const { code, text } = await get(port, '/status/v1/services/broker-service');
  return { code, body: JSON.parse(text) };
}

const metrics = async (b: BrokerProcess) => (await get(b.port, '/metrics')).text;


const pendingIs = (b: BrokerProcess, n: number) => until(`${n} pending connections`, 10_000, async () => ((await getStatus(b.port)).body.status.pending_connections === n ? true : undefined));

describe('broker edges', () => {
  let pki: TestPki;
  let redis: TestRedis | undefined;
  const brokers: BrokerProcess[] = [];
  const agents: AgentProcess[] = [];
  const sockets: Socket[] = [];

  before(async () => {
    pki = await makePki(['edge', 'node1', 'node2']);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    for (const a of agents) await a.stop();
    for (const b of brokers) await b.stop();
    await redis?.stop();
    pki?.remove();
  });

  async function broker(config: Record<string, unknown>): Promise<BrokerProcess> {
    const b = await startBrokerProcess({ pki, config, logLevel: 'info' });
    brokers.push(b);
    return b;
  }

  it(`closes ${2 * HELD} connections held mid-handshake and mid-upgrade at their deadlines, while a real agent connects`, async () => {
    const b = await broker({ 'tls-handshake-timeout': DEADLINE_MS, 'upgrade-timeout': DEADLINE_MS, 'max-pending-per-source': 4 * HELD });
    const upgrading = await Promise.all(Array.from({ length: HELD }, () => holdUpgrade(b.port, pki)));
    const handshaking = await Promise.all(Array.from({ length: HELD }, (_, i) => holdHandshake(b.port, i % 2 === 1)));
    const held = [...upgrading, ...handshaking];
    sockets.push(...held.map((h) => h.socket));
    await pendingIs(b, 2 * HELD);

    const agent = await startAgentProcess({ pki, name: 'node1', brokerUris: [b.url('/pcp2/')] });
    agents.push(agent);
    const agentIn = performance.now();
    await b.waitForLog((l) => l.msg === 'session opened' && l.uri === 'pcp://node1/agent');

    const closes = await within(Promise.all(held.map((h) => h.closedAt)), 'every held connection closing', DEADLINE_MS + LATE_MS + 10_000);
    assert.ok(Math.min(...closes) > agentIn, 'the agent connected while all held connections were open');
    held.forEach((h, i) => {
      const after = closes[i]! - h.since;
      const kind = i < HELD ? 'mid-upgrade' : 'mid-handshake';
      assert.ok(after >= DEADLINE_MS - EARLY_MS, `a ${kind} connection closed ${Math.round(after)} ms in, before its deadline`);
      assert.ok(after <= DEADLINE_MS + LATE_MS, `a ${kind} connection closed ${Math.round(after)} ms in, long after its deadline`);
    });
    const m = await metrics(b);
    assert.equal(metricValue(m, 'baton_broker_connections_refused_total', { reason: 'handshake_timeout' }), HELD);
    assert.equal(metricValue(m, 'baton_broker_connections_refused_total', { reason: 'upgrade_timeout' }), HELD);
    assert.equal(metricValue(m, 'baton_broker_handshakes_in_progress'), 0, 'no handshake slot stayed taken');
    await pendingIs(b, 0);
    const s = (await getStatus(b.port)).body;
    assert.equal(s.status.sessions, 1, 'the agent is still connected');
  });

  it('resets connections beyond max-pending-per-source at accept and counts them; other sources still get in', async () => {
    const PER_SOURCE = 20;
    const EXTRA = 5;
    const b = await broker({ 'max-pending-per-source': PER_SOURCE, 'tls-handshake-timeout': 600_000, 'upgrade-timeout': 600_000 });
    const held = await Promise.all(Array.from({ length: PER_SOURCE }, () => holdHandshake(b.port, false)));
    sockets.push(...held.map((h) => h.socket));
    await pendingIs(b, PER_SOURCE);
    for (let i = 0; i < EXTRA; i++) {
      const extra = tcpConnect(b.port, '127.0.0.1');
      sockets.push(extra);
      assert.equal(await ending(extra), 'ECONNRESET');
    }
    await assert.rejects(TestClient.connect(b.url(), identity(pki, 'node1')), 'an agent from the full source is refused too');
    const other = await TestClient.connect(b.url(), { ...identity(pki, 'node2'), localAddress: '127.0.0.2' } as never);
    const m = await metrics(b);
    assert.equal(metricValue(m, 'baton_broker_connections_refused_total', { reason: 'per_source' }), EXTRA + 1);
    for (const h of held) h.socket.destroy();
    await pendingIs(b, 0);
    const again = await TestClient.connect(b.url(), identity(pki, 'node1'));
    await again.close();
    await other.close();
  });

  it('counts pending connections against max-connections', async () => {
    const MAX = 4;
    const b = await broker({ 'max-connections': MAX, 'tls-handshake-timeout': 600_000, 'upgrade-timeout': 600_000 });
    const room = MAX + MAX_CONNECTIONS_PENDING_RESERVE;
    // All but one, counted (the status request itself takes the last place for a moment), then the last.
    const held = await Promise.all(Array.from({ length: room - 1 }, () => holdHandshake(b.port, false)));
    await pendingIs(b, room - 1);
    held.push(await holdHandshake(b.port, false));
    sockets.push(...held.map((h) => h.socket));
    const extra = tcpConnect(b.port, '127.0.0.1');
    sockets.push(extra);
    assert.equal(await ending(extra), 'ECONNRESET', 'reset at accept: sessions and pending connections fill max-connections and its reserve');
    await assert.rejects(TestClient.connect(b.url(), identity(pki, 'node1')), 'no session while pending connections fill the broker');
    // Half of them go: there is room for connections again, and a session counts as before.
    for (const h of held.slice(0, room / 2)) h.socket.destroy();
    await pendingIs(b, room - room / 2);
    assert.equal(metricValue(await metrics(b), 'baton_broker_connections_refused_total', { reason: 'max_connections' }), 2);
    const agent = await TestClient.connect(b.url(), identity(pki, 'node1'));
    const s = (await getStatus(b.port)).body;
    assert.deepEqual([s.status.sessions, s.status.pending_connections], [1, room - room / 2]);
    await agent.close();
  });

  it('reports a fabric broker unavailable while its Redis is frozen (SIGSTOP), and running again after SIGCONT', async () => {
    redis = await startRedis();
    const REDIS_TIMEOUT_MS = 500;
    /** The probe runs every second with a 0.5 s bound: a stall shows within about 1.5 s. */
    const NOTICE_MS = 5_000;
    const b = await broker({ fabric: { redis: redis.url, 'redis-timeout': REDIS_TIMEOUT_MS } });
    const up = await getStatus(b.port);
    assert.equal(up.code, 200);
    assert.equal(up.body.state, 'running');
    assert.equal(up.body.status.dependencies.redis.state, 'running');
    assert.deepEqual(up.body.active_alerts, []);
    assert.equal(metricValue(await metrics(b), 'baton_broker_dependency_up', { dependency: 'redis' }), 1);

    redis.pause();
    const frozenAt = performance.now();
    const down = await until('the broker reporting Redis unavailable', NOTICE_MS, async () => {
      const s = await getStatus(b.port);
      return s.body.state === 'error' ? s : undefined;
    });
    assert.ok(performance.now() - frozenAt < NOTICE_MS);
    assert.equal(down.code, 503, 'a load balancer sees 503');
    assert.equal(down.body.status.dependencies.redis.state, 'error');
    assert.equal(down.body.status.dependencies.redis.error, 'timeout');
    assert.deepEqual(down.body.active_alerts.map((a: { name: string }) => a.name), ['redis']);
    assert.equal(metricValue(await metrics(b), 'baton_broker_dependency_up', { dependency: 'redis' }), 0);

    redis.resume();
    const back = await until('the broker reporting Redis back', NOTICE_MS + REDIS_TIMEOUT_MS, async () => {
      const s = await getStatus(b.port);
      return s.body.state === 'running' ? s : undefined;
    });
    assert.equal(back.code, 200);
    assert.deepEqual(back.body.active_alerts, []);
    assert.equal(metricValue(await metrics(b), 'baton_broker_dependency_up', { dependency: 'redis' }), 1);
  });
});

/** Polls `probe` (every 50 ms, the poll period, not a synchronisation) until it returns a value, for at most `ms`. */
function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  return pollUntil(what, probe, { timeoutMs: ms, intervalMs: 50 });
}
