// Delivery of a node run's request, with scripted stand-ins for the PXP runner and the inventory
// (pure unit test: the integration and chaos tests drive the real ones).
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { Delivery } from '../../orchestrator/engine/delivery.ts';
import type { InventoryTracker } from '../../orchestrator/pcp/inventory.ts';
import type { PxpAction, PxpRunner, RunOutcome } from '../../orchestrator/pcp/pxp-runner.ts';

const log = pino({ level: 'silent' });
const action: PxpAction = { module: 'task', action: 'run', params: {} };

class FakeInventory extends EventEmitter<{ up: [string] }> {
  connected = new Set<string>();
  isConnected(n: string): boolean {
    return this.connected.has(n);
  }
  up(n: string): void {
    this.connected.add(n);
    this.emit('up', n);
  }
  nextUp(node: string, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.off('up', on);
        resolve(false);
      }, timeoutMs);
      const on = (n: string) => {
        if (n !== node) return;
        clearTimeout(t);
        this.off('up', on);
        resolve(true);
      };
      this.on('up', on);
    });
  }
}

/** A runner whose answers are scripted in order; it records what was sent. */
function fakeRunner(starts: (RunOutcome | null)[], outcomes: RunOutcome[]) {
  const sent: string[] = [];
  const runner = {
    async start(_node: string, txid: string) {
      sent.push(txid);
      return starts.length > 0 ? starts.shift()! : null;
    },
    async outcome() {
      return outcomes.shift() ?? { kind: 'timeout' };
    },
  } as unknown as PxpRunner;
  return { runner, sent };
}

describe('node run delivery', () => {
  it('sends the same transaction again when the node comes back within the grace', async () => {
    const inventory = new FakeInventory();
    const { runner, sent } = fakeRunner([{ kind: 'not-connected' }, null], []);
    const d = new Delivery({ runner, inventory: inventory as unknown as InventoryTracker, log, graceMs: 5_000 });
    const result = d.send('n1', 'tx-1', action);
    setImmediate(() => inventory.up('n1'));
    assert.equal(await result, null, 'accepted on the second try');
    assert.deepEqual(sent, ['tx-1', 'tx-1']);
  });

  it('gives up with not-connected once the grace is over', async () => {
    const inventory = new FakeInventory();
    const { runner } = fakeRunner(Array.from({ length: 100 }, () => ({ kind: 'not-connected' as const })), []);
    const d = new Delivery({ runner, inventory: inventory as unknown as InventoryTracker, log, graceMs: 30 });
    assert.deepEqual(await d.send('n1', 'tx-1', action), { kind: 'not-connected' });
  });

  it('resends a transaction the agent has no record of, then waits for its outcome', async () => {
    const inventory = new FakeInventory();
    inventory.connected.add('n1');
    const results = { kind: 'results' as const, results: { exitcode: 0, stdout: 'ok', stderr: '' } };
    const { runner, sent } = fakeRunner([null], [{ kind: 'lost' }, results]);
    const d = new Delivery({ runner, inventory: inventory as unknown as InventoryTracker, log, graceMs: 5_000 });
    assert.deepEqual(await d.outcome('n1', 'tx-9', action, Date.now() + 60_000), results);
    assert.deepEqual(sent, ['tx-9'], 'sent again exactly once');
  });

  it('passes on what the agent says of a run it did start, never sending it again', async () => {
    const inventory = new FakeInventory();
    const failure = { kind: 'agent-error' as const, description: 'the process died with its agent' };
    const { runner, sent } = fakeRunner([], [failure]);
    const d = new Delivery({ runner, inventory: inventory as unknown as InventoryTracker, log, graceMs: 5_000 });
    assert.deepEqual(await d.outcome('n1', 'tx-2', action, Date.now() + 60_000), failure);
    assert.deepEqual(sent, []);
  });

  it('waits for a node that is away, within the grace only', async () => {
    const inventory = new FakeInventory();
    const d = new Delivery({ runner: fakeRunner([], []).runner, inventory: inventory as unknown as InventoryTracker, log, graceMs: 5_000 });
    const back = d.waitConnected('n1');
    setImmediate(() => inventory.up('n1'));
    assert.equal(await back, true);
    assert.equal(await d.waitConnected('n2', 20), false);
  });
});
