// Chaos scenario `orchestrator`: the same job twice on one stack: once without a fault (its
// submit-to-end time is fault_free_s), then once with the orchestrator SIGKILLed in the middle and
// started again at once on the same port (agents download task files from it). recovery_s: from
// the kill to the job's end; job_s: the faulted job's submit-to-end time; slowdown_s =
// job_s - fault_free_s (issue 12's target: at most 15 s).
import { ChaosStack, faultedJob, resolve, round, type ChaosOptions, type ChaosResult } from './harness.ts';

export async function run(opts: ChaosOptions = {}): Promise<ChaosResult> {
  const o = resolve(opts);
  const s = await ChaosStack.start({ agents: o.agents });
  try {
    // Fault-free reference.
    const refDir = s.markerDir('reference');
    const r0 = Date.now();
    const refId = await s.submitMarkerJob({ nodes: s.names, dir: refDir, seconds: o.taskSeconds, concurrency: o.concurrency });
    const refEnd = await s.waitForJobEnd(refId, o.boundS);
    const faultFreeS = refEnd ? round((refEnd.ended_ms - r0) / 1000) : null;
    const reference = await s.measure('orchestrator', refId, refDir, s.names, refEnd);

    const r = await faultedJob(s, 'orchestrator', o, async () => {
      const port = s.orch.port;
      await s.killOrchestrator('SIGKILL');
      await s.startOrchestrator(port);
    });
    return {
      ...r,
      fault_free_s: faultFreeS,
      slowdown_s: r.job_s !== null && faultFreeS !== null ? round(r.job_s - faultFreeS) : null,
      ratio: r.job_s !== null && faultFreeS ? round(r.job_s / faultFreeS, 2) : null,
      reference: { job_state: reference.job_state, lost: reference.lost, double: reference.double },
    };
  } finally {
    await s.close();
  }
}
