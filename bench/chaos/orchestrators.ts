// Chaos scenario `orchestrators`: two orchestrators on one Redis and one broker; the job is
// submitted through the first, which is SIGKILLed in the middle and not started again. The second
// takes over the first's node runs (BullMQ's stalled-job check, then `status query` to re-attach)
// and the job is watched to its end through it. recovery_s: from the kill to the job's end.
import { runSingleJob, type ChaosOptions, type ChaosResult } from './harness.ts';

export async function run(opts: ChaosOptions = {}): Promise<ChaosResult> {
  const r = await runSingleJob(
    'orchestrators',
    opts,
    async (s) => {
      const [first, second] = s.orchestrators;
      await s.killOrchestrator('SIGKILL', first);
      s.orch = second!; // from now on the job is watched through the survivor
    },
    { orchestrators: 2 },
  );
  return { ...r, orchestrators: 2 };
}
