// Chaos scenario `broker`: SIGKILL the broker in the middle of a job and start it again on the
// same port RESTART_DELAY_MS later. recovery_s: from the kill to the job's end.
import { delay, RESTART_DELAY_MS, runSingleJob, type ChaosOptions, type ChaosResult } from './harness.ts';

export async function run(opts: ChaosOptions = {}): Promise<ChaosResult> {
  return runSingleJob('broker', opts, async (s) => {
    const port = s.broker.port;
    await s.killBroker('SIGKILL');
    await delay(RESTART_DELAY_MS); // the fault: the broker stays away this long
    await s.startBroker(port);
  });
}
