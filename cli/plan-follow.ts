// Follows a plan job until it ends: its events (GET /plan_jobs/:id/events?start=N, polled every
// POLL_INTERVAL_MS), a line as each step starts (its job, its batch) and ends (its nodes ok and
// failed, or its error), then the plan's result and the exit code. Ctrl-C asks whether to stop the
// plan job (POST /command/stop_plan) or detach, as a followed job does (interrupt.ts).
import type { ApiClient } from './client.ts';
import { CliError, CliErrorCode, ExitCode } from './errors.ts';
import { pollEvents, type Ask } from './follow.ts';
import { duration, green, out, plural, printJson, red, yellow } from './format.ts';
import { Interrupt } from './interrupt.ts';
import { Reporter } from './progress.ts';

export const ENDED_PLAN_STATES: readonly string[] = ['success', 'failure', 'stopped'];
const PLAN_END_EVENTS: readonly string[] = ['plan_finished', 'plan_failed', 'plan_stopped'];
const STEP_START_EVENTS: readonly string[] = ['task_start', 'command_start', 'script_start', 'plan_start', 'puppet_run_start'];
const STEP_END_EVENTS: readonly string[] = ['step_finished', 'step_failed'];

export interface StepJson {
  path: string;
  name: string | null;
  type: string;
  state: string;
  node_count: number | null;
  jobs: { id: string; name: string }[];
  result: unknown;
  error?: { kind: string; msg: string };
  [kind: string]: unknown;
}

export interface PlanJobJson {
  name: string;
  state: string;
  options: { plan_name: string; environment: string; description: string; parameters: Record<string, unknown> };
  owner: { login: string };
  result: unknown;
  duration: number | null;
  created_timestamp: string | null;
  steps?: StepJson[];
}

interface PlanEventJson {
  id: string;
  type: string;
  details: { step?: string; path?: string; 'job-id'?: string; batch?: number; batches?: number; plan?: string; error?: { msg?: string }; [k: string]: unknown };
}

export const planJobPath = (id: string): string => `/orchestrator/v1/plan_jobs/${encodeURIComponent(id)}`;

/** 0 when the plan succeeded; 4 when the user stopped it; 1 otherwise (failed, stopped by another). */
export function planExitCode(job: PlanJobJson, stoppedByUser = false): ExitCode {
  if (job.state === 'success') return ExitCode.ok;
  if (job.state === 'stopped' && stoppedByUser) return ExitCode.detached;
  return ENDED_PLAN_STATES.includes(job.state) ? ExitCode.failure : ExitCode.ok;
}

/** A step's outcome in one line: its nodes for task-like steps, its error when it failed. */
export function stepLine(s: StepJson): string {
  const label = s.name ?? s.path;
  const what = `${s.type} ${String(s[s.type] ?? '')}`.trim();
  const r = s.result as { ok_targets?: unknown[]; failed_targets?: unknown[] } | null;
  const nodes = r && Array.isArray(r.ok_targets) && Array.isArray(r.failed_targets) ? `${r.ok_targets.length} ok, ${r.failed_targets.length} failed` : '';
  const jobs = s.jobs.length > 0 ? `job${s.jobs.length > 1 ? 's' : ''} ${s.jobs.map((j) => j.name).join(', ')}` : '';
  // A failed task-like step's error says what its node counts say; other errors are said.
  const detail = [nodes, jobs, s.error && !nodes ? s.error.msg : ''].filter(Boolean).join('; ');
  return `${label} (${what}): ${s.state}${detail ? ` — ${detail}` : ''}`;
}

function startLine(e: PlanEventJson): string {
  const d = e.details;
  const kind = e.type.replace(/_start$/, '');
  const batch = d.batches && d.batches > 1 ? ` (batch ${d.batch}/${d.batches})` : '';
  const job = d['job-id'] ? `: job ${d['job-id']}` : d.plan ? `: plan ${d.plan}` : '';
  return `  ▶ step ${d.step ?? d.path ?? '?'} ${kind}${batch}${job}`;
}

export async function followPlanJob(client: ApiClient, id: string, opts: { json?: boolean }): Promise<ExitCode> {
  const reporter = new Reporter(0, opts.json ? 'json' : 'plain');
  const interrupt = new Interrupt(`\nStop plan job ${id}? [y/N] `, `Detached from plan job ${id}; it goes on. See it with: baton plan show ${id}\n`, reporter);
  const ask: Ask = (work) => interrupt.race(work({ signal: interrupt.signal }));
  try {
    let job = (await ask((o) => client.get(planJobPath(id), o))) as PlanJobJson;
    reporter.start(`Started plan job ${id}: plan ${job.options.plan_name} in ${job.options.environment}`);
    const { stopSent } = await pollEvents<PlanEventJson>({
      interrupt, ask, client, eventsPath: (start) => `${planJobPath(id)}/events?start=${start}`, endTypes: PLAN_END_EVENTS,
      stop: async () => {
        await ask((o) => client.post('/orchestrator/v1/command/stop_plan', { plan_job: id }, o));
        reporter.log(`Stopping plan job ${id}…`);
      },
      page: async (items) => {
        // The steps' outcomes are read once per page, then every line comes in the events' order.
        const ends = items.some((e) => STEP_END_EVENTS.includes(e.type));
        const steps = ends ? (((await ask((o) => client.get(planJobPath(id), o))) as PlanJobJson).steps ?? []) : [];
        for (const e of items) {
          if (STEP_START_EVENTS.includes(e.type)) reporter.log(startLine(e));
          if (!STEP_END_EVENTS.includes(e.type)) continue;
          const s = steps.find((x) => x.path === e.details.path);
          if (s) reporter.log(`  ${s.state === 'success' ? green('✔') : red('✖')} step ${stepLine(s)}`);
        }
      },
    });
    job = (await ask((o) => client.get(planJobPath(id), o))) as PlanJobJson;
    reporter.stop();
    if (opts.json) printJson(job);
    else {
      const steps = job.steps ?? [];
      const line = `Plan job ${id} ${job.state}. ${plural(steps.filter((s) => s.state === 'success').length, 'step')} of ${steps.length} succeeded. Duration: ${duration((job.duration ?? 0) * 1000)}`;
      out(job.state === 'success' ? green(line) : job.state === 'stopped' ? yellow(line) : red(line));
      if (job.result !== null && job.result !== undefined) out(`Result: ${JSON.stringify(job.result)}`);
    }
    return planExitCode(job, stopSent);
  } catch (err) {
    if (!(err instanceof CliError && err.code === CliErrorCode.detached)) throw err;
    interrupt.printNotice();
    return ExitCode.detached;
  } finally {
    reporter.stop();
    interrupt.dispose();
  }
}
