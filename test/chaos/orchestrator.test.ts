// Chaos at small scale: the orchestrator is SIGKILLed in the middle of a job and started again
// on the same port (after the same job ran once without a fault).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from '../../bench/chaos/orchestrator.ts';
import { assertNothingLost, SMALL, TEST_TIMEOUT_MS } from './expect.ts';

describe('chaos: orchestrator SIGKILL mid-job', () => {
  it('finishes the job with every node run exactly once and nothing crashed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const r = await run(SMALL);
    assert.deepEqual(r.reference, { job_state: 'finished', lost: 0, double: 0 }, `the fault-free reference job: ${JSON.stringify(r)}`);
    assertNothingLost(r, SMALL.agents);
  });
});
