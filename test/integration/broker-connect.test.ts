// Point 1 and 2 of the broker: who may connect, at which paths, as what.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { expectRefused, identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';

describe('broker connections', () => {
  let pki: TestPki;
  let foreign: TestPki;
  let broker: BrokerProcess;

  before(async () => {
    pki = await makePki(['orchestrator', 'ops-controller-1', 'node1', 'node2']);
    foreign = await makePki(['node1'], 'baton-foreign-');
    broker = await startBrokerProcess({ pki, config: { 'controller-cns': ['orchestrator', 'ops-controller-*'] } });
  });
  after(async () => {
    await broker?.stop();
    pki?.remove();
    foreign?.remove();
  });

  it('logs one "listening" line with the bound port', () => {
    const line = broker.logs.find((l) => l.msg === 'listening');
    assert.ok(line);
    assert.equal(typeof line.port, 'number');
    assert.ok((line.port as number) > 0);
  });

  for (const [path, uri] of [
    ['/pcp2/agent', 'pcp://node1/agent'],
    ['/pcp/v2.0/agent', 'pcp://node1/agent'],
    ['/pcp2', 'pcp://node1/agent'],
    ['/pcp2/', 'pcp://node1/agent'],
    ['/pcp2/web', 'pcp://node1/web'],
  ] as const) {
    it(`accepts PCP v2 at ${path} as ${uri}, named by the certificate CN`, async () => {
      const ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
      const client = await TestClient.connect(broker.url(path), identity(pki, 'node1'));
      try {
        const id = ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: [uri] } });
        const res = await ctl.reply(id);
        assert.deepEqual(res.data, { uris: [uri] });
      } finally {
        await client.close();
        await ctl.close();
      }
    });
  }

  it('refuses a client without a certificate', async () => {
    const { status, body } = await expectRefused(broker.url(), { ca: identity(pki, 'node1').ca });
    assert.equal(status, 401);
    assert.match(body, /client certificate is required/);
  });

  it('refuses a certificate signed by another CA', async () => {
    const id = identity(foreign, 'node1');
    const { status, body } = await expectRefused(broker.url(), { cert: id.cert, key: id.key, ca: identity(pki, 'node1').ca });
    assert.equal(status, 403);
    assert.match(body, /not trusted/);
  });

  it('refuses client type "server", which is reserved for brokers', async () => {
    const { status, body } = await expectRefused(broker.url('/pcp2/server'), identity(pki, 'node1'));
    assert.equal(status, 403);
    assert.match(body, /reserved/);
  });

  it('refuses unknown paths, and a v1 path whose client type is not valid', async () => {
    assert.equal((await expectRefused(broker.url('/nope'), identity(pki, 'node1'))).status, 404);
    assert.equal((await expectRefused(broker.url('/pcp2/agent/extra'), identity(pki, 'node1'))).status, 404);
    assert.equal((await expectRefused(broker.url('/pcp/v1.0/a/b'), identity(pki, 'node1'))).status, 404);
    assert.equal((await expectRefused(broker.url('/pcp/v1.0/b%20d'), identity(pki, 'node1'))).status, 400);
  });

  it('allows controller sessions only for CNs matching controller-cns', async () => {
    const { status, body } = await expectRefused(broker.url('/pcp2/controller'), identity(pki, 'node1'));
    assert.equal(status, 403);
    assert.match(body, /not allowed to connect as a controller/);
    const exact = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    const globbed = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'ops-controller-1'));
    await exact.close();
    await globbed.close();
  });

  it('lets a non-controller CN open any other type', async () => {
    const c = await TestClient.connect(broker.url('/pcp2/anything-else'), identity(pki, 'node2'));
    await c.close();
  });
});
