// Chaos scenario `agents`: SIGKILL the fleet process (every agent at once) in the middle of a job
// and start a new one RESTART_DELAY_MS later with the same names and the same spools (the task
// processes that were running survive in their own process groups, as they would on real nodes).
// recovery_s: from the kill to the job's end.
import { delay, RESTART_DELAY_MS, runSingleJob, type ChaosOptions, type ChaosResult } from './harness.ts';

export async function run(opts: ChaosOptions = {}): Promise<ChaosResult> {
  return runSingleJob('agents', opts, async (s) => {
    await s.killFleet('SIGKILL');
    await delay(RESTART_DELAY_MS); // the fault: every agent stays away this long
    await s.startFleet();
  });
}
