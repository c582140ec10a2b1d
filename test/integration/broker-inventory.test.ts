// Point 5 of the broker: inventory queries and subscriptions with batched updates.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';

const isUpdate = (e: { message_type: string }) => e.message_type === MessageTypes.inventoryUpdate;

describe('broker inventory', () => {
  let pki: TestPki;
  let broker: BrokerProcess;

  before(async () => {
    pki = await makePki(['orchestrator', 'observer', 'web1', 'web2', 'db1']);
    broker = await startBrokerProcess({
      pki,
      config: { 'controller-cns': ['orchestrator', 'observer'], 'inventory-update-interval': 100 },
    });
  });
  after(async () => {
    await broker?.stop();
    pki?.remove();
  });

  const controller = (name = 'orchestrator') => TestClient.connect(broker.url('/pcp2/controller'), identity(pki, name));
  const agent = (name: string, type = 'agent') => TestClient.connect(broker.url(`/pcp2/${type}`), identity(pki, name));

  it('answers queries with exact URIs and wildcards for the CN or the type, sorted', async () => {
    const ctl = await controller();
    const clients = [await agent('web2'), await agent('web1'), await agent('db1'), await agent('web1', 'other')];
    try {
      const ask = async (query: string[]) => (await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query } }))).data;
      assert.deepEqual(await ask(['pcp://*/agent']), { uris: ['pcp://db1/agent', 'pcp://web1/agent', 'pcp://web2/agent'] });
      assert.deepEqual(await ask(['pcp://web1/*']), { uris: ['pcp://web1/agent', 'pcp://web1/other'] });
      assert.deepEqual(await ask(['pcp://web2/agent', 'pcp://ghost/agent']), { uris: ['pcp://web2/agent'] });
      const all = (await ask(['pcp://*/*'])) as { uris: string[] };
      assert.ok(all.uris.includes('pcp://orchestrator/controller'));
      assert.equal(all.uris.length, 5);
      const res = await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, target: 'pcp:///server', data: { query: [] } }));
      assert.equal(res.message_type, MessageTypes.inventoryResponse);
      assert.equal(res.sender, 'pcp:///server');
      assert.deepEqual(res.data, { uris: [] });
    } finally {
      for (const c of clients) await c.close();
      await ctl.close();
    }
  });

  it('answers a malformed inventory_request with error_message naming the problem', async () => {
    const ctl = await controller();
    try {
      const cases: [unknown, RegExp][] = [
        [undefined, /inventory_request data must be object/],
        [{ query: 'pcp://*/agent' }, /data\.query must be array/],
        [{ query: ['pcp://we*b/agent'] }, /wildcard must replace the whole common name/],
        [{ query: [], subscribe: 'yes' }, /data\.subscribe must be boolean/],
      ];
      for (const [data, expected] of cases) {
        const id = ctl.send({ message_type: MessageTypes.inventoryRequest, ...(data === undefined ? {} : { data }) });
        const err = await ctl.reply(id);
        assert.equal(err.message_type, MessageTypes.errorMessage);
        assert.match(String(err.data), expected);
      }
    } finally {
      await ctl.close();
    }
  });

  it('sends batched updates to subscribers, never before the response, and only for matching clients', async () => {
    const ctl = await controller();
    try {
      const id = ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://*/agent'], subscribe: true } });
      // The response is the first message on the socket.
      const first = await ctl.next();
      assert.equal(first.in_reply_to, id);
      assert.equal(first.message_type, MessageTypes.inventoryResponse);

      const a = await agent('web1');
      const b = await agent('web2');
      const other = await agent('db1', 'other'); // does not match pcp://*/agent
      await a.close();
      const changes: { client: string; change: number }[] = [];
      while (changes.length < 3) {
        const update = await ctl.next(isUpdate);
        changes.push(...(update.data as { changes: typeof changes }).changes);
      }
      assert.deepEqual(changes, [
        { client: 'pcp://web1/agent', change: 1 },
        { client: 'pcp://web2/agent', change: 1 },
        { client: 'pcp://web1/agent', change: -1 },
      ]);
      await b.close();
      await other.close();
      const last = await ctl.next(isUpdate);
      assert.deepEqual((last.data as { changes: unknown }).changes, [{ client: 'pcp://web2/agent', change: -1 }]);
    } finally {
      await ctl.close();
    }
  });

  it('batches several changes into one update', async () => {
    // A broker of its own with the default one-second interval: three parallel connects land well
    // inside one batch.
    const slow = await startBrokerProcess({ pki, config: { 'inventory-update-interval': 1000 } });
    const ctl = await TestClient.connect(slow.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    try {
      await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://*/agent'], subscribe: true } }));
      const clients = await Promise.all(['web1', 'web2', 'db1'].map((n) => TestClient.connect(slow.url(), identity(pki, n))));
      const update = await ctl.next(isUpdate);
      const got = (update.data as { changes: { client: string }[] }).changes.map((c) => c.client).sort();
      assert.deepEqual(got, ['pcp://db1/agent', 'pcp://web1/agent', 'pcp://web2/agent']);
      for (const c of clients) await c.close();
    } finally {
      await ctl.close();
      await slow.stop();
    }
  });

  it('ends a subscription on subscribe:false', async () => {
    const ctl = await controller();
    const watcher = await controller('observer');
    try {
      await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://*/agent'], subscribe: true } }));
      await watcher.reply(watcher.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://*/agent'], subscribe: true } }));
      await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: ['pcp://*/agent'], subscribe: false } }));
      const a = await agent('web1');
      await watcher.next(isUpdate); // the batch has been flushed to every subscriber
      // A round trip on ctl's socket: anything flushed to ctl before would arrive before this reply.
      await ctl.reply(ctl.send({ message_type: 'http://puppetlabs.com/rpc_blocking_request', target: 'pcp://ghost/agent' }));
      assert.equal(ctl.received.filter(isUpdate).length, 0);
      await a.close();
    } finally {
      await ctl.close();
      await watcher.close();
    }
  });
});
