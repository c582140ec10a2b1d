// Hostile input: garbage bytes, floods of random frames, invalid UTF-8 and connection churn.
// After each, the broker still routes a normal message.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, MessageTypes, TestClient, within } from '../helpers/pcp-client.ts';

const REQUEST = 'http://puppetlabs.com/rpc_blocking_request';
const HANDSHAKE_TIMEOUT_MS = 3_000;
const CLOSE_WAIT_MS = HANDSHAKE_TIMEOUT_MS + 12_000;


describe('broker under hostile input', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let ctl: TestClient;
  let agent: TestClient;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1', 'mallory']);
    // Garbage that happens to begin like a TLS record leaves the handshake waiting for the rest:
    // the broker ends it at its handshake timeout, which the close waits below outlast.
    broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'tls-handshake-timeout': HANDSHAKE_TIMEOUT_MS } });
    ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    agent = await TestClient.connect(broker.url(), identity(pki, 'node1'));
  });
  after(async () => {
    await ctl?.close();
    await agent?.close();
    await broker?.stop();
    pki?.remove();
  });

  async function assertStillRoutes(): Promise<void> {
    const id = ctl.send({ message_type: REQUEST, target: 'pcp://node1/agent', data: { ok: true } });
    assert.deepEqual((await agent.next((e) => e.id === id)).data, { ok: true });
  }

  it('survives garbage bytes instead of a TLS handshake or an HTTP request', async () => {
    const plain = await import('node:net');
    const raw = plain.connect(broker.port, '127.0.0.1');
    raw.on('error', () => {}); // the broker resets the connection
    const rawClosed = new Promise((resolve) => raw.on('close', resolve));
    await within(once(raw, 'connect'), 'TCP connect');
    raw.write(randomBytes(64 * 1024));
    await within(rawClosed, 'the broker closing a connection that sent garbage instead of TLS', CLOSE_WAIT_MS);

    const id = identity(pki, 'mallory');
    const tls = connect({ port: broker.port, host: '127.0.0.1', ...id });
    tls.on('error', () => {});
    const tlsClosed = new Promise((resolve) => tls.on('close', resolve));
    await within(once(tls, 'secureConnect'), 'TLS handshake');
    tls.write(randomBytes(64 * 1024));
    await within(tlsClosed, 'the broker closing a TLS connection that sent garbage instead of HTTP', CLOSE_WAIT_MS);
    await assertStillRoutes();
  });

  it('survives garbage bytes after the WebSocket upgrade', async () => {
    const m = await TestClient.connect(broker.url(), identity(pki, 'mallory'));
    const raw = (m.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.write(randomBytes(32 * 1024));
    const closed = await within(m.closed, 'the broker closing a session that sent garbage frames');
    assert.notEqual(closed.code, 1000);
    await assertStillRoutes();
  });

  it('answers 10 MB of random frames with one error_message each and keeps the session', async () => {
    const m = await TestClient.connect(broker.url(), identity(pki, 'mallory'));
    const FRAME_BYTES = 64 * 1024;
    const FRAMES = (10 * 1024 * 1024) / FRAME_BYTES;
    for (let i = 0; i < FRAMES; i++) {
      if (i % 2 === 0) m.ws.send(randomBytes(FRAME_BYTES), { binary: true });
      else m.sendText(randomBytes(FRAME_BYTES).toString('base64').slice(0, FRAME_BYTES));
    }
    for (let i = 0; i < FRAMES; i++) {
      const err = await m.next();
      assert.equal(err.message_type, MessageTypes.errorMessage);
    }
    const id = m.send({ message_type: REQUEST, target: 'pcp://node1/agent' });
    assert.equal((await m.reply(id)).message_type, MessageTypes.unauthorized); // the session is alive
    await m.close();
    await assertStillRoutes();
  });

  it('closes a session sending invalid UTF-8 in a text frame with 1007', async () => {
    const m = await TestClient.connect(broker.url(), identity(pki, 'mallory'));
    // A text frame whose payload is not UTF-8, written by hand (ws refuses to send one).
    const payload = Buffer.from([0xc3, 0x28, 0xa0, 0xa1]);
    const mask = randomBytes(4);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
    const raw = (m.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    assert.equal((await within(m.closed, 'the broker closing a session that sent invalid UTF-8')).code, 1007);
    await assertStillRoutes();
  });

  it('survives a thousand connects and disconnects', async () => {
    const CONNECTIONS = 1000;
    const PARALLEL = 50;
    const watcherId = ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://mallory/*'], subscribe: true } });
    await ctl.reply(watcherId);
    let started = 0;
    // Each connection has a URI of its own, so that none replaces another (a replacement is not an
    // inventory change) and every connect and disconnect is counted.
    const worker = async () => {
      while (started < CONNECTIONS) {
        const n = started++;
        const c = await TestClient.connect(broker.url(`/pcp2/churn${n}`), identity(pki, 'mallory'));
        if (n % 2 === 0) await c.close();
        else {
          c.ws.terminate();
          await within(c.closed, `churn connection ${n} closing`);
        }
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, () => worker()));
    // Every connect and every disconnect shows up in the inventory feed; wait until all are in.
    let net = 0;
    let seen = 0;
    while (seen < 2 * CONNECTIONS) {
      const update = await ctl.next((e) => e.message_type === MessageTypes.inventoryUpdate);
      for (const c of (update.data as { changes: { change: number }[] }).changes) {
        net += c.change;
        seen++;
      }
    }
    assert.equal(net, 0);
    await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://mallory/*'], subscribe: false } }));
    const left = await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://mallory/*'] } }));
    assert.deepEqual(left.data, { uris: [] });
    await assertStillRoutes();
  });
});
