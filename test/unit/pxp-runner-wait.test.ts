// PxpRunner's wait for a run's outcome: the non-blocking response as an event, `status query` only
// after a reconnection (ours or the agent's), when the request's fate is unknown, on re-attach,
// and once at the deadline; never on a timer. A scripted stand-in for the PCP client (an
// EventEmitter with its `connected` and `inventory` events); the integration tests
// (orchestrator-status-query.test.ts) drive the real one.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { PxpRunner } from '../../orchestrator/pcp/pxp-runner.ts';
import { ClientErrorCode, PcpClientError } from '../../protocol/client/broker-uri.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { PxpMessageType } from '../../protocol/pxp.ts';

const TXID = '0a1b2c3d-42-0123456789abcdef';
const NODE = 'n1';
const ACTION = { module: 'task', action: 'run', params: {} };
/** Long enough that no test reaches it unless it means to. */
const FAR_MS = 60_000;

type StatusAnswer = 'running' | 'unknown' | 'none' | { exitcode: number; stdout: string };

/**
 * The client: `request` answers a run's start by `startReply` and a status query by the next of
 * `statusAnswers` ('none' rejects as unreachable); `end()` ends a transaction.
 */
class FakeClient extends EventEmitter {
  readonly statusAsked: string[] = [];
  startReply: 'provisional' | 'timeout' = 'provisional';
  statusAnswers: StatusAnswer[] = [];
  private readonly waits = new Map<string, (env: EnvelopeV2) => void>();

  async request(env: EnvelopeV2): Promise<EnvelopeV2> {
    const data = env.data as { transaction_id: string; module: string; params: { transaction_id?: string } };
    if (data.module === 'status') {
      this.statusAsked.push(data.params.transaction_id!);
      const a = this.statusAnswers.shift() ?? 'running';
      if (a === 'none') throw new PcpClientError(ClientErrorCode.errorMessage, 'x', { brokerCode: 'target-not-connected' });
      const results = typeof a === 'string' ? { transaction_id: TXID, status: a } : { transaction_id: TXID, status: 'success', ...a };
      return { id: 'r', message_type: PxpMessageType.blockingResponse, data: { transaction_id: data.transaction_id, results } };
    }
    if (this.startReply === 'timeout') throw new PcpClientError(ClientErrorCode.timeout, 'no reply');
    return { id: 'p', message_type: PxpMessageType.provisionalResponse, data: { transaction_id: data.transaction_id } };
  }

  expectTransaction(tx: string, _timeoutMs: number, signal?: AbortSignal): Promise<EnvelopeV2> {
    return new Promise((resolve, reject) => {
      this.waits.set(tx, resolve);
      signal?.addEventListener('abort', () => {
        this.waits.delete(tx);
        reject(new PcpClientError(ClientErrorCode.aborted, 'aborted'));
      });
    });
  }

  /** True when someone was waiting for the transaction. */
  end(tx: string, results: { exitcode: number; stdout: string }): boolean {
    const w = this.waits.get(tx);
    this.waits.delete(tx);
    w?.({ id: 'nb', message_type: PxpMessageType.nonBlockingResponse, data: { transaction_id: tx, results } });
    return w !== undefined;
  }

  get waiting(): number {
    return this.waits.size;
  }
}

function runner() {
  const client = new FakeClient();
  let queries = 0;
  const r = new PxpRunner(client as unknown as PcpClient, { statusQueries: { inc: () => void queries++ } });
  return { client, r, queries: () => queries };
}

/** Resolves once `pred` holds, checked on every turn of the event loop; bounded. */
async function until(pred: () => boolean, what: string, withinMs = 2_000): Promise<void> {
  const end = Date.now() + withinMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`not within ${withinMs} ms: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('PxpRunner.outcome: status query only when needed', () => {
  it('waits for the response without asking, also when it comes right behind the provisional reply', async () => {
    const { client, r, queries } = runner();
    assert.equal(await r.start(NODE, TXID, ACTION), null);
    // The response arrives before outcome() is called: the wait began before the request left.
    assert.equal(client.end(TXID, { exitcode: 0, stdout: 'ok' }), true);
    assert.deepEqual(await r.outcome(NODE, TXID, Date.now() + FAR_MS), { kind: 'results', results: { exitcode: 0, stdout: 'ok' } });
    assert.equal(queries(), 0);
    assert.equal(client.waiting, 0);
  });

  it('asks once after our session reconnected, and goes on waiting while the run runs', async () => {
    const { client, r, queries } = runner();
    await r.start(NODE, TXID, ACTION);
    const outcome = r.outcome(NODE, TXID, Date.now() + FAR_MS);
    client.emit('connected', 'wss://broker/pcp2/');
    await until(() => queries() === 1, 'one status query');
    client.end(TXID, { exitcode: 0, stdout: 'later' });
    assert.deepEqual(await outcome, { kind: 'results', results: { exitcode: 0, stdout: 'later' } });
    assert.equal(queries(), 1);
  });

  it('takes the results from the status answer when the response was lost during the reconnection', async () => {
    const { client, r } = runner();
    client.statusAnswers = [{ exitcode: 0, stdout: 'done while away' }];
    await r.start(NODE, TXID, ACTION);
    const outcome = r.outcome(NODE, TXID, Date.now() + FAR_MS);
    client.emit('connected', 'wss://broker/pcp2/');
    assert.deepEqual(await outcome, { kind: 'results', results: { exitcode: 0, stdout: 'done while away', stderr: '' } });
    assert.equal(client.waiting, 0, 'the wait for the response ended with the run');
  });

  it("asks when the agent's session comes back (inventory update), not for other agents", async () => {
    const { client, r, queries } = runner();
    client.statusAnswers = ['unknown'];
    await r.start(NODE, TXID, ACTION);
    const outcome = r.outcome(NODE, TXID, Date.now() + FAR_MS);
    client.emit('inventory', [{ client: 'pcp://other/agent', change: 1 }, { client: `pcp://${NODE}/agent`, change: -1 }]);
    await new Promise((res) => setImmediate(res));
    assert.equal(queries(), 0);
    client.emit('inventory', [{ client: `pcp://${NODE}/agent`, change: 1 }]);
    assert.deepEqual(await outcome, { kind: 'lost' }, 'the restarted agent never saw it: sent again by Delivery');
    assert.equal(queries(), 1);
  });

  it('asks first when the start got no reply (the request may not have arrived)', async () => {
    const { client, r, queries } = runner();
    client.startReply = 'timeout';
    client.statusAnswers = ['unknown'];
    assert.equal(await r.start(NODE, TXID, ACTION), null);
    assert.deepEqual(await r.outcome(NODE, TXID, Date.now() + FAR_MS), { kind: 'lost' });
    assert.equal(queries(), 1);
  });

  it('asks once more at the deadline, then times out', async () => {
    const { client, r, queries } = runner();
    await r.start(NODE, TXID, ACTION);
    assert.deepEqual(await r.outcome(NODE, TXID, Date.now() + 50), { kind: 'timeout' });
    assert.equal(queries(), 1);
    assert.equal(client.waiting, 0);

    const second = runner();
    second.client.statusAnswers = [{ exitcode: 2, stdout: '' }];
    await second.r.start(NODE, TXID, ACTION);
    assert.deepEqual(await second.r.outcome(NODE, TXID, Date.now() + 50), { kind: 'results', results: { exitcode: 2, stdout: '', stderr: '' } });
  });

  it('asks an agent that could not be reached again when its session comes back', async () => {
    const { client, r, queries } = runner();
    client.statusAnswers = ['none', 'running'];
    await r.start(NODE, TXID, ACTION);
    const outcome = r.outcome(NODE, TXID, Date.now() + FAR_MS);
    client.emit('connected', 'wss://broker/pcp2/');
    await until(() => queries() === 1, 'first ask');
    await new Promise((res) => setImmediate(res));
    client.emit('inventory', [{ client: `pcp://${NODE}/agent`, change: 1 }]);
    await until(() => queries() === 2, 'second ask at the agent\'s return');
    client.end(TXID, { exitcode: 0, stdout: '' });
    assert.equal((await outcome).kind, 'results');
    assert.equal(queries(), 2);
  });

  it('re-attach asks once and keeps the wait for the outcome that follows', async () => {
    const { client, r, queries } = runner();
    assert.equal(await r.reattach(NODE, TXID), 'running');
    assert.equal(client.waiting, 1);
    client.end(TXID, { exitcode: 0, stdout: 'x' });
    assert.equal((await r.outcome(NODE, TXID, Date.now() + FAR_MS)).kind, 'results');
    assert.equal(queries(), 1);
  });

  it('ends at once on its signal, and the client stops waiting', async () => {
    const { client, r, queries } = runner();
    await r.start(NODE, TXID, ACTION);
    const abort = new AbortController();
    const outcome = r.outcome(NODE, TXID, Date.now() + FAR_MS, abort.signal);
    abort.abort();
    assert.deepEqual(await outcome, { kind: 'timeout' });
    assert.equal(queries(), 0);
    assert.equal(client.waiting, 0);
  });

  it('releases the wait when the start itself ends the run', async () => {
    const { client, r } = runner();
    client.request = async () => ({ id: 'e', message_type: PxpMessageType.errorMessage, data: { transaction_id: TXID, id: 'm', description: 'no such task' } });
    assert.equal((await r.start(NODE, TXID, ACTION))?.kind, 'agent-error');
    assert.equal(client.waiting, 0);
  });
});
