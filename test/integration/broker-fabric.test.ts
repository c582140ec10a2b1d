// Several brokers as one fabric through Redis (broker config `fabric`): real broker processes on one
// real Redis. A controller on broker A reaches an agent on broker B and back; the inventory is
// fabric-wide (queries and subscriptions); a newer session on another broker replaces the older;
// a target whose broker is gone, or on no broker, is refused naming which; a malformed fabric
// message is dropped and counted, the broker goes on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, MessageTypes, TestClient, within } from '../helpers/pcp-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { ERROR_CODES_HEADER } from '../../protocol/broker-errors.ts';
import { fabricKeys } from '../../broker/fabric/keys.ts';

const PREFIX = 'fabrictest';
const isUpdate = (e: { message_type: string }) => e.message_type === MessageTypes.inventoryUpdate;

describe('broker fabric: two brokers on one Redis', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let a: BrokerProcess;
  let b: BrokerProcess;
  let probe: Redis;

  before(async () => {
    pki = await makePki(['orchestrator', 'web1', 'web2', 'web3', 'web4']);
    redis = await startRedis();
    const fabric = (id: string) => ({ fabric: { redis: redis.url, 'broker-id': id, 'key-prefix': PREFIX }, 'inventory-update-interval': 50 });
    a = await startBrokerProcess({ pki, logLevel: 'info', config: fabric('broker-a') });
    b = await startBrokerProcess({ pki, logLevel: 'info', config: fabric('broker-b') });
    probe = new Redis(redis.url);
  });
  after(async () => {
    probe?.disconnect();
    await a?.stop();
    await b?.stop();
    await redis?.stop();
    pki?.remove();
  });

  // The controller asks for error codes, as Baton's PCP client does.
  const controllerOn = (br: BrokerProcess) => TestClient.connect(br.url('/pcp2/controller'), identity(pki, 'orchestrator'), { headers: { [ERROR_CODES_HEADER]: '1' } });
  const agentOn = (br: BrokerProcess, name: string) => TestClient.connect(br.url('/pcp2/agent'), identity(pki, name));
  /** Resolves once the directory has `uri` on `broker`: woken by Redis keyspace notices of the directory hash. */
  async function inDirectory(uri: string, broker: string | null): Promise<void> {
    const key = fabricKeys(PREFIX).sessions;
    const sub = new Redis(redis.url);
    try {
      await probe.config('SET', 'notify-keyspace-events', 'Kh');
      let wake: () => void = () => {};
      sub.on('message', () => wake());
      await sub.subscribe(`__keyspace@0__:${key}`);
      await within((async () => {
        for (;;) {
          const changed = new Promise<void>((resolve) => (wake = resolve));
          if ((await probe.hget(key, uri)) === broker) return;
          await changed;
        }
      })(), `${uri} on ${String(broker)} in the fabric directory`);
    } finally {
      sub.disconnect();
    }
  }

  it('a controller on A sends to an agent on B, whose reply comes back to A', async () => {
    const ctl = await controllerOn(a);
    const web1 = await agentOn(b, 'web1');
    try {
      await inDirectory('pcp://web1/agent', 'broker-b');
      const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://web1/agent', data: { transaction_id: 't1', module: 'echo', action: 'echo', params: {} } });
      const got = await web1.next((e) => e.id === id);
      assert.equal(got.sender, 'pcp://orchestrator/controller');
      assert.deepEqual(got.data, { transaction_id: 't1', module: 'echo', action: 'echo', params: {} });
      web1.send({ message_type: MessageTypes.pxpResponse, target: 'pcp://orchestrator/controller', in_reply_to: id, data: { transaction_id: 't1', results: { ok: true } } });
      const reply = await ctl.next((e) => e.in_reply_to === id);
      assert.equal(reply.sender, 'pcp://web1/agent');
      assert.deepEqual(reply.data, { transaction_id: 't1', results: { ok: true } });
    } finally {
      await web1.close();
      await ctl.close();
    }
  });

  it('inventory queries and subscriptions on A see the sessions of B', async () => {
    const ctl = await controllerOn(a);
    const web2 = await agentOn(b, 'web2');
    try {
      await inDirectory('pcp://web2/agent', 'broker-b');
      const res = await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://*/agent'], subscribe: true } }));
      assert.deepEqual(res.data, { uris: ['pcp://web2/agent'] });
      const web3 = await agentOn(b, 'web3');
      const joined = await ctl.next((e) => isUpdate(e) && JSON.stringify(e.data).includes('pcp://web3/agent'));
      assert.deepEqual(joined.data, { changes: [{ client: 'pcp://web3/agent', change: 1 }] });
      await web3.close();
      const left = await ctl.next((e) => isUpdate(e) && JSON.stringify(e.data).includes('"change":-1'));
      assert.deepEqual(left.data, { changes: [{ client: 'pcp://web3/agent', change: -1 }] });
    } finally {
      await web2.close();
      await ctl.close();
    }
  });

  it('a newer session for a URI on A closes the older one on B', async () => {
    const older = await agentOn(b, 'web1');
    await inDirectory('pcp://web1/agent', 'broker-b');
    const newer = await agentOn(a, 'web1');
    try {
      const closed = await within(older.closed, 'the older session closes');
      assert.equal(closed.code, 4000, JSON.stringify(closed));
      assert.equal(await probe.hget(fabricKeys(PREFIX).sessions, 'pcp://web1/agent'), 'broker-a');
    } finally {
      await newer.close();
    }
  });

  it('refuses a target on no broker, and one whose broker is gone, naming which', async () => {
    const ctl = await controllerOn(a);
    try {
      const nowhere = await ctl.reply(ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://nobody/agent', data: {} }));
      assert.equal(nowhere.message_type, MessageTypes.errorMessage);
      assert.match(String(nowhere.data), /not connected to any broker of the fabric/);
      assert.equal(nowhere.code, 'target-not-connected');
      await probe.hset(fabricKeys(PREFIX).sessions, 'pcp://ghost/agent', 'broker-gone');
      const stale = await ctl.reply(ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://ghost/agent', data: {} }));
      assert.match(String(stale.data), /its broker broker-gone is gone/);
      assert.equal(stale.code, 'target-not-connected');
    } finally {
      await probe.hdel(fabricKeys(PREFIX).sessions, 'pcp://ghost/agent');
      await ctl.close();
    }
  });

  it('drops and counts a malformed fabric message; routing goes on', async () => {
    const inbox = fabricKeys(PREFIX).inbox('broker-b');
    for (const junk of [Buffer.from('not msgpack at all'), Buffer.from([0x93, 0x01, 0x02, 0x03]), Buffer.from([0xc1])]) await probe.spublish(inbox, junk);
    // Messages on one channel arrive in order: once a real one is through, the junk was handled.
    const ctl = await controllerOn(a);
    const web2 = await agentOn(b, 'web2');
    try {
      await inDirectory('pcp://web2/agent', 'broker-b');
      const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://web2/agent', data: { transaction_id: 't2' } });
      await web2.next((e) => e.id === id);
      const metrics = await b.metrics();
      assert.match(metrics, /^baton_broker_fabric_malformed_total 3$/m);
      assert.match(metrics, /^baton_broker_fabric_received_total [1-9]/m);
    } finally {
      await web2.close();
      await ctl.close();
    }
  });

  it('Redis SIGKILLed and restarted empty: the brokers register again and routing resumes', async () => {
    const ctl = await controllerOn(a);
    const web3 = await agentOn(b, 'web3');
    try {
      await inDirectory('pcp://web3/agent', 'broker-b');
      const registeredAgain = Promise.all([a, b].map((br) => br.waitForNextLog((l) => l.msg === 'registered again in the fabric (Redis came back)')));
      await redis.kill('SIGKILL');
      await redis.restart();
      probe.disconnect();
      probe = new Redis(redis.url);
      await within(registeredAgain, 'both brokers register again', 30_000);
      assert.equal(await probe.hget(fabricKeys(PREFIX).sessions, 'pcp://web3/agent'), 'broker-b');
      const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://web3/agent', data: { transaction_id: 't3' } });
      const got = await web3.next((e) => e.id === id);
      assert.equal(got.sender, 'pcp://orchestrator/controller');
    } finally {
      await web3.close();
      await ctl.close();
    }
  });

  it('a target whose broker was just SIGKILLed (its lease not lapsed yet) is refused as not reachable', async () => {
    const c = await startBrokerProcess({ pki, logLevel: 'info', config: { fabric: { redis: redis.url, 'broker-id': 'broker-c', 'key-prefix': PREFIX } } });
    const ctl = await controllerOn(a);
    try {
      // A name no broker has seen: A's location cache could still hold where an earlier session of
      // a reused name was, until C's inventory notice reaches A (that bounce is a race of its own).
      const web4 = await agentOn(c, 'web4');
      await inDirectory('pcp://web4/agent', 'broker-c');
      const first = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://web4/agent', data: { transaction_id: 't4' } });
      await web4.next((e) => e.id === first);
      c.proc.kill('SIGKILL');
      await c.exited;
      // Redis must have seen C's subscriber go (a message published before that is lost, as on any
      // pub/sub): each check is a round trip to Redis, bounded.
      const inbox = fabricKeys(PREFIX).inbox('broker-c');
      for (let i = 0; i < 1000 && ((await probe.call('PUBSUB', 'SHARDNUMSUB', inbox)) as [string, number])[1] !== 0; i++);
      assert.equal(((await probe.call('PUBSUB', 'SHARDNUMSUB', inbox)) as [string, number])[1], 0, "Redis still counts the killed broker's subscriber");
      const refused = await ctl.reply(ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://web4/agent', data: { transaction_id: 't5' } }));
      assert.equal(refused.message_type, MessageTypes.errorMessage);
      assert.match(String(refused.data), /its broker broker-c is (not reachable|gone)/);
      assert.equal(refused.code, 'target-not-connected');
    } finally {
      await ctl.close();
      await c.stop();
    }
  });
});
