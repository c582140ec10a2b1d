// Point 8 of the broker: message size, connection count, idle timeout, keepalive, send buffer cap.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, metricValue, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, MessageTypes, TestClient, within } from '../helpers/pcp-client.ts';
import { connect, type Socket } from 'node:net';

const REQUEST = 'http://puppetlabs.com/rpc_blocking_request';

describe('broker limits', () => {
  let pki: TestPki;
  const brokers: BrokerProcess[] = [];

  before(async () => {
    pki = await makePki(['orchestrator', 'node1', 'node2', 'node3']);
  });
  after(async () => {
    for (const b of brokers) await b.stop();
    pki?.remove();
  });

  async function broker(config: Record<string, unknown>, openFiles?: number): Promise<BrokerProcess> {
    const b = await startBrokerProcess({ pki, config, ...(openFiles === undefined ? {} : { openFiles }) });
    brokers.push(b);
    return b;
  }

  it('closes a socket that sends a frame over max-message-size with 1009, and goes on routing', async () => {
    const b = await broker({ 'max-message-size': 64 * 1024 });
    const ctl = await TestClient.connect(b.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    const big = await TestClient.connect(b.url(), identity(pki, 'node1'));
    const agent = await TestClient.connect(b.url(), identity(pki, 'node2'));
    big.sendText(JSON.stringify({ id: 'big', message_type: REQUEST, data: 'x'.repeat(100 * 1024) }));
    assert.equal((await big.closed).code, 1009);
    const id = ctl.send({ message_type: REQUEST, target: 'pcp://node2/agent', data: 'y'.repeat(32 * 1024) });
    await agent.next((e) => e.id === id);
    await ctl.close();
    await agent.close();
  });

  it('closes connections beyond max-connections with 1011, but lets a session replace itself', async () => {
    const b = await broker({ 'max-connections': 2 });
    const c1 = await TestClient.connect(b.url(), identity(pki, 'node1'));
    const c2 = await TestClient.connect(b.url(), identity(pki, 'node2'));
    const c3 = await TestClient.connect(b.url(), identity(pki, 'node3'));
    const refused = await c3.closed;
    assert.equal(refused.code, 1011);
    assert.match(refused.reason, /connection limit/);
    const again = await TestClient.connect(b.url(), identity(pki, 'node2'));
    assert.equal((await c2.closed).code, 4000);
    // Once one leaves, a new client fits.
    const left = b.waitForLog((l) => l.msg === 'session closed' && l.uri === 'pcp://node1/agent');
    await c1.close();
    await left;
    const c4 = await TestClient.connect(b.url(), identity(pki, 'node3'));
    const probe = await TestClient.connect(b.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    assert.equal((await probe.closed).code, 1011);
    const m = await b.metrics();
    assert.equal(metricValue(m, 'baton_broker_connections_refused_total', { reason: 'max_connections' }), 2);
    await again.close();
    await c4.close();
  });

  it('at its open-file limit, resets new connections at once instead of leaving them waiting, and takes them again once some leave', async () => {
    // 256 files: the broker keeps 64 in reserve and may hold 192 connections. Held ones never
    // start TLS, and neither waiting in the queue nor a handshake times out during the test.
    const b = await broker({ 'tls-handshake-timeout': 600_000, 'handshake-queue-timeout': 600_000 }, 256);
    const listening = b.logs.find((l) => l.msg === 'listening');
    const budget = listening?.connection_budget as number;
    assert.equal(budget, 192);
    const held: Socket[] = [];
    for (let i = 0; i < budget; i++) {
      const s = connect(b.port, '127.0.0.1');
      s.on('error', () => {});
      held.push(s);
      await new Promise((resolve) => s.once('connect', resolve));
    }
    const warned = b.waitForLog((l) => l.msg === 'connections refused: the broker holds as many as its open-file limit allows');
    const extra = connect(b.port, '127.0.0.1');
    const reset = await within(new Promise<string | undefined>((resolve) => {
      extra.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
      extra.once('close', () => resolve(undefined));
    }), 'the connection beyond the budget being reset');
    assert.equal(reset, 'ECONNRESET');
    const line = await within(warned, 'the broker warning that it is at its file limit');
    assert.equal(line.open, budget);
    await assert.rejects(TestClient.connect(b.url(), identity(pki, 'node1')), 'an agent is refused too, at once');
    // The broker is still up and routing-ready: once the held connections go, agents get in again.
    let gone = 0;
    const allGone = b.waitForNextLog((l) => l.msg === 'TLS handshake failed' && ++gone === budget);
    for (const s of held) s.destroy();
    await within(allGone, 'the broker seeing every held connection go');
    const agent = await TestClient.connect(b.url(), identity(pki, 'node1'));
    const m = await b.metrics();
    assert.ok(metricValue(m, 'baton_broker_connections_refused_file_limit_total') >= 2);
    await agent.close();
  });

  it('closes a session that sends nothing for idle-timeout with 1001', async () => {
    const b = await broker({ 'idle-timeout': 300, 'ping-interval': 60_000 });
    const started = Date.now();
    const quiet = await TestClient.connect(b.url(), identity(pki, 'node1'));
    const closed = await quiet.closed;
    assert.equal(closed.code, 1001);
    assert.equal(closed.reason, 'idle timeout');
    assert.ok(Date.now() - started >= 300, 'not before the idle timeout');
  });

  it('pings every ping-interval and drops a session that does not answer', async () => {
    const b = await broker({ 'ping-interval': 100, 'idle-timeout': 600_000 });
    const live = await TestClient.connect(b.url(), identity(pki, 'node1'));
    let pings = 0;
    live.ws.on('ping', () => pings++);
    const deaf = await TestClient.connect(b.url(), identity(pki, 'node2'), { autoPong: false });
    const dropped = b.waitForLog((l) => l.msg === 'session closed' && l.uri === 'pcp://node2/agent' && l.reason === 'keepalive');
    await dropped;
    assert.notEqual((await deaf.closed).code, 1000);
    assert.ok(pings >= 1, 'the live session was pinged');
    const ctl = await TestClient.connect(b.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    const id = ctl.send({ message_type: REQUEST, target: 'pcp://node1/agent' });
    await live.next((e) => e.id === id);
    await ctl.close();
    await live.close();
  });

  it('disconnects a slow consumer instead of buffering without bound', async () => {
    const b = await broker({ 'max-send-buffer-size': 1024 * 1024, 'max-message-size': 1024 * 1024 });
    const ctl = await TestClient.connect(b.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    const slow = await TestClient.connect(b.url(), identity(pki, 'node1'));
    (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    const chunk = 'z'.repeat(256 * 1024);
    const MAX_BATCHES = 200; // 400 MiB at most; the kernel's socket buffers hold a few MiB
    let refusal;
    for (let batch = 0; batch < MAX_BATCHES && !refusal; batch++) {
      for (let i = 0; i < 8; i++) ctl.send({ message_type: REQUEST, target: 'pcp://node1/agent', data: chunk });
      // A round trip through the broker: every refusal for the batch arrives before this reply.
      await ctl.reply(ctl.send({ message_type: REQUEST, target: 'pcp://ghost/agent' }));
      refusal = ctl.received.find((e) => e.message_type === MessageTypes.errorMessage && /did not read/.test(String(e.data)));
    }
    assert.ok(refusal, 'the broker refused to queue more for the slow consumer');
    (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
    await slow.closed;
    const m = await b.metrics();
    assert.equal(metricValue(m, 'baton_broker_disconnects_total', { reason: 'slow_consumer' }), 1);
    await ctl.close();
  });
});
