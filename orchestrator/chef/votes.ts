// A Chef vote outlives the orchestrator that began it. While an orchestrator votes it holds the
// job's vote lease in Redis (SET NX PX, lasting the voting timeout plus a margin); a BullMQ
// delayed check, due when that lease would lapse, runs on whichever orchestrator takes it: a job
// still voting (or decided but not carried out) is taken up there once the lease is free. Nothing
// about a vote lives only in the memory of the process that began it.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import { projectPath } from '../../lib/paths.ts';
import { BatonError } from '../../protocol/errors.ts';
import type { Keys } from '../engine/keys.ts';

/** A vote's lease outlasts its voting timeout by this much (its conclusion: quorum, begin, settle). */
export const CHEF_VOTE_MARGIN_MS = 5_000;
/** A check that found the lease still held looks again this often, this many times. */
export const VOTE_CHECK_RETRY_MS = 1_000;
export const VOTE_CHECK_ATTEMPTS = 3_600;
export const VOTE_CHECK_CONCURRENCY = 4;

export const ChefVoteErrorCode = {
  /** Another orchestrator holds the vote (it is alive, or its lease has not lapsed yet). */
  held: 'chef/vote-held',
} as const;

interface VoteScripts {
  chefDeleteIfHolder(key: string, holder: string): Promise<number>;
}

export interface VoteLeasesOptions {
  redis: Redis;
  keys: Keys;
  /** BullMQ connections (maxRetriesPerRequest null; the worker's without a command timeout). */
  queueConnection: Redis;
  workerConnection: Redis;
  log: Logger;
}

export class VoteLeases {
  private readonly r: Redis & VoteScripts;
  private readonly queue: Queue<{ job: string }>;
  private worker: Worker<{ job: string }> | null = null;

  constructor(private readonly o: VoteLeasesOptions) {
    o.redis.defineCommand('chefDeleteIfHolder', { numberOfKeys: 1, lua: readFileSync(projectPath('orchestrator', 'chef', 'lua', 'chef-delete-if-holder-1.lua'), 'utf8') });
    this.r = o.redis as Redis & VoteScripts;
    this.queue = new Queue(o.keys.chefVoteQueueName(), { connection: o.queueConnection });
  }

  /** Takes the checks; `take` decides on a job and throws ChefVoteErrorCode.held to look again later. */
  start(take: (jobId: string) => Promise<void>): void {
    this.worker ??= new Worker<{ job: string }>(this.o.keys.chefVoteQueueName(), (j: BullJob<{ job: string }>) => take(j.data.job), {
      connection: this.o.workerConnection, concurrency: VOTE_CHECK_CONCURRENCY, removeOnComplete: { count: 0 }, removeOnFail: { count: 0 },
    });
    this.worker.on('error', (err) => this.o.log.warn({ err: err.message }, 'chef vote check worker error'));
    this.worker.on('failed', (j, err) => {
      if (!(err instanceof BatonError && err.code === ChefVoteErrorCode.held)) this.o.log.warn({ job: j?.data.job, attempt: j?.attemptsMade, err: err.message }, 'chef vote check failed');
    });
  }

  /** The lease for `ttlMs`, or null when another holds it. */
  async acquire(jobId: string, ttlMs: number): Promise<string | null> {
    const token = randomUUID();
    return (await this.o.redis.set(this.o.keys.chefVote(jobId), token, 'PX', ttlMs, 'NX')) === 'OK' ? token : null;
  }

  async release(jobId: string, token: string): Promise<void> {
    await this.r.chefDeleteIfHolder(this.o.keys.chefVote(jobId), token);
  }

  /** A check of the job's vote after `delayMs` (one per job: arming again changes nothing). */
  async arm(jobId: string, delayMs: number): Promise<void> {
    await this.queue.add('vote-check', { job: jobId }, {
      jobId: `vote-${jobId}`, delay: delayMs, attempts: VOTE_CHECK_ATTEMPTS, backoff: { type: 'fixed', delay: VOTE_CHECK_RETRY_MS },
    });
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }
}
