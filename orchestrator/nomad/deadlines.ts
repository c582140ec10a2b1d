// A deployment's deadlines (MinHealthyTime, HealthyDeadline, ProgressDeadline, a submission's
// lease) and its wake-ups, as BullMQ delayed jobs on a queue of their own. Each one, when due,
// re-runs reconcile for its deployment on whichever orchestrator takes it; a deadline's job id is
// deterministic (deployment, kind, what it is about), so arming it again changes nothing. Nothing
// lives in process memory: a restart, or another orchestrator, just goes on.
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';

/** Deadline jobs handled at once per orchestrator. */
export const DEADLINE_CONCURRENCY = 8;
/** A handler that failed (Redis away, contention) is tried again: this often, this many times. */
export const DEADLINE_RETRY_DELAY_MS = 1_000;
export const DEADLINE_ATTEMPTS = 600;

export interface DeadlineData {
  deployment: string;
  kind: string;
  /** When it is due (ms since the epoch): reconcile takes now as at least this. */
  atMs: number;
}

export interface DeadlinesOptions {
  queueName: string;
  /** Connections for BullMQ (maxRetriesPerRequest: null; the worker's without a command timeout). */
  queueConnection: Redis;
  workerConnection: Redis;
  log: Logger;
  run: (deployment: string, atMs: number) => Promise<void>;
}

export class DeploymentDeadlines {
  private readonly queue: Queue<DeadlineData>;
  private worker: Worker<DeadlineData> | null = null;

  constructor(private readonly o: DeadlinesOptions) {
    this.queue = new Queue<DeadlineData>(o.queueName, { connection: o.queueConnection });
  }

  start(): void {
    this.worker ??= new Worker<DeadlineData>(this.o.queueName, (job: BullJob<DeadlineData>) => this.o.run(job.data.deployment, job.data.atMs), {
      connection: this.o.workerConnection,
      concurrency: DEADLINE_CONCURRENCY,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 0 },
    });
    this.worker.on('error', (err) => this.o.log.warn({ err: err.message }, 'deployment deadline worker error'));
    this.worker.on('failed', (job, err) => this.o.log.warn({ deployment: job?.data.deployment, kind: job?.data.kind, attempt: job?.attemptsMade, err: err.message }, 'deployment deadline handler failed'));
  }

  /** Reconcile `deployment` at `atMs`; the same `key` again is ignored while it waits. */
  async arm(deployment: string, kind: string, key: string, atMs: number): Promise<void> {
    await this.queue.add('deadline', { deployment, kind, atMs }, {
      jobId: key, delay: Math.max(0, atMs - Date.now()), attempts: DEADLINE_ATTEMPTS, backoff: { type: 'fixed', delay: DEADLINE_RETRY_DELAY_MS },
    });
  }

  /** Reconcile `deployment` again after `delayMs` (a wake-up: never merged with another). */
  async kick(deployment: string, delayMs = 0): Promise<void> {
    const atMs = Date.now() + delayMs;
    await this.queue.add('wake-up', { deployment, kind: 'wake-up', atMs }, { delay: delayMs, attempts: DEADLINE_ATTEMPTS, backoff: { type: 'fixed', delay: DEADLINE_RETRY_DELAY_MS } });
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }
}
