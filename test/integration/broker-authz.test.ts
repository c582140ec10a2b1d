// Point 6 of the broker: authorization, on by default, and rules from the config file.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';

const PXP = {
  blockingRequest: 'http://puppetlabs.com/rpc_blocking_request',
  nonBlockingRequest: 'http://puppetlabs.com/rpc_non_blocking_request',
  blockingResponse: 'http://puppetlabs.com/rpc_blocking_response',
  nonBlockingResponse: 'http://puppetlabs.com/rpc_non_blocking_response',
  provisional: 'http://puppetlabs.com/rpc_provisional_response',
  error: 'http://puppetlabs.com/rpc_error_message',
};

describe('broker authorization (default policy)', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let ctl: TestClient;
  let a1: TestClient;
  let a2: TestClient;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1', 'node2']);
    broker = await startBrokerProcess({ pki });
    ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    a1 = await TestClient.connect(broker.url(), identity(pki, 'node1'));
    a2 = await TestClient.connect(broker.url(), identity(pki, 'node2'));
  });
  after(async () => {
    for (const c of [ctl, a1, a2]) await c?.close();
    await broker?.stop();
    pki?.remove();
  });

  it('lets controllers send any message type to agents', async () => {
    for (const type of [PXP.blockingRequest, PXP.nonBlockingRequest, 'http://example.com/custom']) {
      const id = ctl.send({ message_type: type, target: 'pcp://node1/agent' });
      assert.equal((await a1.next((e) => e.id === id)).message_type, type);
    }
  });

  it('lets agents send PXP responses and error messages to controllers', async () => {
    for (const type of [PXP.blockingResponse, PXP.nonBlockingResponse, PXP.provisional, PXP.error, MessageTypes.errorMessage]) {
      const id = a1.send({ message_type: type, target: 'pcp://orchestrator/controller' });
      assert.equal((await ctl.next((e) => e.id === id)).message_type, type);
    }
  });

  it('refuses agents sending requests, to agents, or to the broker, with unauthorized', async () => {
    const denied: [string, string | undefined][] = [
      [PXP.blockingRequest, 'pcp://orchestrator/controller'],
      [PXP.nonBlockingRequest, 'pcp://node2/agent'],
      [PXP.blockingResponse, 'pcp://node2/agent'],
      [MessageTypes.inventoryRequest, undefined],
      [MessageTypes.inventoryRequest, 'pcp:///server'],
    ];
    for (const [type, target] of denied) {
      const id = a1.send({ message_type: type, ...(target ? { target } : {}), data: { query: ['pcp://*/*'] } });
      const res = await a1.reply(id);
      assert.equal(res.message_type, MessageTypes.unauthorized, `${type} → ${target}`);
      assert.equal(res.data, undefined);
    }
    // Nothing was delivered: a controller round trip to node2 is the first thing node2 sees.
    const probe = ctl.send({ message_type: PXP.blockingRequest, target: 'pcp://node2/agent' });
    await a2.next((e) => e.id === probe);
    assert.equal(a2.received.length, 0);
  });

  it('checks authorization before presence, so agents cannot probe who is connected', async () => {
    const id = a1.send({ message_type: PXP.blockingRequest, target: 'pcp://ghost/agent' });
    assert.equal((await a1.reply(id)).message_type, MessageTypes.unauthorized);
  });
});

describe('broker authorization (rules from the config file)', () => {
  let pki: TestPki;
  let broker: BrokerProcess;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1', 'node2', 'peer1']);
    broker = await startBrokerProcess({
      pki,
      config: {
        authorization: {
          rules: [
            { sender: 'pcp://node1/agent', target: 'pcp://node2/agent', message_type: '*_request', allow: false },
            { sender: 'pcp://node*/agent', target: 'pcp://node*/agent', allow: true },
            { sender: 'pcp://peer1/*', target: 'pcp:///server', message_type: 'http://puppetlabs.com/inventory_request', allow: true },
          ],
        },
      },
    });
  });
  after(async () => {
    await broker?.stop();
    pki?.remove();
  });

  it('applies the first matching rule and denies when none matches', async () => {
    const a1 = await TestClient.connect(broker.url(), identity(pki, 'node1'));
    const a2 = await TestClient.connect(broker.url(), identity(pki, 'node2'));
    const peer = await TestClient.connect(broker.url('/pcp2/peer'), identity(pki, 'peer1'));
    const ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    try {
      // First rule: denied although the second would allow it.
      let id = a1.send({ message_type: 'http://puppetlabs.com/rpc_blocking_request', target: 'pcp://node2/agent' });
      assert.equal((await a1.reply(id)).message_type, MessageTypes.unauthorized);
      // Second rule: agent → agent allowed for any other type.
      id = a1.send({ message_type: 'http://puppetlabs.com/rpc_blocking_response', target: 'pcp://node2/agent' });
      assert.equal((await a2.next((e) => e.id === id)).sender, 'pcp://node1/agent');
      // Third rule: a non-controller may query the inventory.
      id = peer.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://*/agent'] } });
      assert.deepEqual((await peer.reply(id)).data, { uris: ['pcp://node1/agent', 'pcp://node2/agent'] });
      // No rule matches: even a controller is denied once rules replace the default policy.
      id = ctl.send({ message_type: 'http://puppetlabs.com/rpc_blocking_request', target: 'pcp://node1/agent' });
      assert.equal((await ctl.reply(id)).message_type, MessageTypes.unauthorized);
    } finally {
      for (const c of [a1, a2, peer, ctl]) await c.close();
    }
  });
});
