// Chaos scenario `fuzz`: hostile input from authenticated sessions at full scale (220,000 PCP
// frames by default, from an agent and a controller session, plus PXP requests to a real agent
// and hostile HTTP bodies and query strings to the orchestrator's three faces), on real
// processes. A process of the stack that exits is a crash; afterwards a normal message must still
// be routed, the agent must still answer `echo` and no answer may have been a 5xx.
// The generators are test/helpers/fuzz.ts, shared with test/integration/fuzz.test.ts.
import { randomUUID } from 'node:crypto';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import { startAgentProcess, startController, startSilentAgent, type AgentProcess } from '../../test/helpers/agent.ts';
import { metricValue, startBrokerProcess, type BrokerProcess, type ServiceProcess } from '../../test/helpers/broker.ts';
import { fuzzAgent, fuzzBroker, fuzzHttp, RawSession } from '../../test/helpers/fuzz.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, type OrchestratorProcess } from '../../test/helpers/orchestrator.ts';
import { identity } from '../../test/helpers/pcp-client.ts';
import { makePki } from '../../test/helpers/pki.ts';
import { startRedis, type TestRedis } from '../../test/helpers/redis.ts';

export const DEFAULT_FUZZ_FRAMES = 220_000;
/** HTTP bodies and query strings per PCP frame sent, by default. */
const BODIES_PER_FRAME = 1 / 11;
/** PXP requests to the agent per PCP frame sent, by default. */
const PXP_PER_FRAME = 1 / 50;
const MAX_MESSAGE_BYTES = 1024 * 1024;
const SEED = 12;
const ROUTE_CHECK_TIMEOUT_MS = 10_000;

export interface FuzzOptions {
  frames?: number;
  bodies?: number;
  pxpRequests?: number;
}

function exited(p: ServiceProcess | undefined): boolean {
  return p !== undefined && (p.proc.exitCode !== null || p.proc.signalCode !== null);
}

async function routes(ctl: PcpClient, to: PcpClient): Promise<boolean> {
  const id = randomUUID();
  const got = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => done(false), ROUTE_CHECK_TIMEOUT_MS);
    const on = (env: EnvelopeV2) => {
      if (env.id === id) done(true);
    };
    const done = (ok: boolean) => {
      clearTimeout(timer);
      to.off('message', on);
      resolve(ok);
    };
    to.on('message', on);
  });
  try {
    ctl.send({ id, message_type: 'http://puppetlabs.com/rpc_blocking_request', target: to.uri, data: { hello: 'world' } });
  } catch {
    return false;
  }
  return got;
}

export async function run(opts: FuzzOptions & { agents?: number } = {}): Promise<Record<string, unknown>> {
  const frames = opts.frames ?? DEFAULT_FUZZ_FRAMES;
  const bodyCount = opts.bodies ?? Math.ceil(frames * BODIES_PER_FRAME);
  const pxpCount = opts.pxpRequests ?? Math.ceil(frames * PXP_PER_FRAME);
  const started = performance.now();
  const errors: string[] = [];
  const pki = await makePki(['fuzz-ctl', 'fuzz-controller', 'fuzz-agent', 'fuzz-node', 'mallory']);
  await pki.issue('orchestrator', ['127.0.0.1', 'localhost']);
  let broker: BrokerProcess | undefined;
  let agent: AgentProcess | undefined;
  let redis: TestRedis | undefined;
  let orch: OrchestratorProcess | undefined;
  const clients: PcpClient[] = [];
  const raws: RawSession[] = [];
  const result: Record<string, unknown> = { scenario: 'fuzz' };
  try {
    broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'controller-cns': ['orchestrator', 'fuzz-ctl', 'fuzz-controller'], 'max-message-size': MAX_MESSAGE_BYTES } });
    const brokerUri = `wss://127.0.0.1:${broker.port}`;
    agent = await startAgentProcess({ pki, name: 'fuzz-node', brokerUris: [brokerUri], config: { 'log-level': 'info' } });
    redis = await startRedis();
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(), keyPrefix: `fuzz${process.pid}`, config: { 'log-level': 'info' } });
    const ctl = await startController(pki, [brokerUri], 'fuzz-ctl');
    const silent = await startSilentAgent(pki, [brokerUri], 'fuzz-agent');
    clients.push(ctl, silent);
    const mallory = await RawSession.open(broker.url('/pcp2/agent'), identity(pki, 'mallory'));
    const hostileCtl = await RawSession.open(broker.url('/pcp2/controller'), identity(pki, 'fuzz-controller'));
    raws.push(mallory, hostileCtl);

    let sentFrames = 0;
    try {
      const r = await fuzzBroker({
        seed: SEED,
        frames,
        sessions: [
          { session: mallory, targets: { peer: 'pcp://fuzz-controller/controller', self: 'pcp://mallory/agent', oversizeBytes: MAX_MESSAGE_BYTES } },
          { session: hostileCtl, targets: { peer: 'pcp://fuzz-agent/agent', self: 'pcp://fuzz-controller/controller', oversizeBytes: MAX_MESSAGE_BYTES } },
        ],
      });
      sentFrames = r.frames;
      result.reconnects = r.reconnects;
    } catch (err) {
      errors.push(`broker fuzz: ${(err as Error).message}`);
    }
    let sentPxp = 0;
    try {
      sentPxp = await fuzzAgent({ seed: SEED, session: hostileCtl, agentUri: 'pcp://fuzz-node/agent', requests: pxpCount });
    } catch (err) {
      errors.push(`agent fuzz: ${(err as Error).message}`);
    }
    const http = await fuzzHttp({ baseUrl: `https://127.0.0.1:${orch.port}`, ca: orch.ca, token: ADMIN_TOKEN, count: bodyCount, seed: SEED });

    result.frames = sentFrames + sentPxp;
    result.pcp_frames = sentFrames;
    result.pxp_requests = sentPxp;
    result.bodies = http.bodies;
    result.five_hundreds = http.five_hundreds;
    result.http_not_4xx_in_face_format = http.badCount;
    result.http_hangs = http.hangs;
    if (http.bad.length > 0) result.http_samples = http.bad.slice(0, 3);
    result.normal_message_routed = !exited(broker) && (await routes(ctl, silent));
    let echo = false;
    try {
      const reply = await ctl.request(pxpRequest('pcp://fuzz-node/agent', { transaction_id: randomUUID(), module: 'echo', action: 'echo', params: { argument: 'alive' } }, true), ROUTE_CHECK_TIMEOUT_MS);
      echo = (reply.data as { results?: { outcome?: string } }).results?.outcome === 'alive';
    } catch (err) {
      errors.push(`echo after fuzz: ${(err as Error).message}`);
    }
    result.agent_echo_after = echo;
    const orchOk = await orch.api('/orchestrator/v1/inventory').then((r) => r.status === 200, () => false);
    result.orchestrator_works_after = orchOk;
    if (!exited(broker)) {
      const m = await broker.metrics();
      result.too_deep_refused = metricValue(m, 'baton_broker_messages_refused_total', { reason: 'too_deep' }) || 0;
      result.broker_handler_failures = metricValue(m, 'baton_broker_messages_refused_total', { reason: 'internal_error' }) || 0;
    }
  } catch (err) {
    errors.push((err as Error).message);
  } finally {
    result.crashes = [broker, agent, orch].filter(exited).length;
    result.duration_s = Math.round((performance.now() - started) / 100) / 10;
    if (errors.length > 0) result.errors = errors;
    for (const r of raws) r.close();
    for (const c of clients) await c.stop().catch(() => {});
    for (const p of [orch, agent, broker]) await p?.stop().catch(() => {});
    await redis?.stop().catch(() => {});
    pki.remove();
  }
  result.normal_message_routed ??= false;
  return result;
}
