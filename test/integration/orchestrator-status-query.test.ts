// `status query` only when it is needed, end to end: a real orchestrator, broker, agent and Redis.
// A fault-free run longer than the old 5-s poll sends none; when the orchestrator's broker session
// drops (a TCP relay between it and the broker cuts it) and the run's response is refused by the
// broker meanwhile, the orchestrator asks once after it reconnected and the run finishes.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { metricValue, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

/** Every wait of this file is bounded by this. */
const WAIT_MS = 30_000;
/** Longer than the old status poll interval (5 s): a timer would have asked at least once. */
const FAULT_FREE_RUN_S = 6;
const STATUS_QUERIES = 'baton_orchestrator_status_queries_total';

function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms))),
  ]);
}

/**
 * A TCP relay to the broker. `cut()` ends every relayed connection and holds new ones until
 * `mend()`, which relays them then (so the client's next attempt succeeds at once).
 */
class Relay {
  private readonly server: Server;
  private readonly live = new Set<Socket>();
  private held: Socket[] | null = null;
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = createServer((client) => {
      client.on('error', () => {});
      if (this.held) {
        client.pause();
        this.held.push(client);
      } else {
        this.relay(client);
      }
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  cut(): void {
    this.held = [];
    for (const s of this.live) s.destroy();
    this.live.clear();
  }

  mend(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const c of held) this.relay(c);
  }

  async close(): Promise<void> {
    for (const c of this.held ?? []) c.destroy();
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(client: Socket): void {
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    this.live.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    client.resume();
  }
}

describe('orchestrator: status query only when it is needed', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let relay: Relay;
  let orch: OrchestratorProcess;
  const agents: AgentProcess[] = [];
  let scratch: string;

  before(async () => {
    pki = await makePki(['node1']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    relay = new Relay(broker.port);
    await relay.listen();
    // The orchestrator reaches the broker through the relay; the agent directly.
    orch = await startOrchestratorProcess({ pki, brokerUris: [`wss://127.0.0.1:${relay.port}/pcp2/`], redisUrl: redis.url, codedir: makeCodedir() });
    agents.push(await startAgentProcess({ pki, name: 'node1', brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], masterUris: [`https://127.0.0.1:${orch.port}`] }));
    await within(waitForConnected(orch, 1), 'the orchestrator sees node1');
    scratch = mkdtempSync(join(tmpdir(), 'baton-status-query-'));
  });
  after(async () => {
    await relay?.close();
    await stopStack({ agents, orch, broker, redis, pki });
  });

  const statusQueries = async () => metricValue((await orch.api('/metrics')).text, STATUS_QUERIES);
  const submit = async (body: object): Promise<string> => {
    const res = await orch.api('/orchestrator/v1/command/task', { body });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    return res.json.job.name as string;
  };

  it('sends no status query while a run goes on without faults', async () => {
    const before = await statusQueries();
    assert.equal(before, 0);
    const id = await submit({ task: 'sample::sleep', params: { seconds: FAULT_FREE_RUN_S }, scope: { nodes: ['node1'] } });
    await within(waitForJobEnd(orch, id), 'the job ends');
    const nodes = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items;
    assert.equal(nodes[0].state, 'finished');
    assert.deepEqual(nodes[0].result, { _output: 'slept\n' });
    assert.equal(await statusQueries(), 0, 'no status query in a fault-free run');
  });

  it('asks a running node once after its broker session came back, and the run finishes', async () => {
    const before = await statusQueries();
    const gate = join(scratch, 'gate');
    const [agent] = agents;
    const starts = agent!.waitForNextLog((l) => l.msg === 'action started');
    const id = await submit({ task: 'sample::wait_for', params: { gate, word: 'through' }, scope: { nodes: ['node1'] } });
    const started = await within(starts, 'the action starts');
    assert.match(String(started.transaction_id), new RegExp(`^[0-9a-f]{8}-${id}-`));
    const tx = started.transaction_id as string;

    // The orchestrator's session drops; the run ends meanwhile and its response is refused.
    const dropped = orch.waitForNextLog((l) => l.msg === 'disconnected from broker');
    relay.cut();
    await within(dropped, 'the orchestrator notices');
    const refused = agent!.waitForNextLog((l) => l.msg === 'the broker could not deliver a message');
    writeFileSync(gate, '');
    await within(agent!.waitForLog((l) => l.msg === 'action ended' && l.transaction_id === tx), 'the action ends');
    const refusal = await within(refused, "the broker refuses the run's response").catch((err: Error) => {
      throw new Error(`${err.message}; agent: ${JSON.stringify(agent!.logs.slice(-6))}; broker: ${JSON.stringify(broker.logs.slice(-6))}`);
    });
    assert.match(String(refusal.description), /not connected/);
    assert.equal(existsSync(gate), true);
    assert.equal(await statusQueries().catch(() => before), before, 'nothing asked while away');

    const back = orch.waitForNextLog((l) => l.msg === 'connected to broker');
    relay.mend();
    await within(back, 'the orchestrator reconnects');
    await within(waitForJobEnd(orch, id), 'the job ends');
    const nodes = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items;
    assert.equal(nodes[0].state, 'finished');
    assert.deepEqual(nodes[0].result, { _output: 'through\n' });
    assert.equal((await statusQueries()) - before, 1, 'asked once, after the reconnection');
  });
});
