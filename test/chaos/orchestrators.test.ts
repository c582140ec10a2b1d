// Chaos at small scale: of two orchestrators, the one the job was submitted through is SIGKILLed
// in the middle of the job; the other completes it.
import { describe, it } from 'node:test';
import { run } from '../../bench/chaos/orchestrators.ts';
import { assertNothingLost, SMALL, TEST_TIMEOUT_MS } from './expect.ts';

describe('chaos: one of two orchestrators SIGKILLed mid-job', () => {
  it('the other finishes the job with every node run exactly once and nothing crashed', { timeout: TEST_TIMEOUT_MS }, async () => {
    assertNothingLost(await run(SMALL), SMALL.agents);
  });
});
