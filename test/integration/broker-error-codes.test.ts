// The broker's error_message to a controller carries its stable code (protocol/broker-errors.ts):
// in PCP v2 as the envelope's `code` (the data stays the description string), in PCP v1 in the
// data beside `id` and `description`; an agent's has none. Baton's PCP client exposes it as
// `brokerCode`, and PxpRunner reads an absent target by it. A real broker process over TLS.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { PxpRunner } from '../../orchestrator/pcp/pxp-runner.ts';
import { BrokerErrorCode, ERROR_CODES_HEADER } from '../../protocol/broker-errors.ts';
import { ClientErrorCode, PcpClientError } from '../../protocol/client/broker-uri.ts';
import { PcpClient } from '../../protocol/client/pcp-client.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';
import { TestClientV1, V1Types } from '../helpers/pcp-v1-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';

const GHOST = 'pcp://ghost/agent';
const WAIT_MS = 10_000;
/** What Baton's PCP client sends at its upgrade to ask for codes. */
const ASK = { headers: { [ERROR_CODES_HEADER]: '1' } };

describe('broker error codes', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  const clients: PcpClient[] = [];

  before(async () => {
    pki = await makePki(['orchestrator', 'v1ctl', 'node1']);
    broker = await startBrokerProcess({ pki, config: { 'controller-cns': ['orchestrator', 'v1ctl'] } });
  });
  after(async () => {
    for (const c of clients) await c.stop();
    await broker?.stop();
    pki?.remove();
  });

  async function pcpClient(name: string, pcpVersion: '1' | '2'): Promise<PcpClient> {
    const client = new PcpClient({
      brokerUris: [broker.url(pcpVersion === '2' ? '/pcp2/' : '/pcp/')],
      clientType: 'controller',
      tls: identity(pki, name),
      log: pino({ level: 'silent' }),
      pcpVersion,
      backoff: { initialMs: 50, maxMs: 200 },
    });
    clients.push(client);
    client.start();
    await client.waitConnected(WAIT_MS);
    return client;
  }

  it('PCP v2: the code beside in_reply_to, the data still the description string', async () => {
    const ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'), ASK);
    try {
      const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: GHOST });
      const err = await ctl.reply(id);
      assert.equal(err.message_type, MessageTypes.errorMessage);
      assert.equal(err.code, BrokerErrorCode.targetNotConnected);
      assert.equal(typeof err.data, 'string');
      const bad = ctl.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://*/agent' });
      assert.equal((await ctl.reply(bad)).code, BrokerErrorCode.wildcardTarget);
    } finally {
      await ctl.close();
    }
  });

  it('PCP v1: the code in the error data beside id and description', async () => {
    const ctl = await TestClientV1.connect(broker.url('/pcp/'), identity(pki, 'v1ctl'), 'pcp://v1ctl/controller', ASK);
    try {
      const id = ctl.send({ message_type: MessageTypes.pxpRequest, targets: [GHOST] });
      const err = await ctl.next((m) => m.envelope.message_type === V1Types.errorMessage && (m.data as { id?: string }).id === id);
      const data = err.data as { id: string; description: string; code: string };
      assert.equal(data.code, BrokerErrorCode.targetNotConnected);
      assert.equal(typeof data.description, 'string');
    } finally {
      await ctl.close();
    }
  });

  it("sends no code to a client that did not ask (Puppet's pxp-agent and controllers drop messages with fields they do not know), in v2 and v1", async () => {
    const ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    try {
      const err = await ctl.reply(ctl.send({ message_type: MessageTypes.pxpRequest, target: GHOST }));
      assert.equal(err.message_type, MessageTypes.errorMessage);
      assert.equal(err.code, undefined, 'a controller that did not ask');
    } finally {
      await ctl.close();
    }
    const agent = await TestClient.connect(broker.url('/pcp2/agent'), identity(pki, 'node1'));
    try {
      const id = agent.send({ message_type: MessageTypes.pxpResponse, target: 'pcp://gone/controller' });
      const err = await agent.reply(id);
      assert.equal(err.message_type, MessageTypes.errorMessage);
      assert.deepEqual(Object.keys(err).sort(), ['data', 'id', 'in_reply_to', 'message_type', 'sender', 'target']);
    } finally {
      await agent.close();
    }
    const v1 = await TestClientV1.connect(broker.url('/pcp/'), identity(pki, 'node1'), 'pcp://node1/agent');
    try {
      const id = v1.send({ message_type: MessageTypes.pxpResponse, targets: ['pcp://gone/controller'] });
      assert.deepEqual(Object.keys((await v1.errorFor(id)).data as object).sort(), ['description', 'id']);
    } finally {
      await v1.close();
    }
  });

  for (const version of ['2', '1'] as const) {
    it(`the PCP client (v${version}) exposes it as brokerCode, and PxpRunner reads an absent target by it`, async () => {
      const client = await pcpClient(version === '2' ? 'orchestrator' : 'v1ctl', version);
      const err = await client.request(pxpRequest(GHOST, { transaction_id: `t-${version}`, module: 'echo', action: 'echo', params: {} }, true), WAIT_MS).then(
        () => assert.fail('delivered to an absent target'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof PcpClientError);
      assert.equal(err.code, ClientErrorCode.errorMessage);
      assert.equal(err.brokerCode, BrokerErrorCode.targetNotConnected);

      const runner = new PxpRunner(client);
      assert.deepEqual(await runner.start('ghost', `0a1b2c3d-1-${version.repeat(16)}`, { module: 'task', action: 'run', params: {} }), { kind: 'not-connected' });
    });
  }
});
