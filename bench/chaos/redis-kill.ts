// Chaos scenario `redis-kill`: SIGKILL redis-server (append-only, `appendfsync everysec`, so up
// to a second of writes may be lost) in the middle of a job and start it again
// RESTART_DELAY_MS later on the same port and data. recovery_s: from the kill to the job's end.
import { delay, RESTART_DELAY_MS, runSingleJob, type ChaosOptions, type ChaosResult } from './harness.ts';

export async function run(opts: ChaosOptions = {}): Promise<ChaosResult> {
  return runSingleJob('redis-kill', opts, async (s) => {
    await s.killRedis('SIGKILL');
    await delay(RESTART_DELAY_MS); // the fault: Redis stays away this long
    await s.restartRedis();
  });
}
