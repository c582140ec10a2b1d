// Baton's PCP client against real brokers: typed errors, timeouts, inventory subscriptions that
// survive reconnection, failover, and refused connections.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { InventoryChange } from '../../protocol/inventory.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { identity, TestClient } from '../helpers/pcp-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';

function client(pki: TestPki, name: string, type: string, brokers: string[], logs?: string[]): PcpClient {
  const sink = new Writable({ write: (chunk, _enc, cb) => (logs?.push(chunk.toString()), cb()) });
  const c = new PcpClient({ brokerUris: brokers, clientType: type, tls: identity(pki, name), log: pino({ level: 'info' }, sink), backoff: { initialMs: 50, maxMs: 200 } });
  c.start();
  return c;
}

function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'resolved',
    (e: { code?: string }) => e.code ?? 'no code',
  );
}

describe('PCP client', () => {
  let pki: TestPki;
  let b1: BrokerProcess;
  let b2: BrokerProcess;
  const clients: PcpClient[] = [];

  before(async () => {
    pki = await makePki(['orchestrator', 'node1', 'node2']);
    b1 = await startBrokerProcess({ pki, logLevel: 'info', config: { 'inventory-update-interval': 50 } });
    b2 = await startBrokerProcess({ pki, logLevel: 'info', config: { 'inventory-update-interval': 50 } });
  });
  after(async () => {
    for (const c of clients) await c.stop();
    await b1?.stop();
    await b2?.stop();
    pki?.remove();
  });

  const url = (b: BrokerProcess) => `wss://127.0.0.1:${b.port}/pcp2/`;
  const make = (name: string, type: string, brokers: string[], logs?: string[]) => {
    const c = client(pki, name, type, brokers, logs);
    clients.push(c);
    return c;
  };

  it('names itself by its certificate and turns error_message and unauthorized replies into typed errors', async () => {
    const ctl = make('orchestrator', 'controller', [url(b1)]);
    const agent = make('node1', 'agent', [url(b1)]);
    await ctl.waitConnected();
    await agent.waitConnected();
    assert.equal(ctl.uri, 'pcp://orchestrator/controller');
    const err = await ctl.request({ message_type: 'x', target: 'pcp://ghost/agent' }).catch((e: Error & { code: string }) => e);
    assert.equal((err as { code: string }).code, 'pcp-client/error-message');
    assert.match((err as Error).message, /'pcp:\/\/ghost\/agent' is not connected/);
    assert.equal(await codeOf(agent.inventory(['pcp://*/*'])), 'pcp-client/unauthorized');
  });

  it('times a request out with a typed error when no reply comes', async () => {
    const ctl = make('orchestrator', 'controller', [url(b2)]);
    await ctl.waitConnected();
    const silent = await TestClient.connect(`wss://127.0.0.1:${b2.port}/pcp2/agent`, identity(pki, 'node2'));
    try {
      const req = pxpRequest('pcp://node2/agent', { transaction_id: 't1', module: 'echo', action: 'echo', params: { argument: 'x' } }, true);
      assert.equal(await codeOf(ctl.request(req, 300)), 'pcp-client/timeout');
      assert.equal(await codeOf(ctl.expectTransaction('t-none', 300)), 'pcp-client/timeout');
    } finally {
      await silent.close();
      await ctl.stop();
    }
  });

  it('subscribes to the inventory, gets batched changes, and renews the subscription after a reconnection', async () => {
    const broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'inventory-update-interval': 50 } });
    const port = broker.port;
    const ctl = make('orchestrator', 'controller', [`wss://127.0.0.1:${port}/pcp2/`]);
    await ctl.waitConnected();
    assert.deepEqual(await ctl.subscribeInventory(['pcp://*/agent']), []);
    const changes: InventoryChange[] = [];
    ctl.on('inventory', (c) => changes.push(...c));
    const a1 = make('node1', 'agent', [`wss://127.0.0.1:${port}/pcp2/`]);
    await once(ctl, 'inventory');
    assert.deepEqual(changes, [{ client: 'pcp://node1/agent', change: 1 }]);

    await broker.stop('SIGKILL');
    const snapshot = once(ctl, 'inventorySnapshot');
    const restarted = await startBrokerProcess({ pki, logLevel: 'info', port, config: { 'inventory-update-interval': 50 } });
    try {
      const [uris] = (await snapshot) as [string[]];
      assert.ok(Array.isArray(uris));
      await a1.waitConnected();
      // node1 reconnected to the new broker: whether it came before or after the renewal, the
      // controller learns of it from the snapshot or from a change.
      if (!uris.includes('pcp://node1/agent')) {
        const [more] = (await once(ctl, 'inventory')) as [InventoryChange[]];
        assert.deepEqual(more, [{ client: 'pcp://node1/agent', change: 1 }]);
      }
      assert.deepEqual(await ctl.inventory(['pcp://*/agent']), ['pcp://node1/agent']);
      await ctl.unsubscribeInventory();
    } finally {
      await a1.stop();
      await ctl.stop();
      await restarted.stop();
    }
  });

  it('fails over to the next broker when the first is gone', async () => {
    const first = await startBrokerProcess({ pki, logLevel: 'info' });
    const agent = make('node2', 'agent', [`wss://127.0.0.1:${first.port}/pcp2/`, url(b1)]);
    await agent.waitConnected();
    assert.equal(agent.broker, `wss://127.0.0.1:${first.port}/pcp2/`);
    const moved = once(agent, 'connected');
    await first.stop();
    assert.deepEqual(await moved, [url(b1)]);
    await agent.stop();
  });

  it('reports why a broker refused the connection, and keeps trying', async () => {
    const logs: string[] = [];
    const impostor = make('node1', 'controller', [url(b1)], logs);
    const [broker, err] = (await once(impostor, 'connectError')) as [string, Error];
    assert.equal(broker, url(b1));
    assert.match(err.message, /HTTP 403 'node1' is not allowed to connect as a controller/);
    await once(impostor, 'connectError'); // it tries again, after a pause
    assert.ok(logs.some((l) => l.includes('cannot connect to broker')));
    assert.equal(impostor.connected, false);
    await impostor.stop();
  });

  it('rejects what is pending with a typed error when stopped', async () => {
    const ctl = make('orchestrator', 'controller', [url(b2)]);
    await ctl.waitConnected();
    const pending = codeOf(ctl.expectTransaction('never', 60_000));
    await ctl.stop();
    assert.equal(await pending, 'pcp-client/stopped');
    assert.throws(() => ctl.send({ message_type: 'x' }), /not connected/);
  });
});
