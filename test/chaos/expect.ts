// What every chaos scenario must show at small scale: the job ended with every node finished,
// each node's task ran exactly once (counted from marker files), none failed without having run,
// and no process of the stack crashed.
import assert from 'node:assert/strict';
import type { ChaosResult } from '../../bench/chaos/harness.ts';

/** A small scale that still has several waves and a fault in the middle of the job. */
export const SMALL = { agents: 40, concurrency: 10, taskSeconds: 1, boundS: 90 } as const;
/** Per test: the stack's start (certificates, 40 agents) plus the bounded waits. */
export const TEST_TIMEOUT_MS = 300_000;

export function assertNothingLost(r: ChaosResult, nodes: number): void {
  const why = JSON.stringify(r);
  assert.equal(r.crashes, 0, `no process crashed: ${why}`);
  assert.equal(r.lost, 0, `no node's run was lost: ${why}`);
  assert.equal(r.double, 0, `no node ran twice: ${why}`);
  assert.equal(r.never_ran_but_failed, 0, `no node was failed without having run: ${why}`);
  assert.equal(r.job_state, 'finished', `the job finished: ${why}`);
  assert.deepEqual(r.node_states, { finished: nodes }, `every node finished: ${why}`);
  assert.equal(r.nodes, nodes);
}
