// Chaos at small scale: redis-server (append-only, everysec) is SIGKILLed in the middle of a job
// and comes back on its data 2 s later.
import { describe, it } from 'node:test';
import { run } from '../../bench/chaos/redis-kill.ts';
import { assertNothingLost, SMALL, TEST_TIMEOUT_MS } from './expect.ts';

describe('chaos: Redis SIGKILL mid-job', () => {
  it('finishes the job with every node run exactly once and nothing crashed', { timeout: TEST_TIMEOUT_MS }, async () => {
    assertNothingLost(await run(SMALL), SMALL.agents);
  });
});
