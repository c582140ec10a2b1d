// Chaos scenario `redis-stall`: small jobs are submitted one by one while redis-server is stopped
// (SIGSTOP) for STALL_S seconds. Each submission carries an Idempotency-Key; the client gives up
// after CLIENT_TIMEOUT_MS and retries once with the same key on a timeout or a 503. Afterwards it
// counts the jobs that exist (GET /orchestrator/v1/jobs; each job's description is its key)
// against those acknowledged (202), and executions (marker files, one directory per key) against
// the acknowledged jobs' nodes:
//   ghost_jobs: keys never acknowledged that have a job anyway;
//   duplicate_jobs: jobs beyond the first for one key;
//   executions / expected_executions: marker lines of all jobs / nodes of acknowledged jobs.
// lost/double are over the acknowledged jobs' nodes; recovery_s: from SIGCONT to the end of the
// last job.
import { randomUUID } from 'node:crypto';
import { ChaosStack, countMarkers, delay, resolve, round, tally, waitUntil, type ChaosOptions, type ChaosResult } from './harness.ts';

export const STALL_S = 15;
export const CLIENT_TIMEOUT_MS = 5_000;
/** Submissions start this long before the stall and go on this long after it. */
export const MARGIN_BEFORE_MS = 2_000;
export const MARGIN_AFTER_MS = 3_000;
export const DEFAULT_JOBS = 20;
export const MAX_NODES_PER_JOB = 10;
/** After every job ended, nothing may change for this long (jobs created late would show here). */
export const QUIET_WINDOW_MS = 3_000;

export interface StallOptions extends ChaosOptions {
  jobs?: number;
  stallS?: number;
}

interface Submission {
  key: string;
  nodes: string[];
  acked: boolean;
  id?: string;
  attempts: string[];
}

const ENDED = ['finished', 'failed', 'stopped'];

export async function run(opts: StallOptions = {}): Promise<ChaosResult> {
  const o = resolve(opts);
  const jobs = opts.jobs ?? DEFAULT_JOBS;
  const stallMs = (opts.stallS ?? STALL_S) * 1000;
  const perJob = Math.max(1, Math.min(MAX_NODES_PER_JOB, Math.floor(o.agents / jobs)));
  const s = await ChaosStack.start({ agents: o.agents });
  try {
    const submissions: Submission[] = Array.from({ length: jobs }, (_, i) => ({
      key: `chaos-stall-${i}-${randomUUID()}`,
      nodes: Array.from({ length: perJob }, (_, k) => s.names[(i * perJob + k) % s.names.length]!),
      acked: false,
      attempts: [],
    }));
    const submit = async (sub: Submission) => {
      const dir = s.markerDir(sub.key);
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          const res = await s.api('/orchestrator/v1/command/task', {
            fresh: true,
            timeoutMs: CLIENT_TIMEOUT_MS,
            headers: { 'Idempotency-Key': sub.key },
            body: { task: 'sample::chaos_marker', params: { dir, seconds: o.taskSeconds }, scope: { nodes: sub.nodes }, description: sub.key },
          });
          sub.attempts.push(String(res.status));
          if (res.status === 202) {
            sub.acked = true;
            sub.id = res.json?.job?.name;
            return;
          }
          if (res.status !== 503) return;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? 'error';
          sub.attempts.push(code);
          if (code !== 'ETIMEDOUT') return;
        }
      }
    };

    const windowMs = MARGIN_BEFORE_MS + stallMs + MARGIN_AFTER_MS;
    const intervalMs = windowMs / jobs;
    const t0 = Date.now();
    let tResume = 0;
    const stall = (async () => {
      await delay(MARGIN_BEFORE_MS); // the fault's schedule, not a synchronisation
      s.redis.pause();
      await delay(stallMs);
      s.redis.resume();
      tResume = Date.now();
    })();
    const pending: Promise<void>[] = [];
    for (const [i, sub] of submissions.entries()) {
      const at = t0 + i * intervalMs;
      if (at > Date.now()) await delay(at - Date.now());
      pending.push(submit(sub));
    }
    await Promise.all(pending);
    await stall;

    // Every job that exists has ended, and then nothing changes for a quiet window.
    const snapshot = async () => {
      const res = await s.api('/orchestrator/v1/jobs?limit=0').catch(() => null);
      const items = (res?.status === 200 ? res.json.items : null) as { name: string; state: string; description: string }[] | null;
      return items;
    };
    const markersTotal = () => submissions.reduce((a, sub) => a + [...countMarkers(s.markerDir(sub.key)).values()].reduce((x, y) => x + y, 0), 0);
    let lastEnd = 0;
    let settled = false;
    const deadline = Date.now() + o.boundS * 1000;
    while (Date.now() < deadline) {
      const allEnded = await waitUntil(async () => {
        const items = await snapshot();
        return items !== null && items.every((j) => ENDED.includes(j.state)) ? items : undefined;
      }, Math.max(0, deadline - Date.now()));
      if (!allEnded) break;
      lastEnd = Date.now();
      const before = { jobs: allEnded.length, markers: markersTotal() };
      await delay(QUIET_WINDOW_MS); // watching for what should not happen: late jobs or runs
      const after = await snapshot();
      if (after && after.length === before.jobs && after.every((j) => ENDED.includes(j.state)) && markersTotal() === before.markers) {
        settled = true;
        break;
      }
    }

    const items = (await snapshot()) ?? [];
    const byKey = new Map<string, number>();
    for (const j of items) byKey.set(j.description, (byKey.get(j.description) ?? 0) + 1);
    const acked = submissions.filter((x) => x.acked);
    const ghost = submissions.filter((x) => !x.acked && (byKey.get(x.key) ?? 0) > 0).length;
    const duplicate = submissions.reduce((a, x) => a + Math.max(0, (byKey.get(x.key) ?? 0) - 1), 0);
    let lost = 0;
    let double = 0;
    let neverRanButFailed = 0;
    const nodeStates: Record<string, number> = {};
    for (const sub of acked) {
      const states = sub.id ? (await s.nodeStates(sub.id)).states : new Map<string, string>();
      for (const st of states.values()) nodeStates[st] = (nodeStates[st] ?? 0) + 1;
      const t = tally(sub.nodes, countMarkers(s.markerDir(sub.key)), states);
      lost += t.lost;
      double += t.double;
      neverRanButFailed += t.never_ran_but_failed;
    }
    const jobStates: Record<string, number> = {};
    for (const j of items) jobStates[j.state] = (jobStates[j.state] ?? 0) + 1;
    const ackedStates = acked.map((x) => items.find((j) => j.name === x.id)?.state ?? 'missing');
    const jobState = !settled ? 'never-ended' : ackedStates.every((st) => st === 'finished') ? 'finished' : ackedStates.find((st) => st !== 'finished')!;
    const attempts: Record<string, number> = {};
    for (const sub of submissions) {
      const k = sub.attempts.join('>');
      attempts[k] = (attempts[k] ?? 0) + 1;
    }
    return {
      scenario: 'redis-stall',
      nodes: acked.reduce((a, x) => a + x.nodes.length, 0),
      job_state: jobState,
      node_states: nodeStates,
      lost,
      double,
      never_ran_but_failed: neverRanButFailed,
      recovery_s: settled && tResume ? round((lastEnd - tResume) / 1000) : null,
      crashes: s.crashes,
      ...(s.crashLog.length ? { crash_log: s.crashLog.slice(0, 3) } : {}),
      submitted: jobs,
      acknowledged: acked.length,
      jobs_existing: items.length,
      ghost_jobs: ghost,
      duplicate_jobs: duplicate,
      executions: markersTotal(),
      expected_executions: acked.reduce((a, x) => a + x.nodes.length, 0),
      job_states: jobStates,
      attempts,
      stall_s: stallMs / 1000,
      nodes_per_job: perJob,
    };
  } finally {
    s.redis.resume();
    await s.close();
  }
}
