// Point 7 of the broker: a newer session for a URI replaces the older one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';

describe('broker sessions', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let ctl: TestClient;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1', 'node2']);
    broker = await startBrokerProcess({ pki });
    ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
  });
  after(async () => {
    await ctl?.close();
    await broker?.stop();
    pki?.remove();
  });

  async function delivered(to: TestClient, target: string): Promise<void> {
    const id = ctl.send({ message_type: 'http://puppetlabs.com/rpc_blocking_request', target });
    await to.next((e) => e.id === id);
  }

  it('closes the older session with 4000 when a newer one connects for the same URI', async () => {
    const older = await TestClient.connect(broker.url(), identity(pki, 'node1'));
    const newer = await TestClient.connect(broker.url(), identity(pki, 'node1'));
    const closed = await older.closed;
    assert.equal(closed.code, 4000);
    assert.match(closed.reason, /replaced/);
    await delivered(newer, 'pcp://node1/agent');
    await newer.close();
  });

  it('keeps the newer session when the replaced socket closes late', async () => {
    const older = await TestClient.connect(broker.url(), identity(pki, 'node2'));
    // The older client stops reading, so its socket outlives the replacement.
    const raw = (older.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    const newer = await TestClient.connect(broker.url(), identity(pki, 'node2'));
    await delivered(newer, 'pcp://node2/agent');
    const lateClose = broker.waitForLog((l) => l.msg === 'socket of an ended session closed' && l.uri === 'pcp://node2/agent');
    older.ws.terminate();
    await lateClose;
    // The late close did not remove the newer session.
    await delivered(newer, 'pcp://node2/agent');
    const id = ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://node2/agent'] } });
    assert.deepEqual((await ctl.reply(id)).data, { uris: ['pcp://node2/agent'] });
    await newer.close();
  });
});
