// Chaos at small scale: every agent (the fleet process) is SIGKILLed in the middle of a job and
// comes back 2 s later with the same names and spools.
import { describe, it } from 'node:test';
import { run } from '../../bench/chaos/agents.ts';
import { assertNothingLost, SMALL, TEST_TIMEOUT_MS } from './expect.ts';

describe('chaos: all agents SIGKILL mid-job', () => {
  it('finishes the job with every node run exactly once and nothing crashed', { timeout: TEST_TIMEOUT_MS }, async () => {
    assertNothingLost(await run(SMALL), SMALL.agents);
  });
});
