// No input crashes a process: tens of thousands of hostile frames, PXP requests, HTTP bodies and
// query strings against real broker, agent and orchestrator processes, which are then still the
// same processes and still do their work. Deterministic (seeded); see test/helpers/fuzz.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import { startAgentProcess, startController, startSilentAgent, type AgentProcess } from '../helpers/agent.ts';
import { metricValue, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { fuzzAgent, fuzzBroker, fuzzHttp, RawSession } from '../helpers/fuzz.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { identity, MessageTypes, TestClient } from '../helpers/pcp-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const SEED = 12;
const FRAMES = 20_000;
const PXP_REQUESTS = 2_000;
const HTTP_REQUESTS = 20_000;
const MAX_MESSAGE_BYTES = 1024 * 1024;
const HANDLER_FAILED = /handler-failed/;

describe('no input crashes a process', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let brokerUri: string;
  const clients: PcpClient[] = [];
  const raws: (RawSession | TestClient)[] = [];
  let agent: AgentProcess | undefined;
  let redis: TestRedis | undefined;
  let orch: OrchestratorProcess | undefined;

  before(async () => {
    pki = await makePki(['fuzz-ctl', 'fuzz-controller', 'fuzz-agent', 'fuzz-node', 'mallory']);
    // The orchestrator's server certificate names the address the fuzzer connects to.
    await pki.issue('orchestrator', ['127.0.0.1', 'localhost']);
    broker = await startBrokerProcess({
      pki,
      logLevel: 'info',
      config: { 'controller-cns': ['orchestrator', 'fuzz-ctl', 'fuzz-controller'], 'max-message-size': MAX_MESSAGE_BYTES },
    });
    brokerUri = `wss://127.0.0.1:${broker.port}`;
  });
  after(async () => {
    for (const r of raws) r.close();
    for (const c of clients) await c.stop();
    await agent?.stop();
    await orch?.stop();
    await broker?.stop();
    await redis?.stop();
    pki?.remove();
  });

  /** A normal message from a controller reaches an agent session. */
  async function routesNormally(ctl: PcpClient, to: PcpClient): Promise<boolean> {
    const id = randomUUID();
    const got = new Promise<EnvelopeV2>((resolve) => {
      const on = (env: EnvelopeV2) => {
        if (env.id !== id) return;
        to.off('message', on);
        resolve(env);
      };
      to.on('message', on);
    });
    ctl.send({ id, message_type: MessageTypes.pxpRequest, target: to.uri, data: { hello: 'world' } });
    const env = await Promise.race([got, new Promise<null>((r) => setTimeout(() => r(null), 10_000).unref())]);
    return env !== null && (env.data as { hello?: string }).hello === 'world';
  }

  it('the broker answers a message nested 100,000 deep with an error_message naming the limit, in reply to its id, and keeps the session', async () => {
    const c = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'fuzz-controller'));
    raws.push(c);
    c.sendText(`{"id":"deep-1","message_type":"x","target":"pcp://nobody/agent","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    const err = await c.reply('deep-1');
    assert.equal(err.message_type, MessageTypes.errorMessage);
    assert.match(String(err.data), /deeper than 64 levels \(max-message-depth 64\)/);
    c.sendText(`${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`);
    const anonymous = await c.next((e) => e.message_type === MessageTypes.errorMessage);
    assert.equal(anonymous.in_reply_to, undefined);
    const id = c.send({ message_type: MessageTypes.inventoryRequest, target: 'pcp:///server', data: { query: ['pcp://*/agent'] } });
    assert.equal((await c.reply(id)).message_type, MessageTypes.inventoryResponse);
    await c.close();
  });

  it(`the broker survives ${FRAMES} hostile frames from agent and controller sessions: same pid, and it still routes`, async () => {
    const pid = broker.proc.pid;
    // Not 'orchestrator': the orchestrator's own session would replace this one later.
    const ctl = await startController(pki, [brokerUri], 'fuzz-ctl');
    const silent = await startSilentAgent(pki, [brokerUri], 'fuzz-agent');
    clients.push(ctl, silent);
    const mallory = await RawSession.open(broker.url('/pcp2/agent'), identity(pki, 'mallory'));
    const hostileCtl = await RawSession.open(broker.url('/pcp2/controller'), identity(pki, 'fuzz-controller'));
    raws.push(mallory, hostileCtl);
    const deepBefore = metricValue(await broker.metrics(), 'baton_broker_messages_refused_total', { reason: 'too_deep' }) || 0;

    const result = await fuzzBroker({
      seed: SEED,
      frames: FRAMES,
      sessions: [
        { session: mallory, targets: { peer: 'pcp://fuzz-controller/controller', self: 'pcp://mallory/agent', oversizeBytes: MAX_MESSAGE_BYTES } },
        { session: hostileCtl, targets: { peer: 'pcp://fuzz-agent/agent', self: 'pcp://fuzz-controller/controller', oversizeBytes: MAX_MESSAGE_BYTES } },
      ],
    });

    assert.equal(result.frames, FRAMES);
    assert.ok(result.reconnects > 0, 'invalid UTF-8 and oversize frames closed sessions, which came back');
    assert.equal(broker.proc.exitCode, null, `the broker exited: ${broker.stderr.slice(-2_000)}`);
    assert.equal(broker.proc.pid, pid);
    const metrics = await broker.metrics();
    assert.ok(metricValue(metrics, 'baton_broker_messages_refused_total', { reason: 'too_deep' }) - deepBefore >= FRAMES / 10, 'deep frames were refused as too deep');
    // A label child that was never incremented is not exposed at all: absent is 0.
    assert.equal(metricValue(metrics, 'baton_broker_messages_refused_total', { reason: 'internal_error' }) || 0, 0, 'no message made the broker throw');
    assert.equal(broker.logs.filter((l) => HANDLER_FAILED.test(String(l.code))).length, 0);
    assert.ok(await routesNormally(ctl, silent), 'a normal message is routed after the fuzzing');
  });

  it('a PCP client whose message listener throws contains it and goes on receiving', async () => {
    const [ctl, silent] = clients as [PcpClient, PcpClient];
    let thrown = 0;
    let allThrown!: () => void;
    const threeThrown = new Promise<void>((resolve) => (allThrown = resolve));
    const broken = () => {
      if (++thrown === 3) allThrown();
      throw new RangeError('Maximum call stack size exceeded');
    };
    silent.on('message', broken);
    after(() => silent.off('message', broken));
    for (let i = 0; i < 3; i++) ctl.send({ message_type: MessageTypes.pxpRequest, target: silent.uri, data: { i } });
    // The throwing listener runs first; the message is routed again once it is gone.
    await Promise.race([threeThrown, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${thrown} messages reached the listener`)), 10_000).unref())]);
    silent.off('message', broken);
    assert.ok(silent.connected);
    assert.ok(await routesNormally(ctl, silent));
  });

  it(`a real agent survives ${PXP_REQUESTS} hostile PXP requests from a controller, then runs echo`, async () => {
    agent = await startAgentProcess({ pki, name: 'fuzz-node', brokerUris: [brokerUri], config: { 'log-level': 'info' } });
    const pid = agent.proc.pid;
    const hostileCtl = await RawSession.open(broker.url('/pcp2/controller'), identity(pki, 'fuzz-controller'));
    raws.push(hostileCtl);
    const sent = await fuzzAgent({ seed: SEED, session: hostileCtl, agentUri: 'pcp://fuzz-node/agent', requests: PXP_REQUESTS });
    assert.equal(sent, PXP_REQUESTS);
    assert.ok(hostileCtl.received >= PXP_REQUESTS / 2, `the agent answered the hostile requests (${hostileCtl.received} answers)`);
    assert.equal(agent.proc.exitCode, null, `the agent exited: ${agent.stderr.slice(-2_000)}`);
    assert.equal(agent.proc.pid, pid);
    assert.equal(agent.logs.filter((l) => HANDLER_FAILED.test(String(l.code))).length, 0, 'no request made the agent throw');

    const ctl = clients[0] ?? (await startController(pki, [brokerUri], 'fuzz-ctl'));
    const reply = await ctl.request(pxpRequest('pcp://fuzz-node/agent', { transaction_id: randomUUID(), module: 'echo', action: 'echo', params: { argument: 'still here' } }, true));
    assert.deepEqual((reply.data as { results: unknown }).results, { outcome: 'still here' });
    assert.equal(broker.proc.exitCode, null);
  });

  it(`the orchestrator answers ${HTTP_REQUESTS} hostile bodies and query strings with 4xx in each face's format, never 5xx, then works`, async () => {
    redis = await startRedis();
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(), keyPrefix: `fuzz${process.pid}`, config: { 'log-level': 'info' } });
    const pid = orch.proc.pid;
    const r = await fuzzHttp({ baseUrl: `https://127.0.0.1:${orch.port}`, ca: orch.ca, token: ADMIN_TOKEN, count: HTTP_REQUESTS, seed: SEED });
    assert.equal(r.bodies, HTTP_REQUESTS);
    assert.equal(r.hangs, 0, 'no request hung');
    assert.equal(r.five_hundreds, 0, `5xx answers: ${JSON.stringify(r.bad)}`);
    assert.equal(r.badCount, 0, `answers that are no 4xx in the face's format: ${JSON.stringify(r.bad, null, 1)} statuses ${JSON.stringify(r.statuses)}`);
    assert.equal(orch.proc.exitCode, null, `the orchestrator exited: ${orch.stderr.slice(-2_000)}`);
    assert.equal(orch.proc.pid, pid);

    const inv = await orch.api('/orchestrator/v1/inventory', { method: 'POST', body: { nodes: ['fuzz-node'] } });
    assert.equal(inv.status, 200, inv.text);
    assert.equal(inv.json.items[0].name, 'fuzz-node');
    const query = await orch.api(`/orchestrator/v1/inventory?query=${encodeURIComponent('nodes { certname = "fuzz-node" }')}`);
    assert.equal(query.status, 200, query.text);
  });
});
