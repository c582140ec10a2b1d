// PCP v1 in the broker: association, delivery to several and wildcard targets, expiry,
// destination reports, debug hops, translation to and from v2, and bad v1 input.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeV1, expiresIn } from '../../protocol/pcp-v1.ts';
import { fetchInsecure, metricValue, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';
import { TestClientV1, V1Types } from '../helpers/pcp-v1-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { Rng } from '../helpers/fuzz.ts';

const NB_REQUEST = 'http://puppetlabs.com/rpc_non_blocking_request';
const PROVISIONAL = 'http://puppetlabs.com/rpc_provisional_response';
const NB_RESPONSE = 'http://puppetlabs.com/rpc_non_blocking_response';

describe('broker: PCP v1', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let v1url: string;
  let ctl2: TestClient;
  let ctl1: TestClientV1;
  let a1: TestClientV1;
  let a2: TestClientV1;
  let b2: TestClient;

  before(async () => {
    pki = await makePki(['orchestrator', 'v1ctl', 'n1', 'n2', 'n3', 'mallory']);
    broker = await startBrokerProcess({ pki, config: { 'controller-cns': ['orchestrator', 'v1ctl'], 'max-message-size': 64 * 1024, 'association-timeout': 300 } });
    v1url = broker.url('/pcp/');
    ctl2 = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    ctl1 = await TestClientV1.connect(broker.url('/pcp/v1.0/controller'), identity(pki, 'v1ctl'), 'pcp://v1ctl/controller');
    a1 = await TestClientV1.connect(v1url, identity(pki, 'n1'), 'pcp://n1/agent');
    a2 = await TestClientV1.connect(broker.url('/pcp/v1.0'), identity(pki, 'n2'), 'pcp://n2/agent');
    b2 = await TestClient.connect(broker.url('/pcp2/agent'), identity(pki, 'n3'));
  });
  after(async () => {
    for (const c of [ctl2, ctl1, a1, a2, b2]) await c?.close();
    await broker?.stop();
    pki?.remove();
  });

  /** ctl1 → a1 → ctl1: the v1 sessions still route. */
  async function assertV1Routes(): Promise<void> {
    const id = ctl1.send({ message_type: MessageTypes.pxpRequest, targets: ['pcp://n1/agent'] }, { transaction_id: 'probe', module: 'echo', action: 'echo' });
    await a1.next((m) => m.envelope.id === id);
    const rid = a1.send({ message_type: MessageTypes.pxpResponse, targets: ['pcp://v1ctl/controller'] }, { transaction_id: 'probe', results: {} });
    await ctl1.next((m) => m.envelope.id === rid);
  }

  it('associates v1 clients, lists them in the inventory with v2 clients, and counts them by version', async () => {
    const id = ctl2.send({ message_type: MessageTypes.inventoryRequest, target: 'pcp:///server', data: { query: ['pcp://*/agent'] } });
    assert.deepEqual((await ctl2.reply(id)).data, { uris: ['pcp://n1/agent', 'pcp://n2/agent', 'pcp://n3/agent'] });
    const vid = ctl1.send({ message_type: V1Types.inventoryRequest, targets: ['pcp:///server'] }, { query: ['pcp://*/*'] });
    const inv = await ctl1.next((m) => m.envelope['in-reply-to'] === vid);
    assert.equal(inv.envelope.message_type, V1Types.inventoryResponse);
    assert.deepEqual((inv.data as { uris: string[] }).uris, ['pcp://n1/agent', 'pcp://n2/agent', 'pcp://n3/agent', 'pcp://orchestrator/controller', 'pcp://v1ctl/controller']);
    const status = JSON.parse(await fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services`)) as { 'broker-service': { status: { sessions_by_pcp_version: Record<string, number> } } };
    assert.deepEqual(status['broker-service'].status.sessions_by_pcp_version, { '1': 3, '2': 2 });
    assert.equal(metricValue(await broker.metrics(), 'baton_broker_sessions_by_version', { pcp_version: '1' }), 3);
  });

  it('delivers a v2 controller request to a v1 agent as binary v1, and the v1 reply back as v2 with in_reply_to', async () => {
    const id = ctl2.send({ message_type: NB_REQUEST, target: 'pcp://n1/agent', data: { transaction_id: 'tx-1', module: 'echo', action: 'echo', notify_outcome: true } });
    const got = await a1.next((m) => m.envelope.id === id);
    assert.deepEqual(got.envelope.targets, ['pcp://n1/agent']);
    assert.equal(got.envelope.sender, 'pcp://orchestrator/controller');
    const ttl = Date.parse(got.envelope.expires) - Date.now();
    assert.ok(ttl > 50_000 && ttl <= 60_000, `expires in ${ttl} ms (message-ttl 60 s)`);
    assert.equal((got.data as { transaction_id: string }).transaction_id, 'tx-1');
    const hops = (got.debug[0] as { hops: { server: string; stage: string; time: string }[] }).hops;
    assert.equal(hops[0]!.server, 'pcp://broker/server');
    // pxp-agent's replies carry only the transaction id.
    const p = a1.send({ message_type: PROVISIONAL, targets: ['pcp://orchestrator/controller'] }, { transaction_id: 'tx-1' });
    const prov = await ctl2.next((e) => e.id === p);
    assert.equal(prov.in_reply_to, id);
    assert.equal(prov.target, 'pcp://orchestrator/controller');
    const f = a1.send({ message_type: NB_RESPONSE, targets: ['pcp://orchestrator/controller'] }, { transaction_id: 'tx-1', results: { ok: true } });
    const fin = await ctl2.next((e) => e.id === f);
    assert.equal(fin.in_reply_to, id);
    assert.deepEqual(fin.data, { transaction_id: 'tx-1', results: { ok: true } });
    assert.equal(ctl2.received.some((e) => e.message_type === MessageTypes.errorMessage), false);
  });

  it('delivers a v1 message to several and wildcard targets, v1 and v2 alike, with a destination report', async () => {
    const id = ctl1.send({ message_type: MessageTypes.pxpRequest, targets: ['pcp://*/agent', 'pcp://n1/agent'], destination_report: true }, { transaction_id: 'multi', module: 'echo', action: 'echo' });
    const report = await ctl1.next((m) => m.envelope.message_type === V1Types.destinationReport);
    assert.deepEqual(report.data, { id, targets: ['pcp://n1/agent', 'pcp://n2/agent', 'pcp://n3/agent'] });
    for (const a of [a1, a2]) assert.equal((await a.next((m) => m.envelope.id === id)).envelope.sender, 'pcp://v1ctl/controller');
    const v2 = await b2.next((e) => e.id === id);
    assert.equal(v2.target, 'pcp://n3/agent');
    assert.equal(v2.sender, 'pcp://v1ctl/controller');
    assert.deepEqual(v2.data, { transaction_id: 'multi', module: 'echo', action: 'echo' });
    // Exactly one copy for n1, although it is named twice.
    await assertV1Routes();
    assert.equal(a1.received.some((m) => m.envelope.id === id), false);
  });

  it('authorizes each copy on its own: an agent may reach controllers, not other agents', async () => {
    const id = a1.send({ message_type: MessageTypes.pxpResponse, targets: ['pcp://v1ctl/controller', 'pcp://n2/agent'] }, { transaction_id: 'x', results: {} });
    await ctl1.next((m) => m.envelope.id === id);
    const err = await a1.errorFor(id);
    assert.match((err.data as { description: string }).description, /not authorized .* pcp:\/\/n2\/agent/);
    await assertV1Routes();
    assert.equal(a2.received.some((m) => m.envelope.id === id), false);
  });

  it('keeps the debug chunks from v1 to v1 and appends its own hop', async () => {
    const id = ctl1.send({ message_type: MessageTypes.pxpRequest, targets: ['pcp://n2/agent'] }, { transaction_id: 'dbg', module: 'ping', action: 'ping' }, [
      { hops: [{ server: 'pcp://upstream/server', stage: 'accepted', time: '2026-01-01T00:00:00.000Z' }] },
      { note: 'second debug chunk' },
    ]);
    const got = await a2.next((m) => m.envelope.id === id);
    const hops = (got.debug[0] as { hops: { server: string }[] }).hops.map((h) => h.server);
    assert.deepEqual(hops, ['pcp://upstream/server', 'pcp://broker/server']);
    assert.deepEqual(got.debug[1], { note: 'second debug chunk' });
  });

  it('answers an expired message with ttl_expired and does not deliver it', async () => {
    const id = ctl1.send({ message_type: MessageTypes.pxpRequest, targets: ['pcp://n1/agent'], expires: new Date(Date.now() - 1_000).toISOString() }, { transaction_id: 'old' });
    const expired = await ctl1.next((m) => m.envelope.message_type === V1Types.ttlExpired);
    assert.deepEqual(expired.data, { id });
    await assertV1Routes();
    assert.equal(a1.received.some((m) => m.envelope.id === id), false);
  });

  it('refuses a v1 sender spoof and a target that is not connected, naming them', async () => {
    const id = a1.send({ message_type: MessageTypes.pxpResponse, targets: ['pcp://v1ctl/controller'], sender: 'pcp://n2/agent' });
    assert.match(((await a1.errorFor(id)).data as { description: string }).description, /does not match this session's identity 'pcp:\/\/n1\/agent'/);
    await assertV1Routes();
    assert.equal(ctl1.received.some((m) => m.envelope.id === id), false);
    const gone = ctl1.send({ message_type: MessageTypes.pxpRequest, targets: ['pcp://nobody/agent'] });
    assert.match(((await ctl1.errorFor(gone)).data as { description: string }).description, /'pcp:\/\/nobody\/agent' is not connected/);
  });

  it('answers every malformed v1 frame with an error_message and keeps the session usable', async () => {
    const env = Buffer.from(JSON.stringify({ id: 'bad-1', message_type: MessageTypes.pxpRequest, expires: expiresIn(60_000), targets: ['pcp://n1/agent'], sender: 'pcp://v1ctl/controller' }));
    const chunk = (type: number, content: Buffer, size = content.length) => Buffer.concat([Buffer.from([type]), int32(size), content]);
    const good = encodeV1({ envelope: JSON.parse(env.toString()), data: '{"aa":1}' });
    const frames: [string, Buffer | string, RegExp][] = [
      ['wrong version', Buffer.concat([Buffer.from([2]), good.subarray(1)]), /version 2 is not 1/],
      ['empty frame', Buffer.alloc(0), /empty message/],
      ['truncated header', Buffer.concat([Buffer.from([1]), Buffer.from([1, 0, 0])]), /truncated: its header/],
      ['truncated content (split frame)', good.subarray(0, good.length - 1), /truncated: it declares 8 bytes, 7 left/],
      ['oversize chunk size', Buffer.concat([Buffer.from([1]), chunk(1, env, 0x7fffffff)]), /truncated: it declares 2147483647 bytes/],
      ['negative size', Buffer.concat([Buffer.from([1]), chunk(1, env, -5)]), /negative size/],
      ['two envelopes', Buffer.concat([good, chunk(1, env)]), /two envelope chunks/],
      ['two data chunks', Buffer.concat([good, chunk(2, Buffer.from('{}'))]), /two data chunks/],
      ['no envelope', Buffer.concat([Buffer.from([1]), chunk(2, Buffer.from('{}'))]), /envelope must be the first chunk|no envelope/],
      ['unknown chunk type', Buffer.concat([good, chunk(7, Buffer.from('x'))]), /unknown type 7/],
      ['garbage envelope', Buffer.concat([Buffer.from([1]), chunk(1, Buffer.from('{not json'))]), /not valid JSON/],
      ['envelope with an unknown key', encodeV1({ envelope: { ...JSON.parse(env.toString()), target: 'pcp://n1/agent' } }), /unknown key 'target'/],
      ['envelope without expires', Buffer.concat([Buffer.from([1]), chunk(1, Buffer.from(JSON.stringify({ id: 'x', message_type: 't', targets: [], sender: 'pcp://v1ctl/controller' })))]), /expires/],
      ['a text frame', JSON.stringify({ id: 'x', message_type: 't' }), /text frames are not PCP v1 messages/],
    ];
    for (const [what, frame, re] of frames) {
      ctl1.sendRaw(frame);
      const err = await ctl1.next((m) => m.envelope.message_type === V1Types.errorMessage);
      assert.match((err.data as { description: string }).description, re, what);
    }
    await assertV1Routes();
    assert.equal(a1.received.some((m) => m.envelope.id === 'bad-1'), false, 'nothing malformed was delivered');
  });

  it('survives 3,000 mutated v1 frames: each is answered or dropped, nothing reaches the agent, the session routes on', async () => {
    const rng = new Rng(1313);
    const base = encodeV1({
      envelope: { id: 'fuzz', message_type: MessageTypes.pxpRequest, expires: expiresIn(60_000), targets: ['pcp://n1/agent'], sender: 'pcp://v1ctl/controller' },
      data: JSON.stringify({ transaction_id: 'fuzz', module: 'echo', action: 'echo' }),
    });
    for (let i = 0; i < 3_000; i++) {
      const f = Buffer.from(base);
      // Flip bytes anywhere but in the id (which would make a new valid message): the envelope's
      // structure, sizes, descriptors and version take the hits.
      for (let k = 0, n = 1 + rng.int(4); k < n; k++) {
        const at = rng.int(f.length);
        if (f.subarray(0, at + 1).toString('latin1').endsWith('fuz')) continue;
        f[at] = rng.int(256);
      }
      ctl1.sendRaw(rng.int(10) === 0 ? f.subarray(0, rng.int(f.length)) : f);
    }
    await assertV1Routes();
    assert.equal(ctl1.textFrames.length, 0);
    // A flipped byte inside a string value can leave a valid message, which is delivered; a
    // malformed one never is.
    assert.equal(a1.undecodable, 0);
    assert.ok(ctl1.received.filter((m) => m.envelope.message_type === V1Types.errorMessage).length > 2_000, 'most frames were answered with an error_message');
    ctl1.received.length = 0;
    a1.received.length = 0;
  });

  it('closes a v1 connection whose message is over max-message-size (1009)', async () => {
    const c = await TestClientV1.connect(v1url, identity(pki, 'mallory'), 'pcp://mallory/agent');
    c.send({ message_type: MessageTypes.pxpResponse, targets: ['pcp://v1ctl/controller'] }, { blob: 'x'.repeat(70 * 1024) });
    assert.equal((await c.closed).code, 1009);
  });

  it('drops messages before association with an error_message, then associates', async () => {
    const c = await TestClientV1.open(v1url, identity(pki, 'mallory'), 'pcp://mallory/agent');
    const id = c.send({ message_type: MessageTypes.pxpResponse, targets: ['pcp://v1ctl/controller'] });
    assert.match(((await c.errorFor(id)).data as { description: string }).description, /not associated yet/);
    assert.equal(((await c.associate()).data as { success: boolean }).success, true);
    await c.close();
  });

  it('refuses an association whose sender does not match the certificate, and closes', async () => {
    const c = await TestClientV1.open(v1url, identity(pki, 'mallory'), 'pcp://mallory/agent');
    const res = await c.associate('pcp://n1/agent');
    assert.equal((res.data as { success: boolean }).success, false);
    assert.match((res.data as { reason: string }).reason, /does not match the certificate's common name 'mallory'/);
    assert.equal((await c.closed).code, 1008);
  });

  it('refuses the controller type for a CN not in controller-cns, and a type other than the path names', async () => {
    const c = await TestClientV1.open(v1url, identity(pki, 'mallory'), 'pcp://mallory/controller');
    assert.match(((await c.associate()).data as { reason: string }).reason, /not allowed to connect as a controller/);
    await c.closed;
    const d = await TestClientV1.open(broker.url('/pcp/v1.0/agent'), identity(pki, 'mallory'), 'pcp://mallory/other');
    assert.match(((await d.associate()).data as { reason: string }).reason, /not the one this connection's path names/);
    await d.closed;
  });

  it('closes a connection that does not associate within association-timeout', async () => {
    const c = await TestClientV1.open(v1url, identity(pki, 'mallory'), 'pcp://mallory/agent');
    const closed = await c.closed;
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /association timeout/);
  });

  it('replaces an older v1 session for the same URI', async () => {
    const older = await TestClientV1.connect(v1url, identity(pki, 'mallory'), 'pcp://mallory/agent');
    const newer = await TestClientV1.connect(v1url, identity(pki, 'mallory'), 'pcp://mallory/agent');
    assert.equal((await older.closed).code, 4000);
    const id = ctl2.send({ message_type: MessageTypes.pxpRequest, target: 'pcp://mallory/agent', data: { transaction_id: 'r' } });
    await newer.next((m) => m.envelope.id === id);
    await newer.close();
  });
});

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

describe('broker: PCP v1 under authorization rules and max-connections', () => {
  let pki: TestPki;
  let broker: BrokerProcess;

  before(async () => {
    pki = await makePki(['orchestrator', 'n1', 'n2', 'n3']);
    broker = await startBrokerProcess({
      pki,
      config: {
        'max-connections': 3,
        authorization: {
          rules: [
            { sender: 'pcp://orchestrator/*', message_type: 'http://puppetlabs.com/rpc_blocking_request', target: 'pcp://n1/*', allow: true },
            { sender: 'pcp://orchestrator/*', allow: false },
            { sender: 'pcp://n*/agent', target: 'pcp://orchestrator/*', allow: true },
          ],
        },
      },
    });
  });
  after(async () => {
    await broker?.stop();
    pki?.remove();
  });

  it('applies the rules to each copy of a v1 message, and counts v1 connections against max-connections', async () => {
    const ctl = await TestClientV1.connect(broker.url('/pcp/'), identity(pki, 'orchestrator'), 'pcp://orchestrator/controller');
    const n1 = await TestClientV1.connect(broker.url('/pcp/'), identity(pki, 'n1'), 'pcp://n1/agent');
    const n2 = await TestClient.connect(broker.url('/pcp2/agent'), identity(pki, 'n2'));
    try {
      const id = ctl.send({ message_type: MessageTypes.pxpRequest, targets: ['pcp://*/agent'] }, { transaction_id: 'rules' });
      assert.equal((await n1.next((m) => m.envelope.id === id)).envelope.sender, 'pcp://orchestrator/controller');
      assert.match(((await ctl.errorFor(id)).data as { description: string }).description, /not authorized .* pcp:\/\/n2\/agent/);
      const rid = n1.send({ message_type: MessageTypes.pxpResponse, targets: ['pcp://orchestrator/controller'] }, { transaction_id: 'rules', results: {} });
      await ctl.next((m) => m.envelope.id === rid);
      assert.equal(n2.received.some((e) => e.id === id), false);
      // A fourth connection, v1 and not even associated, is over the limit.
      const extra = await TestClientV1.open(broker.url('/pcp/'), identity(pki, 'n3'), 'pcp://n3/agent');
      assert.equal((await extra.closed).code, 1011);
      const text = await broker.metrics();
      assert.equal(metricValue(text, 'baton_broker_connections_refused_total', { reason: 'max_connections' }), 1);
      assert.ok(metricValue(text, 'baton_broker_messages_received_total', { pcp_version: '1' }) >= 2, 'the two routed v1 messages');
    } finally {
      await ctl.close();
      await n1.close();
      await n2.close();
    }
  });
});
