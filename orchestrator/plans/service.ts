// Plans on the engine: a plan job is checked at submit (plan, sub-plans, tasks, scripts, variables,
// parameter types, the caller's task permissions), kept in Redis with its compiled plan, and run by
// one BullMQ queue that every orchestrator works on. A plan job whose orchestrator died is a stalled
// BullMQ job: another orchestrator (or the same one restarted) takes it over and resumes it at the
// step it was in (runner.ts).
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import { BatonError } from '../../protocol/errors.ts';
import { permits, type Principal } from '../auth.ts';
import type { Engine } from '../engine/engine.ts';
import { IDEMPOTENCY_TTL_MS, type JobStore } from '../engine/store.ts';
import type { TaskCatalog } from '../tasks/catalog.ts';
import type { TaskSource } from '../tasks/source.ts';
import { PLAN_ATTEMPTS, PLAN_EVENTS_PAGE_MAX, PLAN_LOCK_DURATION_MS, PLAN_RETRY_DELAY_MS, PLAN_WORKER_CONCURRENCY } from './defaults.ts';
import { FeedFollower } from './feed.ts';
import { PlanCatalog, type Compiled } from './loader.ts';
import { PlanError, PlanErrorCode } from './model.ts';
import { PlanRun, type StepSubmitter } from './runner.ts';
import { ENDED_PLAN_STATES, PlanStore, type PlanEvent, type PlanJobRecord, type StepRecord } from './store.ts';

export type { StepSubmitter } from './runner.ts';
export type { PlanJobRecord, StepRecord, PlanEvent } from './store.ts';

export const DEFAULT_PLAN_ENVIRONMENT = 'production';

/** The body of POST /command/plan_run (and of a plan schedule). */
export interface PlanRunRequest {
  plan_name: string;
  params?: Record<string, unknown>;
  environment?: string;
  description?: string;
}

export interface PlanServiceOptions {
  redis: Redis;
  jobs: JobStore;
  engine: Engine;
  catalog: TaskCatalog;
  tasks: TaskSource;
  prefix: string;
  /** Connections for BullMQ (maxRetriesPerRequest null; the worker's without a command timeout). */
  queueConnection: Redis;
  workerConnection: Redis;
  /** A connection of its own for the blocking reads of the job feeds (no command timeout). */
  feedConnection: Redis;
  log: Logger;
}

interface PlanQueueData {
  plan_job: string;
}

export class PlanService {
  readonly store: PlanStore;
  readonly plans: PlanCatalog;
  private readonly queue: Queue<PlanQueueData>;
  private worker: Worker<PlanQueueData> | null = null;
  private readonly feed: FeedFollower;
  private submitter: StepSubmitter | null = null;

  constructor(private readonly opts: PlanServiceOptions) {
    this.store = new PlanStore(opts.redis, opts.prefix);
    this.plans = new PlanCatalog(opts.catalog, opts.tasks);
    this.queue = new Queue<PlanQueueData>(this.store.keys.queueName(), { connection: opts.queueConnection });
    this.feed = new FeedFollower(opts.feedConnection, opts.jobs.keys.jobFeed(), this.store.keys.feed(), opts.log);
  }

  /** What builds the steps' engine jobs (the Puppet face's task job builder): set before start(). */
  attach(submitter: StepSubmitter): void {
    this.submitter = submitter;
  }

  async start(): Promise<void> {
    this.feed.start();
    this.worker = new Worker<PlanQueueData>(this.store.keys.queueName(), (job) => this.process(job), {
      connection: this.opts.workerConnection,
      concurrency: PLAN_WORKER_CONCURRENCY,
      lockDuration: PLAN_LOCK_DURATION_MS,
      stalledInterval: Math.floor(PLAN_LOCK_DURATION_MS / 2),
      maxStalledCount: 1_000_000, // a plan job whose orchestrator died is taken over, never failed for it
    });
    this.worker.on('error', (err) => this.opts.log.warn({ err: err.message }, 'plan worker error'));
    this.worker.on('failed', (job, err) => this.opts.log.warn({ plan_job: job?.data.plan_job, attempt: job?.attemptsMade, err: err.message }, 'plan job run failed; it is tried again'));
    this.opts.log.info({ queue: this.store.keys.queueName() }, 'plan worker started');
    await this.requeueUnqueued();
  }

  async close(): Promise<void> {
    await this.worker?.close(true);
    await this.queue.close();
    await this.feed.stop();
  }

  /** Everything a run checks at submit; throws the first problem. Returns the compiled plan. */
  async check(req: PlanRunRequest, who: Principal): Promise<Compiled> {
    const environment = req.environment ?? DEFAULT_PLAN_ENVIRONMENT;
    const compiled = await this.plans.compile(environment, req.plan_name, req.params ?? {});
    for (const task of compiled.tasks) {
      const permission = `tasks:run:${task}`;
      if (!permits(who, permission)) throw new PlanError(PlanErrorCode.notPermitted, `${who.login} lacks the permission ${permission} (plan ${req.plan_name} runs task ${task})`, { permission });
    }
    return compiled;
  }

  /**
   * Creates a plan job and queues it. With `idempotencyKey` (a schedule's occurrence), at most one
   * plan job is created for the key: a second call gives the first one's id.
   */
  async run(req: PlanRunRequest, who: Principal, opts: { idempotencyKey?: string; scheduled_job?: { id: string; scheduled_for: string; late: boolean } } = {}): Promise<{ id: string }> {
    const compiled = await this.check(req, who);
    const { jobs } = this.opts;
    let token: string | null = null;
    const fingerprint = `plan:${req.plan_name}`;
    if (opts.idempotencyKey) {
      token = randomUUID();
      const current = await jobs.beginIdempotent(opts.idempotencyKey, token, fingerprint);
      if (current?.state === 'done' && current.job) {
        await this.enqueue(current.job); // its creator may have died before queueing it (a no-op otherwise)
        return { id: current.job };
      }
      if (current?.state === 'pending') throw new BatonError('plan-run-in-progress', 'a plan job for this key is being created elsewhere');
    }
    let rec: PlanJobRecord;
    try {
      rec = await this.store.create({
        plan_name: req.plan_name, environment: req.environment ?? DEFAULT_PLAN_ENVIRONMENT, description: req.description ?? '',
        params: compiled.params, sensitive: compiled.sensitive, owner: who.login, ...(opts.scheduled_job ? { scheduled_job: opts.scheduled_job } : {}),
      }, compiled.plan, Date.now(), opts.idempotencyKey && token ? {
        key: opts.idempotencyKey, ttlMs: IDEMPOTENCY_TTL_MS,
        record: (id) => JSON.stringify({ state: 'done', token, fingerprint, status: 202, headers: {}, body: '', job: id }),
      } : undefined);
    } catch (err) {
      if (opts.idempotencyKey && token) await jobs.releaseIdempotent(opts.idempotencyKey, token).catch(() => undefined);
      throw err;
    }
    await this.enqueue(rec.id);
    this.opts.log.info({ plan_job: rec.id, plan: req.plan_name, owner: who.login, steps: compiled.plan.steps.length }, 'plan job submitted');
    return { id: rec.id };
  }

  /** Queues a plan job (BullMQ ignores a second add of the same job id), then lets go of its unqueued entry. */
  private async enqueue(id: string): Promise<void> {
    await this.queue.add('plan-job', { plan_job: id }, {
      jobId: this.store.keys.queueJobId(id), attempts: PLAN_ATTEMPTS, backoff: { type: 'fixed', delay: PLAN_RETRY_DELAY_MS },
      removeOnComplete: true, removeOnFail: { count: 1000 },
    });
    await this.store.queued(id);
  }

  /** Queues the pending plan jobs whose creator died before queueing them (at start). */
  private async requeueUnqueued(): Promise<void> {
    for (const id of await this.store.unqueued()) {
      const state = await this.store.state(id);
      if (state === 'pending') {
        this.opts.log.info({ plan_job: id }, 'plan job created but not queued (its orchestrator died); queued now');
        await this.enqueue(id);
      } else await this.store.queued(id);
    }
  }

  get(id: string): Promise<PlanJobRecord | null> {
    return this.store.get(id);
  }

  steps(id: string): Promise<StepRecord[]> {
    return this.store.steps(id);
  }

  history(id: string): Promise<{ state: string; enter_time: string }[]> {
    return this.store.history(id);
  }

  events(id: string, start: number): Promise<PlanEvent[]> {
    return this.store.events(id, start, PLAN_EVENTS_PAGE_MAX);
  }

  ids(opts: { limit: number; offset: number; order: 'asc' | 'desc' }): Promise<{ ids: string[]; total: number }> {
    return this.store.ids(opts);
  }

  /**
   * Stops a plan job: no later step starts and the running step's engine jobs are stopped (the
   * runner, wherever it is, sees the stop through the plan job feed). Null when there is no such job.
   */
  async stop(id: string, login: string, force = false): Promise<PlanJobRecord | null> {
    const rec = await this.store.get(id);
    if (!rec) return null;
    if (ENDED_PLAN_STATES.includes(rec.state)) return rec;
    if (await this.store.transition(id, 'stopping', ['pending', 'running'], { type: 'plan_stopping', details: { login } })) this.opts.log.info({ plan_job: id, login }, 'plan job stopping');
    for (const jobId of await this.store.allStepJobs(id)) await this.opts.engine.stop(jobId, login, force);
    // A plan job that never started ends here; a running one ends when its runner sees the stop.
    if (rec.state === 'pending') await this.store.transition(id, 'stopped', ['stopping'], { type: 'plan_stopped' }).catch(() => false);
    return this.store.get(id);
  }

  private async process(bull: BullJob<PlanQueueData>): Promise<void> {
    const id = bull.data.plan_job;
    const rec = await this.store.get(id);
    if (!rec || ENDED_PLAN_STATES.includes(rec.state)) return;
    if (!this.submitter) throw new Error('no step submitter attached to the plan service');
    const plan = await this.store.plan(id);
    if (!plan) throw new Error(`plan job ${id} has no plan recorded`);
    await new PlanRun({ store: this.store, jobs: this.opts.jobs, engine: this.opts.engine, feed: this.feed, submitter: this.submitter, log: this.opts.log }, rec, plan).run();
  }
}
