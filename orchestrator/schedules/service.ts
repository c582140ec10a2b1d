// Schedules on BullMQ: a repeating schedule is a BullMQ job scheduler (`every` or a cron `pattern`
// with `tz`), a one-off a delayed job; every orchestrator runs a Worker on the schedules queue, so
// an occurrence starts whichever orchestrator is up. Each occurrence starts exactly one job: its
// creation is keyed by (schedule, due time) through the job store's idempotency records, so a
// BullMQ job processed twice (stalled after a crash) never starts a second job.
//
// After downtime: BullMQ keeps one pending job per schedule (a scheduler makes its next job when
// the current one starts). When an orchestrator comes back it runs that one job, which says
// `late: true`, and the scheduler's next time is computed from now (the next interval slot after
// now, the next cron match after now), so missed occurrences are never run one by one.
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job as BullJob, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import { BatonError } from '../../protocol/errors.ts';
import { classifyRedisError, type JobIdempotency, type JobStore } from '../engine/store.ts';
import {
  SCHEDULE_FAILED_KEPT, SCHEDULE_LATE_AFTER_MS, SCHEDULE_LOCK_DURATION_MS, SCHEDULE_START_ATTEMPTS, SCHEDULE_START_RETRY_DELAY_MS, SCHEDULE_WORKER_CONCURRENCY,
} from './defaults.ts';
import { ScheduleStore, type NewScheduleSpec, type ScheduleRecord, type ScheduleSpec } from './store.ts';
import { dueOfSchedulerJob, isLate, type Timing } from './timing.ts';

export type { ScheduleRecord, ScheduleSpec, ScheduleType } from './store.ts';

/** One occurrence of a schedule, as the starter gets it. */
export interface Occurrence {
  schedule: ScheduleSpec;
  due_ms: number;
  /** The link the started job carries (JobOptions.scheduled_job). */
  scheduled_job: { id: string; scheduled_for: string; late: boolean };
  /** For engine jobs: the reservation the job creation makes good (atomically). */
  idempotency?: JobIdempotency;
  /** For plan jobs: the key with which a plan service creates its job at most once. */
  idempotencyKey: string;
}

/** Starts the job of an occurrence (built from the schedule's stored body); throws when it cannot. */
export type OccurrenceStarter = (o: Occurrence) => Promise<{ id: string; kind: 'job' | 'plan_job' }>;

export interface ScheduleServiceOptions {
  redis: Redis;
  /** The engine's job store: its idempotency records make each occurrence's job unique. */
  jobs: JobStore;
  prefix: string;
  /** Connections for BullMQ (maxRetriesPerRequest null; the worker's without a command timeout). */
  queueConnection: Redis;
  workerConnection: Redis;
  log: Logger;
  lateAfterMs?: number;
}

interface OccurrenceData {
  schedule: string;
  revision: number;
  /** One-offs: the due time (a scheduler's jobs carry it in their id). */
  due_ms?: number;
}

const IDEMPOTENCY_FACE = 'schedule';

export class ScheduleService {
  readonly store: ScheduleStore;
  private readonly queue: Queue<OccurrenceData>;
  private worker: Worker<OccurrenceData> | null = null;
  private starter: OccurrenceStarter | null = null;
  private readonly lateAfterMs: number;

  constructor(private readonly opts: ScheduleServiceOptions) {
    this.store = new ScheduleStore(opts.redis, opts.prefix);
    this.queue = new Queue<OccurrenceData>(this.store.keys.queueName(), { connection: opts.queueConnection });
    this.lateAfterMs = opts.lateAfterMs ?? SCHEDULE_LATE_AFTER_MS;
  }

  /** What starts an occurrence's job (the Puppet face's builders): set before start(). */
  attach(starter: OccurrenceStarter): void {
    this.starter = starter;
  }

  async start(): Promise<void> {
    this.worker = new Worker<OccurrenceData>(this.store.keys.queueName(), (job) => this.occur(job), {
      connection: this.opts.workerConnection,
      concurrency: SCHEDULE_WORKER_CONCURRENCY,
      lockDuration: SCHEDULE_LOCK_DURATION_MS,
      stalledInterval: Math.floor(SCHEDULE_LOCK_DURATION_MS / 2),
      maxStalledCount: 1_000_000, // an occurrence whose orchestrator died is taken up, never failed for it
    });
    this.worker.on('error', (err) => this.opts.log.warn({ err: err.message }, 'schedule worker error'));
    this.worker.on('failed', (job, err) => this.opts.log.warn({ schedule: job?.data.schedule, attempt: job?.attemptsMade, err: err.message }, 'schedule occurrence failed; it is tried again'));
    this.opts.log.info({ queue: this.store.keys.queueName() }, 'schedule worker started');
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }

  /** Keeps a new schedule and arms it in BullMQ. */
  async create(s: NewScheduleSpec): Promise<ScheduleSpec> {
    const spec = await this.store.create(s);
    try {
      await this.arm(spec);
    } catch (err) {
      await this.store.remove(spec.id).catch(() => undefined);
      throw err;
    }
    this.opts.log.info({ schedule: spec.id, type: spec.type, timing: spec.timing.kind, owner: spec.owner.login }, 'schedule created');
    return spec;
  }

  /** Replaces a schedule's definition and re-arms it; null when it is gone. */
  async update(old: ScheduleSpec, next: Omit<NewScheduleSpec, 'owner'>): Promise<ScheduleSpec | null> {
    const spec: ScheduleSpec = { ...old, ...next, updated_ms: Date.now(), revision: old.revision + 1 };
    if (!(await this.store.replace(spec))) return null;
    await this.disarm(old);
    await this.arm(spec);
    this.opts.log.info({ schedule: spec.id, revision: spec.revision, timing: spec.timing.kind }, 'schedule updated');
    return spec;
  }

  /** Deletes a schedule and its BullMQ scheduler (or delayed job); false when there was none. */
  async remove(id: string): Promise<boolean> {
    const rec = await this.store.get(id);
    if (!rec) return false;
    await this.store.remove(id);
    await this.disarm(rec.spec);
    this.opts.log.info({ schedule: id }, 'schedule deleted');
    return true;
  }

  get(id: string): Promise<ScheduleRecord | null> {
    return this.store.get(id);
  }

  all(): Promise<ScheduleRecord[]> {
    return this.store.all();
  }

  /** The next time the schedule fires (ms), as BullMQ has it; null when it will not fire again. */
  async nextRunMs(rec: ScheduleRecord): Promise<number | null> {
    const t = rec.spec.timing;
    if (t.kind === 'once') return rec.last_run || rec.last_error ? null : t.at_ms;
    const s = await this.queue.getJobScheduler(this.store.keys.schedulerId(rec.spec.id));
    return s?.next ?? null;
  }

  private jobOptions(): Omit<JobsOptions, 'jobId' | 'delay' | 'repeat'> {
    return {
      attempts: SCHEDULE_START_ATTEMPTS,
      backoff: { type: 'fixed', delay: SCHEDULE_START_RETRY_DELAY_MS },
      removeOnComplete: true,
      removeOnFail: { count: SCHEDULE_FAILED_KEPT },
    };
  }

  private async arm(spec: ScheduleSpec): Promise<void> {
    const t: Timing = spec.timing;
    const data: OccurrenceData = { schedule: spec.id, revision: spec.revision };
    if (t.kind === 'once') {
      await this.queue.add('occurrence', { ...data, due_ms: t.at_ms }, { ...this.jobOptions(), jobId: this.store.keys.onceJobId(spec.id, spec.revision), delay: Math.max(0, t.at_ms - Date.now()) });
      return;
    }
    const repeat = t.kind === 'every'
      ? { every: t.every_ms, startDate: t.start_ms }
      : { pattern: t.cron, tz: t.timezone, ...(t.start_ms !== null ? { startDate: t.start_ms } : {}) };
    await this.queue.upsertJobScheduler(this.store.keys.schedulerId(spec.id), repeat, { name: 'occurrence', data, opts: this.jobOptions() });
  }

  private async disarm(spec: ScheduleSpec): Promise<void> {
    if (spec.timing.kind === 'once') {
      // A delayed job is removed; one being started right now is dropped by its revision check.
      await this.queue.remove(this.store.keys.onceJobId(spec.id, spec.revision));
      return;
    }
    await this.queue.removeJobScheduler(this.store.keys.schedulerId(spec.id));
  }

  /** One occurrence: the schedule's job is started once, whoever processes it and however often. */
  private async occur(job: BullJob<OccurrenceData>): Promise<void> {
    const { log, jobs } = this.opts;
    const { schedule: id, revision } = job.data;
    const rec = await this.store.get(id);
    if (!rec) {
      log.info({ schedule: id }, 'schedule is gone; its occurrence is dropped');
      if (dueOfSchedulerJob(job.id) !== null) await this.queue.removeJobScheduler(this.store.keys.schedulerId(id));
      return;
    }
    if (rec.spec.revision !== revision) {
      log.info({ schedule: id, revision, current: rec.spec.revision }, 'occurrence of an earlier revision of the schedule; dropped');
      return;
    }
    if (!this.starter) throw new Error('no starter attached to the schedule service');
    const due = job.data.due_ms ?? dueOfSchedulerJob(job.id) ?? job.timestamp + (job.opts.delay ?? 0);
    const now = Date.now();
    const late = isLate(due, now, this.lateAfterMs);
    const scheduledFor = new Date(due).toISOString();
    const key = jobs.keys.idempotency(IDEMPOTENCY_FACE, id, String(due));
    let idempotency: JobIdempotency | undefined;
    if (rec.spec.type !== 'plan') {
      const token = randomUUID();
      const fingerprint = `${id}@${due}`;
      const current = await jobs.beginIdempotent(key, token, fingerprint);
      if (current?.state === 'done') {
        log.info({ schedule: id, scheduled_for: scheduledFor, job: current.job }, 'occurrence already started its job; not started again');
        return;
      }
      // Another orchestrator is starting it (or died doing so: its reservation lapses, then this retry takes it up).
      if (current?.state === 'pending') throw new BatonError('schedule-occurrence-in-progress', `occurrence ${scheduledFor} of schedule ${id} is being started elsewhere`);
      idempotency = { key, token, record: (jobId) => ({ state: 'done', token, fingerprint, status: 202, headers: {}, body: '', job: jobId }) };
    }
    const occurrence: Occurrence = { schedule: rec.spec, due_ms: due, scheduled_job: { id, scheduled_for: scheduledFor, late }, idempotencyKey: key, ...(idempotency ? { idempotency } : {}) };
    let started: { id: string; kind: 'job' | 'plan_job' };
    try {
      started = await this.starter(occurrence);
    } catch (err) {
      if (idempotency) await jobs.releaseIdempotent(key, idempotency.token).catch(() => undefined);
      if (classifyRedisError(err)) throw err; // Redis away or slow: BullMQ tries again
      const kind = err instanceof BatonError ? err.code : 'start-failed';
      log.warn({ schedule: id, scheduled_for: scheduledFor, kind, err: (err as Error).message }, 'scheduled job could not start');
      await this.store.recordError(id, { scheduled_for: scheduledFor, at: new Date().toISOString(), kind, msg: (err as Error).message });
      return;
    }
    await this.store.recordRun(id, { job_id: started.id, job_kind: started.kind, scheduled_for: scheduledFor, started_at: new Date().toISOString(), late });
    log.info({ schedule: id, job: started.id, kind: started.kind, scheduled_for: scheduledFor, late }, late ? 'scheduled job started late' : 'scheduled job started');
  }
}
