// Runs one plan job: its steps in order (a sub-plan's inline), each task, command or script step as
// ordinary engine jobs (one per batch), waited for through the job feed. Resumable: a step that
// ended is never run again (its result is read back), a batch's engine job is created at most once
// (an Idempotency record per plan job, step and batch) and a running one is waited for again.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/log.ts';
import { BatonError } from '../../protocol/errors.ts';
import type { Engine, JobSubmission } from '../engine/engine.ts';
import { classifyRedisError, ENDED_JOB_STATES, type JobState, type JobStore, type NodeRecord } from '../engine/store.ts';
import { PLAN_RESERVATION_POLL_MS, PLAN_RESERVATION_WAIT_MAX_MS, PLAN_STEP_WAIT_GRACE_MS, PLAN_FEED_BLOCK_MS } from './defaults.ts';
import type { FeedFollower } from './feed.ts';
import { checkPlanParams, COMMAND_TASK, SCRIPT_TASK, type CompiledPlan, type CompiledStep } from './loader.ts';
import { PlanError } from './model.ts';
import type { PlanJobRecord, PlanStore, StepRecord } from './store.ts';
import { batches, carriesSecret, resolveValue, secretValues, shellQuote, stepResult, targetNames } from './values.ts';

/** What the face gives the runner to build a step's engine jobs with (its task job builder and scope resolution). */
export interface StepSubmitter {
  /** The nodes a query (PQL, or a PuppetDB AST) selects. */
  queryNodes(query: unknown, environment: string): Promise<string[]>;
  /** The task job of one batch, as the face's /command/task builds it (task and parameters checked). */
  taskJob(req: { environment: string; task: string; params: Record<string, unknown>; nodes: string[]; description: string }, owner: string): Promise<JobSubmission>;
  /** The Puppet run job of one batch (a puppet_run step), as the face's /command/deploy builds it. */
  deployJob(req: { environment: string; noop: boolean; nodes: string[]; description: string }, owner: string): Promise<JobSubmission>;
}

export interface RunnerDeps {
  store: PlanStore;
  jobs: JobStore;
  engine: Engine;
  feed: FeedFollower;
  submitter: StepSubmitter;
  log: Logger;
}

/** The kind of a step's error: Bolt's for a run that failed on some targets. */
export const STEP_FAILED_KIND = 'bolt/run-failure';
export const PLAN_ERROR_KIND = 'bolt/plan-failure';

type Outcome = { kind: 'ok'; value: unknown } | { kind: 'failed'; error: NonNullable<StepRecord['error']> } | { kind: 'stopped' };

const START_EVENT: Record<string, string> = { task: 'task_start', command: 'command_start', script: 'script_start', plan: 'plan_start', puppet_run: 'puppet_run_start' };

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PlanRun {
  private readonly log: Logger;

  constructor(
    private readonly d: RunnerDeps,
    private readonly job: PlanJobRecord,
    private readonly plan: CompiledPlan,
  ) {
    this.log = d.log.child({ plan_job: job.id });
  }

  private get id(): string {
    return this.job.id;
  }

  async run(): Promise<void> {
    const { store } = this.d;
    if (await store.transition(this.id, 'running', ['pending'], null)) this.log.info({ plan: this.job.plan_name }, 'plan job started');
    else this.log.info({ plan: this.job.plan_name }, 'plan job resumed');
    await store.markStarted(this.id);
    const out = (await this.stopping()) ? ({ kind: 'stopped' } as const) : await this.steps(this.plan, { ...this.job.params }, '', '');
    if (out.kind === 'ok') {
      // A stop asked for after the last step began changes nothing more: the plan job ends as it ran.
      await store.transition(this.id, 'success', ['running', 'stopping'], { type: 'plan_finished', details: { result: out.value } }, { result: JSON.stringify(out.value ?? null) });
      this.log.info('plan job succeeded');
    } else if (out.kind === 'failed') {
      await store.transition(this.id, 'failure', ['running', 'stopping'], { type: 'plan_failed', details: { result: out.error } }, { result: JSON.stringify(out.error) });
      this.log.info({ kind: out.error.kind }, 'plan job failed');
    } else {
      await store.transition(this.id, 'stopped', ['stopping', 'running'], { type: 'plan_stopped' });
      this.log.info('plan job stopped');
    }
  }

  private async stopping(): Promise<boolean> {
    const s = await this.d.store.state(this.id);
    return s === 'stopping' || s === 'stopped';
  }

  private async steps(plan: CompiledPlan, vars: Record<string, unknown>, prefix: string, labelPrefix: string): Promise<Outcome> {
    for (const [i, step] of plan.steps.entries()) {
      const path = `${prefix}${i + 1}`;
      const label = `${labelPrefix}${step.name ?? String(i + 1)}`;
      let rec = await this.d.store.step(this.id, path);
      if (!rec || rec.state === 'running') {
        if (await this.stopping()) {
          if (rec) await this.d.store.putStep(this.id, { ...rec, state: 'stopped', finish_ms: Date.now() });
          return { kind: 'stopped' };
        }
        const out = step.kind === 'plan' ? await this.planStep(step, vars, path, label, rec) : await this.taskLike(step, vars, path, label, rec);
        if (out === 'stopped') return { kind: 'stopped' };
        rec = out;
      } else if (rec.state === 'stopped') return { kind: 'stopped' };
      if (step.name) vars[step.name] = rec.result ?? null;
      if (rec.state === 'failure' && !step.catch_errors) return { kind: 'failed', error: rec.error! };
    }
    return { kind: 'ok', value: plan.return === undefined ? null : resolveValue(plan.return, vars) };
  }

  private newRecord(step: CompiledStep, path: string): StepRecord {
    return { path, name: step.name ?? null, kind: step.kind, what: step.what, state: 'running', job_ids: [], start_ms: Date.now() };
  }

  /** Ends a step: its record and its event. */
  private async end(rec: StepRecord, label: string, result: unknown, error?: StepRecord['error']): Promise<StepRecord> {
    const done: StepRecord = { ...rec, state: error ? 'failure' : 'success', result, ...(error ? { error } : {}), finish_ms: Date.now() };
    await this.d.store.putStep(this.id, done);
    await this.d.store.appendEvent(this.id, error ? 'step_failed' : 'step_finished', { step: label, path: rec.path, ...(error ? { error } : {}) });
    this.log.info({ step: label, path: rec.path, state: done.state }, 'plan step ended');
    return done;
  }

  private fail(step: CompiledStep, label: string, err: unknown): NonNullable<StepRecord['error']> {
    if (classifyRedisError(err)) throw err; // Redis away: the plan job is tried again (and resumes here)
    const e = err instanceof BatonError ? err : null;
    if (!e) this.log.warn({ step: label, err: (err as Error).message }, 'plan step failed unexpectedly');
    return { kind: e ? `puppetlabs.orchestrator/${e.code}` : PLAN_ERROR_KIND, msg: `step ${label} (${step.kind} ${step.what}): ${(err as Error).message}`, details: { step: label, ...(e?.details ?? {}) } };
  }

  private async planStep(step: CompiledStep, vars: Record<string, unknown>, path: string, label: string, old: StepRecord | null): Promise<StepRecord | 'stopped'> {
    const rec = old ?? this.newRecord(step, path);
    if (!old) {
      await this.d.store.putStep(this.id, rec);
      await this.d.store.appendEvent(this.id, 'plan_start', { step: label, path, plan: step.what });
    }
    let params: Record<string, unknown>;
    try {
      const args = resolveValue({ ...step.parameters, ...(step.targets && 'value' in step.targets ? { targets: step.targets.value } : {}) }, vars) as Record<string, unknown>;
      params = checkPlanParams(step.plan!, args);
    } catch (err) {
      return this.end(rec, label, null, this.fail(step, label, err));
    }
    const out = await this.steps(step.plan!, params, `${path}.`, `${label}/`);
    if (out.kind === 'stopped') {
      await this.d.store.putStep(this.id, { ...rec, state: 'stopped', finish_ms: Date.now() });
      return 'stopped';
    }
    return out.kind === 'ok' ? this.end(rec, label, out.value) : this.end(rec, label, out.error, out.error);
  }

  private async targets(step: CompiledStep, vars: Record<string, unknown>): Promise<string[]> {
    const t = step.targets!;
    if ('query' in t) return this.d.submitter.queryNodes(resolveValue(t.query, vars), this.job.environment);
    return targetNames(resolveValue(t.value, vars));
  }

  private action(step: CompiledStep, vars: Record<string, unknown>): { task: string; params: Record<string, unknown> } {
    if (step.kind === 'task' || step.kind === 'puppet_run') return { task: step.what, params: resolveValue(step.parameters, vars) as Record<string, unknown> };
    if (step.kind === 'command') {
      const command = resolveValue(step.what.startsWith('$') ? { $ref: step.what.slice(1) } : step.what, vars);
      if (typeof command !== 'string' || command === '') throw new PlanError('invalid-plan-parameters', `the command is ${JSON.stringify(command)}, not a command line`);
      return { task: COMMAND_TASK, params: { command } };
    }
    const args = (resolveValue(step.arguments ?? [], vars) as unknown[]) ?? [];
    return { task: SCRIPT_TASK, params: { name: step.script!.name, content: step.script!.content_b64, arguments: shellQuote(args) } };
  }

  private async taskLike(step: CompiledStep, vars: Record<string, unknown>, path: string, label: string, old: StepRecord | null): Promise<StepRecord | 'stopped'> {
    const { store, jobs } = this.d;
    let rec = old ?? this.newRecord(step, path);
    if (!rec.nodes) {
      try {
        const nodes = await this.targets(step, vars);
        rec = { ...rec, nodes };
      } catch (err) {
        await store.putStep(this.id, rec);
        return this.end(rec, label, null, this.fail(step, label, err));
      }
      await store.putStep(this.id, rec);
      this.log.info({ step: label, path, nodes: rec.nodes?.length }, 'plan step started');
    }
    let action: { task: string; params: Record<string, unknown> };
    try {
      action = this.action(step, vars);
    } catch (err) {
      return this.end(rec, label, null, this.fail(step, label, err));
    }
    const groups = batches(rec.nodes!, step.batch_size);
    const ran: NodeRecord[] = [];
    const notRun: string[] = [];
    const jobIds: string[] = [];
    let failures = 0;
    for (const [b, nodes] of groups.entries()) {
      if (step.max_failures !== undefined && failures > step.max_failures) {
        notRun.push(...nodes);
        continue;
      }
      let jobId: string;
      try {
        const existing = await store.batchJob(this.id, path, b);
        if (!existing && (await this.stopping())) {
          await store.putStep(this.id, { ...rec, job_ids: jobIds, state: 'stopped', finish_ms: Date.now() });
          return 'stopped';
        }
        const description = `plan job ${this.id}, step ${label}${groups.length > 1 ? `, batch ${b + 1} of ${groups.length}` : ''}`;
        const { environment, owner } = this.job;
        const build = step.kind === 'puppet_run'
          ? () => this.d.submitter.deployJob({ environment, noop: action.params.noop === true, nodes, description }, owner)
          : () => this.d.submitter.taskJob({ environment, task: action.task, params: action.params, nodes, description }, owner);
        jobId = existing ?? (await this.batchJob(step, path, label, b, groups.length, build));
      } catch (err) {
        return this.end({ ...rec, job_ids: jobIds }, label, null, this.fail(step, label, err));
      }
      jobIds.push(jobId);
      if (!rec.job_ids.includes(jobId)) {
        rec = { ...rec, job_ids: [...jobIds] };
        await store.putStep(this.id, rec);
      }
      let state: JobState;
      try {
        state = await this.waitJob(jobId);
      } catch (err) {
        return this.end(rec, label, null, this.fail(step, label, err));
      }
      if (state === 'stopped' && (await this.stopping())) {
        await store.putStep(this.id, { ...rec, state: 'stopped', finish_ms: Date.now() });
        return 'stopped';
      }
      const nodeRecords = await jobs.getNodes(jobId);
      ran.push(...nodeRecords);
      failures += nodeRecords.filter((n) => n.state !== 'finished').length;
    }
    const result = stepResult(ran, notRun, jobIds);
    if (result.ok) return this.end(rec, label, result);
    const error = {
      kind: STEP_FAILED_KIND,
      msg: `step ${label} (${step.kind} ${step.kind === 'script' ? step.what : step.kind === 'command' ? 'command' : step.what}) failed on ${result.failed_targets.length} of ${result.targets.length} nodes${notRun.length > 0 ? ` (${notRun.length} not run: more than ${step.max_failures} failed)` : ''}`,
      details: { step: label, failed_targets: result.failed_targets, ok_targets: result.ok_targets },
    };
    return this.end(rec, label, result, error);
  }

  /** The engine job of a batch: created at most once, whoever (or however often) runs this. */
  private async batchJob(step: CompiledStep, path: string, label: string, batch: number, of: number, build: () => Promise<JobSubmission>): Promise<string> {
    const { jobs, engine, store } = this.d;
    const key = jobs.keys.idempotency('plan', this.id, `${path}#${batch}`);
    const fingerprint = `${this.id}/${path}#${batch}`;
    const deadline = Date.now() + PLAN_RESERVATION_WAIT_MAX_MS;
    let jobId: string | null = null;
    while (jobId === null) {
      const token = randomUUID();
      const current = await jobs.beginIdempotent(key, token, fingerprint);
      if (current?.state === 'done') {
        jobId = current.job!;
        break;
      }
      if (current?.state === 'pending') {
        // Another run of this plan job (one that died while creating it) holds the key: its reservation lapses.
        if (Date.now() > deadline) throw new BatonError('plan-step-reserved', `the job of step ${label}, batch ${batch + 1}, is being created elsewhere`);
        await delay(PLAN_RESERVATION_POLL_MS);
        continue;
      }
      try {
        const sub = await build();
        // A step parameter that carries a sensitive plan parameter's value is masked as the task's own sensitive ones are.
        const secrets = secretValues(this.job.params, this.job.sensitive);
        const sensitive = [...new Set([...sub.sensitive, ...Object.keys(sub.params).filter((k) => carriesSecret(sub.params[k], secrets))])];
        const job = await engine.submit({
          ...sub, sensitive, options: { ...sub.options, plan_job: { id: this.id, step: label } },
          idempotency: { key, token, record: (id) => ({ state: 'done', token, fingerprint, status: 202, headers: {}, body: '', job: id }) },
        });
        jobId = job.id;
      } catch (err) {
        await jobs.releaseIdempotent(key, token).catch(() => undefined);
        throw err;
      }
    }
    if (await store.recordBatchJob(this.id, path, batch, jobId)) {
      await store.appendEvent(this.id, START_EVENT[step.kind]!, { 'job-id': jobId, step: label, path, ...(of > 1 ? { batch: batch + 1, batches: of } : {}) });
    }
    return jobId;
  }

  /** Waits for an engine job's end (woken by the job feed, each wait bounded); a plan job stop stops it. */
  private async waitJob(jobId: string): Promise<JobState> {
    const { jobs, engine, feed } = this.d;
    const job = await jobs.getJob(jobId);
    const bound = Date.now() + (job?.options.timeout_s ?? 0) * 2000 + PLAN_STEP_WAIT_GRACE_MS;
    let stopSent = false;
    for (;;) {
      const wake = feed.wait({ job: jobId, plan: this.id }, PLAN_FEED_BLOCK_MS);
      try {
        const state = await jobs.jobState(jobId);
        if (state === null || ENDED_JOB_STATES.includes(state)) return state ?? 'failed';
        if (!stopSent && (await this.stopping())) {
          stopSent = true;
          this.log.info({ job: jobId }, 'plan job stopping: stopping its running step');
          await engine.stop(jobId, this.job.owner);
        }
        if (Date.now() > bound) throw new BatonError('plan-step-timeout', `job ${jobId} did not end in time`);
        await wake.promise;
      } finally {
        wake.cancel();
      }
    }
  }
}
