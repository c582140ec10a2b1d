// Points 3 and 4 of the broker: routing, sender identity and error_message for bad input.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';

describe('broker routing', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let ctl: TestClient;
  let agent: TestClient;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1']);
    broker = await startBrokerProcess({ pki });
    ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    agent = await TestClient.connect(broker.url('/pcp2/agent'), identity(pki, 'node1'));
  });
  after(async () => {
    await ctl?.close();
    await agent?.close();
    await broker?.stop();
    pki?.remove();
  });

  /** A controller → agent → controller round trip, proving the session still routes normally. */
  async function assertStillRoutes(from: TestClient = ctl): Promise<void> {
    const id = from.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://node1/agent', data: { ping: 1 } });
    const req = await agent.next((e) => e.id === id);
    const rid = agent.send({ message_type: MessageTypes.pxpResponse, target: req.sender!, in_reply_to: id, data: { pong: 1 } });
    const res = await from.next((e) => e.id === rid);
    assert.deepEqual(res.data, { pong: 1 });
  }

  it('routes a message to its target and fills in the sender from the session', async () => {
    const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://node1/agent', data: { x: [1, 'two'] } });
    const got = await agent.next((e) => e.id === id);
    assert.equal(got.sender, 'pcp://orchestrator/controller');
    assert.equal(got.target, 'pcp://node1/agent');
    assert.deepEqual(got.data, { x: [1, 'two'] });
  });

  it('delivers a message whose sender equals the session URI', async () => {
    const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://node1/agent', sender: 'pcp://orchestrator/controller' });
    assert.equal((await agent.next((e) => e.id === id)).sender, 'pcp://orchestrator/controller');
  });

  it('refuses a spoofed sender with error_message and does not deliver it', async () => {
    const id = agent.send({ message_type: MessageTypes.pxpResponse, target: 'pcp://orchestrator/controller', sender: 'pcp://other/agent' });
    const err = await agent.reply(id);
    assert.equal(err.message_type, MessageTypes.errorMessage);
    assert.match(String(err.data), /does not match this session's identity 'pcp:\/\/node1\/agent'/);
    // The controller must never see it: the next message it gets from the agent is the round trip's.
    await assertStillRoutes();
    assert.equal(ctl.received.some((e) => e.id === id), false);
  });

  it('refuses a sender naming the same CN with another type', async () => {
    const id = agent.send({ message_type: MessageTypes.pxpResponse, target: 'pcp://orchestrator/controller', sender: 'pcp://node1/controller' });
    assert.equal((await agent.reply(id)).message_type, MessageTypes.errorMessage);
  });

  const badEnvelopes: [string, string, RegExp][] = [
    ['unparsable JSON', '{"id": "x", ', /not valid JSON/],
    ['a JSON value that is not an object', '[1,2,3]', /envelope must be object/],
    ['a missing id', JSON.stringify({ message_type: MessageTypes.pxpRequest, target: 'pcp://node1/agent' }), /required property 'id'/],
    ['a missing message_type', JSON.stringify({ id: 'm1', target: 'pcp://node1/agent' }), /required property 'message_type'/],
    ['a bad target URI', JSON.stringify({ id: 'm2', message_type: 'x', target: 'http://node1/agent' }), /envelope\.target must match/],
    ['an extra key', JSON.stringify({ id: 'm3', message_type: 'x', target: 'pcp://node1/agent', expires: 'soon' }), /unknown key 'expires'/],
    ['a __proto__ key', '{"id":"m4","message_type":"x","__proto__":{"polluted":true}}', /unknown key '__proto__'/],
  ];
  for (const [what, text, expected] of badEnvelopes) {
    it(`answers ${what} with error_message and keeps the connection open`, async () => {
      ctl.sendText(text);
      const err = await ctl.next((e) => e.message_type === MessageTypes.errorMessage);
      assert.match(String(err.data), expected);
      const parsedId = (() => {
        try {
          return (JSON.parse(text) as { id?: string }).id;
        } catch {
          return undefined;
        }
      })();
      assert.equal(err.in_reply_to, parsedId);
      assert.equal(err.sender, 'pcp:///server');
      await assertStillRoutes();
    });
  }

  it('answers a message to an unconnected target with error_message naming it', async () => {
    const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://ghost/agent' });
    const err = await ctl.reply(id);
    assert.equal(err.message_type, MessageTypes.errorMessage);
    assert.match(String(err.data), /'pcp:\/\/ghost\/agent' is not connected/);
    await assertStillRoutes();
  });

  it('refuses a wildcard target in a routed message', async () => {
    for (const target of ['pcp://*/agent', 'pcp://node1/*']) {
      const id = ctl.send({ message_type: MessageTypes.pxpRequest, target });
      const err = await ctl.reply(id);
      assert.match(String(err.data), /wildcards are allowed only in inventory queries/);
    }
    assert.equal(agent.received.length, 0);
    await assertStillRoutes();
  });

  it('answers an unknown broker message type with error_message', async () => {
    for (const target of [undefined, 'pcp:///server']) {
      const id = ctl.send({ message_type: 'http://example.com/frobnicate', ...(target ? { target } : {}) });
      const err = await ctl.reply(id);
      assert.equal(err.message_type, MessageTypes.errorMessage);
      assert.match(String(err.data), /does not handle message type 'http:\/\/example\.com\/frobnicate'/);
    }
    await assertStillRoutes();
  });

  it('answers a binary frame on a v2 socket with error_message and keeps the connection', async () => {
    ctl.ws.send(Buffer.from([0x01, 0x02, 0xff]), { binary: true });
    const err = await ctl.next((e) => e.message_type === MessageTypes.errorMessage);
    assert.match(String(err.data), /binary frames are not PCP v2 messages/);
    await assertStillRoutes();
  });

  it('routes messages between two agents of other types only when authorized', async () => {
    // Agents may only answer controllers: agent → agent is refused with unauthorized.
    const id = agent.send({ message_type: MessageTypes.pxpResponse, target: 'pcp://node1/agent' });
    const res = await agent.reply(id);
    assert.equal(res.message_type, MessageTypes.unauthorized);
  });
});
