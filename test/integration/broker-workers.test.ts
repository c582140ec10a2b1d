// `baton broker --workers N`: N broker processes on one port under a supervisor that restarts a
// worker that dies and stops them all on SIGTERM.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_SUPERVISION, nextDeathCount, restartDelayMs, workerCount } from '../../broker/workers.ts';
import { startBrokerProcess, type BrokerProcess, type LogLine } from '../helpers/broker.ts';
import { identity, MessageTypes, TestClient, within } from '../helpers/pcp-client.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { isAlive } from '../helpers/cli.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';

const NODES = Array.from({ length: 12 }, (_, i) => `node${i + 1}`);

describe('restart delays of broker workers', () => {
  it('grow with deaths in a row, up to the maximum', () => {
    const p = DEFAULT_SUPERVISION;
    assert.equal(restartDelayMs(1, p), p.firstRestartDelayMs);
    assert.equal(restartDelayMs(2, p), p.firstRestartDelayMs * p.restartDelayFactor);
    assert.equal(restartDelayMs(1000, p), p.maxRestartDelayMs);
  });

  it('start again at the first delay after a worker stayed up long enough', () => {
    const p = DEFAULT_SUPERVISION;
    assert.equal(nextDeathCount(5, p.stableUptimeMs - 1, p), 6);
    assert.equal(nextDeathCount(5, p.stableUptimeMs, p), 1);
  });

  it('auto means one per core; anything else must be a count in range', () => {
    assert.equal(workerCount('auto', 6), 6);
    assert.equal(workerCount('3'), 3);
    assert.equal(workerCount(undefined), 1);
    assert.throws(() => workerCount('0'), { code: 'config/invalid' });
    assert.throws(() => workerCount('5000'), { code: 'config/invalid' });
  });
});

describe('baton broker --workers 2', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  const clients: TestClient[] = [];
  const workerPids = new Set<number>();
  let next = 0;

  /** Connects a new agent; resolves with its client and the broker log line of its session. */
  async function connectAgent(): Promise<{ client: TestClient; line: LogLine }> {
    const cn = NODES[next++];
    assert.ok(cn, 'ran out of test identities');
    const uri = `pcp://${cn}/agent`;
    const opened = broker.waitForLog((l) => l.msg === 'session opened' && l.uri === uri);
    const client = await TestClient.connect(broker.url(), identity(pki, cn));
    clients.push(client);
    const line = await within(opened, `the broker log of ${uri}'s session`);
    return { client, line };
  }

  /** Connects agents until one lands on a worker that matches; resolves with that one. */
  async function connectUntil(what: string, pred: (l: LogLine) => boolean): Promise<{ client: TestClient; line: LogLine }> {
    for (let i = 0; i < 4; i++) {
      const got = await connectAgent();
      if (pred(got.line)) return got;
    }
    throw new Error(`no session on ${what} after 4 connections`);
  }

  before(async () => {
    pki = await makePki(NODES);
    broker = await startBrokerProcess({ pki, args: ['--workers', '2'] });
    for (const l of broker.logs) if (l.msg === 'broker worker started') workerPids.add(l.worker_pid as number);
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await broker?.stop();
    for (const l of broker?.logs ?? []) if (l.msg === 'broker worker started') workerPids.add(l.worker_pid as number);
    for (const pid of workerPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    pki?.remove();
  });

  it('starts two workers on one port, each logging with its worker field', async () => {
    const ready = await within(broker.waitForLog((l) => l.msg === 'broker workers listening'), 'the supervisor reporting its workers listening');
    assert.equal(ready.workers, 2);
    // Each worker's own line may come in after the supervisor's.
    await within(broker.waitForCount((l) => l.msg === 'listening', 2), "both workers' listening lines");
    const listening = broker.logs.filter((l) => l.msg === 'listening');
    assert.deepEqual(listening.map((l) => l.worker).sort(), [1, 2]);
    assert.equal(new Set(listening.map((l) => l.port)).size, 1, 'both workers listen on the same port');
    assert.equal(new Set(listening.map((l) => l.pid)).size, 2, 'the workers are two processes');
    assert.ok(listening.every((l) => l.pid !== broker.proc.pid), 'the supervisor runs no broker itself');
  });

  it('deals connections to both workers', async () => {
    await connectUntil('worker 1', (l) => l.worker === 1);
    await connectUntil('worker 2', (l) => l.worker === 2);
  });

  it('restarts a worker that was SIGKILLed, and clients connect to the new one', async () => {
    const { client, line } = await connectUntil('worker 1', (l) => l.worker === 1);
    const oldPid = line.pid as number;
    const died = broker.waitForLog((l) => l.msg === 'broker worker died; restarting it' && l.worker === 1);
    const relisten = broker.waitForLog((l) => l.msg === 'listening' && l.worker === 1 && l.pid !== oldPid);
    process.kill(oldPid, 'SIGKILL');
    const death = await within(died, 'the supervisor noticing the death of worker 1');
    assert.equal(death.signal, 'SIGKILL');
    assert.equal(death.worker_pid, oldPid);
    assert.equal(typeof death.restart_delay_ms, 'number');
    await within(client.closed, "the killed worker's session closing");
    const restarted = await within(relisten, 'the restarted worker 1 listening', 10_000 + DEFAULT_SUPERVISION.firstRestartDelayMs);
    workerPids.add(restarted.pid as number);
    assert.equal(isAlive(oldPid), false);
    // Worker 2 kept its sessions; the new worker 1 takes new ones.
    await connectUntil('the restarted worker 1', (l) => l.worker === 1 && l.pid === restarted.pid);
  });

  it('stops every worker and exits 0 on SIGTERM', async () => {
    const pids = new Set<number>(broker.logs.filter((l) => l.msg === 'listening').map((l) => l.pid as number));
    assert.equal(pids.size, 3, 'two workers and the restarted one');
    broker.proc.kill('SIGTERM');
    const code = await within(broker.exited, 'the supervisor exiting', DEFAULT_SUPERVISION.stopTimeoutMs + 5_000);
    assert.equal(code, 0, broker.stderr);
    assert.ok(broker.logs.some((l) => l.msg === 'broker workers stopped'));
    assert.deepEqual([...pids].filter(isAlive), [], 'no worker outlives the supervisor');
    const exited = broker.logs.filter((l) => l.msg === 'broker worker exited').map((l) => l.worker).sort();
    assert.deepEqual(exited, [1, 2]);
  });
});

describe('baton broker --workers 2 with a fabric', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  const clients: TestClient[] = [];

  before(async () => {
    pki = await makePki(['orchestrator', ...NODES]);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info', args: ['--workers', '2'], config: { fabric: { redis: redis.url, 'broker-id': 'w' } } });
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await broker?.stop();
    await redis?.stop();
    pki?.remove();
  });

  it('a controller and an agent on different workers reach each other (each worker a member of the fabric)', async () => {
    await within(broker.waitForCount((l) => l.msg === 'joined the fabric', 2), 'both workers join the fabric');
    const ids = broker.logs.filter((l) => l.msg === 'joined the fabric').map((l) => l.broker_id).sort();
    assert.deepEqual(ids, ['w-1', 'w-2'], 'an explicit broker id gets each worker\'s slot');
    const ctlOpened = broker.waitForLog((l) => l.msg === 'session opened' && l.uri === 'pcp://orchestrator/controller');
    const ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    clients.push(ctl);
    const ctlWorker = (await within(ctlOpened, 'the controller session')).worker;
    // Connections are dealt round-robin: connect agents until one lands on the other worker.
    let agent: { client: TestClient; uri: string } | null = null;
    for (const cn of NODES) {
      const uri = `pcp://${cn}/agent`;
      const opened = broker.waitForLog((l) => l.msg === 'session opened' && l.uri === uri);
      const client = await TestClient.connect(broker.url(), identity(pki, cn));
      clients.push(client);
      if ((await within(opened, `${uri}'s session`)).worker !== ctlWorker) {
        agent = { client, uri };
        break;
      }
    }
    assert.ok(agent, 'an agent landed on the other worker');
    const res = await ctl.reply(ctl.send({ message_type: MessageTypes.inventoryRequest, data: { query: [agent.uri] } }));
    assert.deepEqual(res.data, { uris: [agent.uri] });
    const id = ctl.send({ message_type: MessageTypes.pxpRequest, target: agent.uri, data: { transaction_id: 'tw' } });
    const got = await agent.client.next((e) => e.id === id);
    assert.equal(got.sender, 'pcp://orchestrator/controller');
  });
});
