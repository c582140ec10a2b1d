// Chaos at small scale: Redis is stopped (SIGSTOP) for 15 s while jobs are submitted, each with
// an Idempotency-Key, by a client that gives up after 5 s and retries once with the same key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from '../../bench/chaos/redis-stall.ts';
import { TEST_TIMEOUT_MS } from './expect.ts';

describe('chaos: Redis stalled during submissions', () => {
  it('creates no job it did not acknowledge, none twice, and runs exactly the acknowledged nodes', { timeout: TEST_TIMEOUT_MS }, async () => {
    const r = await run({ agents: 30, jobs: 10, taskSeconds: 1, boundS: 90 });
    const why = JSON.stringify(r);
    assert.equal(r.crashes, 0, `no process crashed: ${why}`);
    assert.equal(r.ghost_jobs, 0, `no unacknowledged submission created a job: ${why}`);
    assert.equal(r.duplicate_jobs, 0, `no key got a second job: ${why}`);
    assert.equal(r.executions, r.expected_executions, `executions are exactly the acknowledged jobs' nodes: ${why}`);
    assert.equal(r.lost, 0, why);
    assert.equal(r.double, 0, why);
    assert.equal(r.never_ran_but_failed, 0, why);
    assert.equal(r.job_state, 'finished', `every acknowledged job finished: ${why}`);
    assert.ok((r.acknowledged as number) > 0, `some submissions outside the stall were acknowledged: ${why}`);
  });
});
