// Baton's PCP client over PCP v1 against a real Baton broker: association (and its refusal),
// v1 and v2 clients talking through the broker's translation, `baton agent` over v1 (config and
// --pcp-version flag), and PXP replies matched by transaction id where no in_reply_to says which
// request they answer; and the orchestrator running a task job over v1.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { PcpClient, type PcpClientOptions } from '../../protocol/client/pcp-client.ts';
import type { InventoryChange } from '../../protocol/inventory.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { pxpRequest, PxpMessageType } from '../../protocol/pxp.ts';
import { agentDirs, AgentProcess, startAgentProcess } from '../helpers/agent.ts';
import { BATON_BIN, fetchInsecure, startBrokerProcess, type BrokerProcess, type ServiceProcess } from '../helpers/broker.ts';
import { identity, TestClient } from '../helpers/pcp-client.ts';
import { makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const WAIT_MS = 10_000;

function echo(target: string, tx: string, argument: string): EnvelopeV2 {
  return pxpRequest(target, { transaction_id: tx, module: 'echo', action: 'echo', params: { argument } }, true);
}

function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'resolved',
    (e: { code?: string }) => e.code ?? 'no code',
  );
}

/** Resolves with the first event `name` whose arguments pass `pred`, failing after `ms`. */
function nextEvent<T extends unknown[]>(emitter: PcpClient, name: 'connectError' | 'message' | 'inventory', pred: (...args: T) => boolean, ms = WAIT_MS): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, on as never);
      reject(new Error(`no matching '${name}' event within ${ms} ms`));
    }, ms);
    const on = (...args: T) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      emitter.off(name, on as never);
      resolve(args);
    };
    emitter.on(name, on as never);
  });
}

describe('PCP client over PCP v1', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  const clients: PcpClient[] = [];
  const processes: ServiceProcess[] = [];
  const raws: TestClient[] = [];
  const logs: string[] = [];

  before(async () => {
    pki = await makePki(['orchestrator', 'orch-v1', 'node1', 'node2', 'node3', 'node4', 'node5', 'intruder']);
    broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'controller-cns': ['orchestrator', 'orch-v1'] } });
  });
  after(async () => {
    for (const c of clients) await c.stop();
    for (const r of raws) await r.close();
    for (const p of processes) await p.stop();
    await broker?.stop();
    pki?.remove();
  });

  const v1Url = () => `wss://127.0.0.1:${broker.port}/pcp/`;
  const v2Url = () => `wss://127.0.0.1:${broker.port}/pcp2/`;
  const make = (name: string, type: string, extra: Partial<PcpClientOptions> = {}) => {
    const sink = new Writable({ write: (chunk, _enc, cb) => (logs.push(chunk.toString()), cb()) });
    const c = new PcpClient({
      brokerUris: [extra.pcpVersion === '1' ? v1Url() : v2Url()],
      clientType: type,
      tls: identity(pki, name),
      log: pino({ level: 'debug' }, sink),
      backoff: { initialMs: 50, maxMs: 200 },
      ...extra,
    });
    clients.push(c);
    c.start();
    return c;
  };
  let v2ctl: PcpClient;
  let v1ctl: PcpClient;

  it('associates a v1 client before it counts as connected, and the inventory lists it', async () => {
    v2ctl = make('orchestrator', 'controller');
    const agent = make('node5', 'agent', { pcpVersion: '1' });
    await v2ctl.waitConnected();
    await agent.waitConnected();
    assert.equal(agent.version, '1');
    assert.equal(agent.uri, 'pcp://node5/agent');
    assert.ok((await v2ctl.inventory(['pcp://*/agent'])).includes('pcp://node5/agent'));
    const status = JSON.parse(await fetchStatus(broker.port)) as { status: { sessions_by_pcp_version: Record<string, number> } };
    assert.ok(status.status.sessions_by_pcp_version['1']! >= 1);
  });

  it("delivers a v2 controller's PXP request to a v1 client and its reply to the controller's request()", async () => {
    const agent = clients.find((c) => c.uri === 'pcp://node5/agent')!;
    // The first reply names the request (as Baton's agent does); the second does not (as
    // Puppet's pxp-agent does): both reach the waiting request().
    let withReplyTo = true;
    agent.on('message', (env) => {
      if (env.message_type !== PxpMessageType.blockingRequest) return;
      const data = env.data as { transaction_id: string; params: { argument: string } };
      agent.send({
        message_type: PxpMessageType.blockingResponse,
        target: env.sender!,
        ...(withReplyTo ? { in_reply_to: env.id } : {}),
        data: { transaction_id: data.transaction_id, results: { outcome: data.params.argument } },
      });
    });
    const first = await v2ctl.request(echo(agent.uri, 'v1-tx-1', 'hello'));
    assert.equal(first.message_type, PxpMessageType.blockingResponse);
    assert.equal(first.sender, 'pcp://node5/agent');
    assert.deepEqual(first.data, { transaction_id: 'v1-tx-1', results: { outcome: 'hello' } });
    withReplyTo = false;
    const second = await v2ctl.request(echo(agent.uri, 'v1-tx-2', 'again'));
    assert.deepEqual(second.data, { transaction_id: 'v1-tx-2', results: { outcome: 'again' } });
  });

  it("resolves a v1 controller's request() to Baton's agents over v2 and v1, and follows the inventory by subscription", async () => {
    // Baton's broker takes `subscribe` from v1 clients too; polling (the fallback for brokers
    // that refuse it) is made too slow here to deliver the changes within the test.
    v1ctl = make('orch-v1', 'controller', { pcpVersion: '1', inventoryPollIntervalMs: 600_000 });
    await v1ctl.waitConnected();
    const initial = await v1ctl.subscribeInventory(['pcp://*/agent']);
    assert.ok(initial.includes('pcp://node5/agent'));
    const changes: InventoryChange[] = [];
    v1ctl.on('inventory', (c) => changes.push(...c));
    const connectedV2 = nextEvent<[InventoryChange[]]>(v1ctl, 'inventory', (c) => c.some((x) => x.client === 'pcp://node2/agent' && x.change === 1));
    const v2agent = await startAgentProcess({ pki, name: 'node2', brokerUris: [v2Url()] });
    processes.push(v2agent);
    await connectedV2;
    const v1agent = await startAgentProcess({ pki, name: 'node1', brokerUris: [v1Url()], config: { 'pcp-version': '1' } });
    processes.push(v1agent);
    const toV2 = await v1ctl.request(echo('pcp://node2/agent', 'c1-tx-1', 'to v2'));
    assert.equal(toV2.message_type, PxpMessageType.blockingResponse);
    assert.deepEqual((toV2.data as { results: unknown }).results, { outcome: 'to v2' });
    const toV1 = await v1ctl.request(echo('pcp://node1/agent', 'c1-tx-2', 'to v1'));
    assert.deepEqual((toV1.data as { results: unknown }).results, { outcome: 'to v1' });
    // The v2 controller reaches the v1 agent process too.
    const fromV2 = await v2ctl.request(echo('pcp://node1/agent', 'c2-tx-1', 'v2 to v1'));
    assert.deepEqual((fromV2.data as { results: unknown }).results, { outcome: 'v2 to v1' });
    // A broker error_message answers a v1 request for an absent target with a typed error.
    assert.equal(await codeOf(v1ctl.request(echo('pcp://ghost/agent', 'c1-tx-3', 'x'), 5_000)), 'pcp-client/error-message');
    const gone = nextEvent<[InventoryChange[]]>(v1ctl, 'inventory', (c) => c.some((x) => x.client === 'pcp://node2/agent' && x.change === -1));
    await v2agent.stop();
    await gone;
  });

  it('fails the association of a controller whose CN is not in controller-cns with pcp-client/refused', async () => {
    const intruder = make('intruder', 'controller', { pcpVersion: '1' });
    const [, err] = await nextEvent<[string, Error & { code?: string; details?: Record<string, unknown> }]>(intruder, 'connectError', () => true);
    assert.equal(err.code, 'pcp-client/refused');
    assert.match(String(err.details?.reason), /not allowed to connect as a controller/);
    assert.equal(intruder.connected, false);
    await intruder.stop();
  });

  it('fails an association that expired on the way with pcp-client/ttl-expired', async () => {
    const late = make('node4', 'agent', { pcpVersion: '1', messageTtlMs: -60_000 });
    const [, err] = await nextEvent<[string, Error & { code?: string }]>(late, 'connectError', () => true);
    assert.equal(err.code, 'pcp-client/ttl-expired');
    await late.stop();
  });

  it('connects `baton agent --pcp-version 1` and answers over v1', async () => {
    const dirs = agentDirs();
    writeFileSync(
      dirs.config,
      JSON.stringify({
        'broker-ws-uris': [v1Url()],
        'ssl-ca-cert': pki.ca,
        'ssl-cert': pki.cert('node3'),
        'ssl-key': pki.key('node3'),
        'spool-dir': dirs.spool,
        'task-cache-dir': dirs.cache,
        'log-level': 'debug',
      }),
    );
    const proc = spawn(process.execPath, [BATON_BIN, 'agent', '--config', dirs.config, '--pcp-version', '1'], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const agent = new AgentProcess(proc, dirs);
    processes.push(agent);
    const exited = agent.exited.then((code) => {
      throw new Error(`agent exited (${String(code)}) before connecting: ${agent.stderr}`);
    });
    await Promise.race([agent.waitForLog((l) => l.msg === 'connected to broker'), exited]);
    const reply = await v2ctl.request(echo('pcp://node3/agent', 'flag-tx', 'flag'));
    assert.deepEqual((reply.data as { results: unknown }).results, { outcome: 'flag' });
    // The same path with pcp-version 2 is refused before any connection, naming the mismatch.
    const bad = spawn(process.execPath, [BATON_BIN, 'agent', '--config', dirs.config, '--pcp-version', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    bad.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(bad, 'exit')) as [number | null];
    assert.notEqual(code, 0);
    assert.match(stderr, /PCP v1 endpoint but pcp-version is 2/);
  });

  it('matches PXP replies without in_reply_to by transaction id and sender, for v2 and v1 controllers', async () => {
    const raw = await TestClient.connect(`wss://127.0.0.1:${broker.port}/pcp2/agent`, identity(pki, 'node4'));
    raws.push(raw);
    for (const ctl of [v2ctl, v1ctl]) {
      const tx = `raw-${ctl.version}`;
      const pending = ctl.request(echo('pcp://node4/agent', tx, 'x'));
      const req = await raw.next((e) => (e.data as { transaction_id?: string } | undefined)?.transaction_id === tx);
      // Another sender's reply with the same transaction id does not answer it.
      const other = clients.find((c) => c.uri === 'pcp://node5/agent')!;
      other.send({ message_type: PxpMessageType.blockingResponse, target: ctl.uri, data: { transaction_id: tx, results: { outcome: 'spoof' } } });
      const stray = nextEvent<[EnvelopeV2]>(ctl, 'message', (e) => e.sender === 'pcp://node5/agent' && (e.data as { transaction_id?: string }).transaction_id === tx);
      await stray;
      raw.send({ message_type: PxpMessageType.provisionalResponse, target: req.sender!, data: { transaction_id: tx } });
      const reply = await pending;
      assert.equal(reply.message_type, PxpMessageType.provisionalResponse);
      assert.equal(reply.in_reply_to, undefined);
      assert.equal(reply.sender, 'pcp://node4/agent');
      // A reply matching nothing any more is logged at debug, and still emitted as a message.
      const late = nextEvent<[EnvelopeV2]>(ctl, 'message', (e) => e.sender === 'pcp://node4/agent' && e.message_type === PxpMessageType.blockingResponse);
      raw.send({ message_type: PxpMessageType.blockingResponse, target: req.sender!, data: { transaction_id: tx, results: {} } });
      await late;
      assert.ok(logs.some((l) => l.includes('a PXP reply matched no request or transaction') && l.includes(tx)));
    }
    // An rpc_error_message names the request in its data.id.
    const pending = v1ctl.request(echo('pcp://node4/agent', 'raw-err', 'x'));
    const req = await raw.next((e) => (e.data as { transaction_id?: string } | undefined)?.transaction_id === 'raw-err');
    raw.send({ message_type: PxpMessageType.errorMessage, target: req.sender!, data: { transaction_id: 'raw-err', id: req.id, description: 'no such module' } });
    const err = await pending;
    assert.equal(err.message_type, PxpMessageType.errorMessage);
    assert.equal((err.data as { description: string }).description, 'no such module');
    // expectTransaction still ends with the non-blocking response of its transaction.
    const ends = v1ctl.expectTransaction('raw-nb', WAIT_MS);
    raw.send({ message_type: PxpMessageType.nonBlockingResponse, target: 'pcp://orch-v1/controller', data: { transaction_id: 'raw-nb', results: { exitcode: 0 } } });
    assert.deepEqual(((await ends).data as { results: unknown }).results, { exitcode: 0 });
  });
});

function fetchStatus(port: number): Promise<string> {
  return fetchInsecure(`https://127.0.0.1:${port}/status/v1/services/broker-service`);
}

describe('orchestrator over PCP v1', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess | undefined;
  const agents: AgentProcess[] = [];

  before(async () => {
    pki = await makePki(['node1', 'node2']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
  });
  after(() => stopStack({ agents, orch, broker, redis, pki }));

  it('runs a task job through `baton orchestrator` with pcp-version 1 on a v1 and a v2 agent', async () => {
    const v1 = `wss://127.0.0.1:${broker.port}/pcp/`;
    const v2 = `wss://127.0.0.1:${broker.port}/pcp2/`;
    orch = await startOrchestratorProcess({ pki, brokerUris: [v1], redisUrl: redis.url, codedir: makeCodedir(), config: { 'pcp-version': '1' } });
    const masterUris = [`https://127.0.0.1:${orch.port}`];
    agents.push(await startAgentProcess({ pki, name: 'node1', brokerUris: [v1], masterUris, config: { 'pcp-version': '1' } }));
    agents.push(await startAgentProcess({ pki, name: 'node2', brokerUris: [v2], masterUris }));
    await waitForConnected(orch, 2);
    const res = await orch.api('/orchestrator/v1/command/task', { body: { environment: 'production', task: 'sample::echo', params: { message: 'over v1' }, scope: { nodes: ['node1', 'node2'] } } });
    assert.equal(res.status, 202);
    const id = res.json.job.name as string;
    await waitForJobEnd(orch, id);
    const nodes = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items as { name: string; state: string; result: unknown }[];
    assert.deepEqual(nodes.map((n) => [n.name, n.state, n.result]).sort(), [
      ['node1', 'finished', { _output: 'over v1\n' }],
      ['node2', 'finished', { _output: 'over v1\n' }],
    ]);
  });
});
