// The job engine all three API faces share: a job's node runs are BullMQ jobs on Redis, at most
// `concurrency` of a job and `task-concurrency` overall in flight; each run drives an agent over
// PXP through the broker. Execution is at most once per (job, node): the transaction id derives
// from them, and a restarted orchestrator re-attaches to runs by `status query`.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import type { PxpAction, PxpRunner } from '../pcp/pxp-runner.ts';
import { DEFAULT_NODE_RECONNECT_GRACE_S } from '../defaults.ts';
import { Delivery } from './delivery.ts';
import { standardKinds, type JobAction, type JobKind, type JobKinds, type RunEnd } from './kinds/index.ts';
import { notConnectedOutcome, type NodeOutcome } from './results.ts';
import { ENDED_JOB_STATES, isStopping, STOPPING_JOB_STATES, TERMINAL_NODE_STATES, type JobRecord, type JobState, type JobStore, type JobType, type NewJob, type NodeRecord } from './store.ts';

/** Beyond the run's own timeout, how long to wait for the agent to report it. */
export const OUTCOME_GRACE_MS = 30_000;
/** How often the runs of this process's jobs are checked against the queue (lost writes, failed dispatch). */
export const RECONCILE_INTERVAL_MS = 10_000;
/** A node run whose handler failed (Redis away or slow) is tried again: this often, this many times. */
export const NODE_RUN_RETRY_DELAY_MS = 1_000;
export const NODE_RUN_ATTEMPTS = 600;

interface NodeRunData {
  jobId: string;
  node: string;
}

export interface EngineOptions {
  store: JobStore;
  /** Connections for BullMQ (with maxRetriesPerRequest: null). */
  queueConnection: Redis;
  workerConnection: Redis;
  runner: PxpRunner;
  inventory: InventoryTracker;
  log: Logger;
  taskConcurrency: number;
  lockDurationMs: number;
  /** How long a node away at dispatch (or whose request was lost) is waited for; default 60 s. */
  nodeReconnectGraceMs?: number;
  /** The kinds of job it runs, by the module of a job's action; default: the standard kinds. */
  kinds?: JobKinds;
}

export type { JobAction } from './kinds/index.ts';

/** Why the losing wait of a run's outcome race is aborted. */
const RACE_DECIDED = Object.freeze({ decided: true });

export interface JobSubmission extends NewJob {
  action: JobAction;
}

export interface EngineEvents {
  jobSubmitted: [job: JobRecord];
  /** `type`: the job's (faces keep to their own jobs without asking Redis); null if unknown. */
  nodeStarted: [jobId: string, node: string, type: JobType | null];
  nodeEnded: [jobId: string, node: string, state: string, type: JobType | null];
  jobEnded: [jobId: string, state: string, type: JobType | null];
}

export class Engine extends EventEmitter<EngineEvents> {
  private readonly queue: Queue<NodeRunData>;
  private worker: Worker<NodeRunData> | null = null;
  private epoch = '';
  private readonly actions = new Map<string, JobAction>();
  /** Job records by id: what a node run needs of its job never changes but the state. */
  private readonly jobs = new Map<string, JobRecord>();
  private readonly delivery: Delivery;
  private readonly kinds: JobKinds;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private reconciling: Promise<void> | null = null;
  private closed = false;
  private readonly onRedisReady = () => this.reconcileSoon('redis reconnected', 'all');

  constructor(private readonly opts: EngineOptions) {
    super();
    this.queue = new Queue<NodeRunData>(opts.store.keys.queueName(), { connection: opts.queueConnection });
    this.kinds = opts.kinds ?? DEFAULT_KINDS;
    this.delivery = new Delivery({ runner: opts.runner, inventory: opts.inventory, log: opts.log, graceMs: opts.nodeReconnectGraceMs ?? DEFAULT_NODE_RECONNECT_GRACE_S * 1000 });
  }

  async start(): Promise<void> {
    this.epoch = await this.opts.store.epoch();
    this.worker = new Worker<NodeRunData>(this.opts.store.keys.queueName(), (job) => this.runNode(job), {
      connection: this.opts.workerConnection,
      concurrency: this.opts.taskConcurrency,
      lockDuration: this.opts.lockDurationMs,
      stalledInterval: Math.max(1_000, Math.floor(this.opts.lockDurationMs / 2)),
      maxStalledCount: 1_000_000, // a run that outlived a crashed orchestrator is re-attached, not failed
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 1000 },
    });
    this.worker.on('error', (err) => this.opts.log.warn({ err: err.message }, 'node-run worker error'));
    this.worker.on('failed', (bull, err) => this.opts.log.warn({ job: bull?.data.jobId, node: bull?.data.node, attempt: bull?.attemptsMade, err: err.message }, 'node run handler failed; it is tried again'));
    await this.recover();
    // Redis restarted (its last writes may be lost) or a write failed: the store and the queue are
    // brought back into agreement, so that every job reaches a final state.
    this.opts.workerConnection.on('ready', this.onRedisReady);
    this.reconcileTimer = setInterval(() => this.reconcileSoon('periodic', 'known'), RECONCILE_INTERVAL_MS);
    this.reconcileTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.opts.workerConnection.off('ready', this.onRedisReady);
    await this.reconciling;
    await this.worker?.close(true);
    await this.queue.close();
  }

  /** One reconciliation at a time; errors are logged (Redis may still be away) and the next one tries again. */
  private reconcileSoon(reason: string, which: 'all' | 'known'): void {
    if (this.closed || this.reconciling) return;
    const ids = which === 'known' ? [...this.jobs.keys()] : null;
    if (ids?.length === 0) return;
    this.reconciling = this.recover(ids, reason)
      .catch((err: Error) => this.opts.log.warn({ err: err.message, reason }, 'reconciliation failed; it is tried again'))
      .finally(() => {
        this.reconciling = null;
      });
  }

  /** The transaction id of a node run: unique per (dataset, job, node), never reused. */
  transactionId(jobId: string, node: string): string {
    return `${this.epoch}-${jobId}-${createHash('sha256').update(node).digest('hex').slice(0, 16)}`;
  }

  /** Creates a job and starts its runs; with `hold`, runs wait for `begin` (a Chef job votes first). */
  async submit(sub: JobSubmission, opts: { hold?: boolean } = {}): Promise<JobRecord> {
    const job = await this.opts.store.createJob({ ...sub, ...(opts.hold ? { held: true } : {}) });
    this.actions.set(job.id, sub.action);
    this.jobs.set(job.id, job);
    this.opts.log.info({ job: job.id, type: job.type, nodes: job.node_count, owner: job.owner }, 'job submitted');
    this.emit('jobSubmitted', job);
    // The job exists and is acknowledged: a dispatch that fails now (Redis away) is done by the
    // next reconciliation, never reported as a failed submission (which a client would retry).
    if (!opts.hold) await this.dispatch(job.id, job.options.concurrency).catch((err: Error) => this.opts.log.warn({ job: job.id, err: err.message }, 'dispatch failed; reconciliation will queue the runs'));
    return job;
  }

  /** A job's record and one node's, as the store has them (faces built on the engine read them). */
  jobRecord(jobId: string): Promise<JobRecord | null> {
    return this.opts.store.getJob(jobId);
  }

  nodeRecord(jobId: string, node: string): Promise<NodeRecord | null> {
    return this.opts.store.getNode(jobId, node);
  }

  /** Starts the runs of a job submitted with `hold` (nodes no longer `new` are passed over). */
  async begin(jobId: string): Promise<void> {
    const job = await this.job(jobId);
    await this.opts.store.clearJobField(jobId, 'held');
    if (job) await this.dispatch(jobId, job.options.concurrency);
  }

  /** Moves a node that has not run to a terminal state without running it (a Chef vote). */
  async settle(jobId: string, node: string, state: 'skipped' | 'failed', details: Record<string, unknown>, event: { type: string; details?: Record<string, unknown> }): Promise<void> {
    const res = await this.opts.store.transition(jobId, { name: node, state, details }, ['new'], event);
    const type = res ? await this.jobType(jobId) : null;
    if (res) this.emit('nodeEnded', jobId, node, state, type);
    if (res?.jobEnd) this.ended(jobId, res.jobEnd, type);
  }

  /** No new runs start; `force` also stops running ones (Baton's agent by `status stop`, Puppet's pxp-agent by a `command run` that ends the transaction's processes). */
  async stop(jobId: string, login: string, force = false): Promise<void> {
    const { store } = this.opts;
    if (await store.requestStop(jobId, login)) this.opts.log.info({ job: jobId, login, force }, 'job stopping');
    for (const node of await store.drainPending(jobId)) await this.skip(jobId, node, 'the job was stopped before this node ran');
    if (!force) return;
    const running = (await store.getNodes(jobId)).filter((n) => n.state === 'running');
    await Promise.all(running.map(async (n) => {
      const stopped = await this.opts.runner.stop(n.name, this.transactionId(jobId, n.name));
      this.opts.log.info({ job: jobId, node: n.name, stopped }, stopped ? 'stopped a running node run' : 'the agent could not stop the run; it will finish');
    }));
  }

  /** Moves a node that has not run to skipped; ends the job when it was the last one. */
  private async skip(jobId: string, node: string, message: string, from: NodeRecord['state'][] = ['new']): Promise<void> {
    const res = await this.opts.store.transition(jobId, { name: node, state: 'skipped', details: { message } }, from, { type: 'node_skipped' });
    const type = res ? await this.jobType(jobId) : null;
    if (res) this.emit('nodeEnded', jobId, node, 'skipped', type);
    if (res?.jobEnd) this.ended(jobId, res.jobEnd, type);
  }

  private forget(jobId: string): void {
    this.jobs.delete(jobId);
    this.actions.delete(jobId);
  }

  private ended(jobId: string, state: string, type: JobType | null): void {
    this.forget(jobId);
    this.opts.log.info({ job: jobId, state }, 'job ended');
    this.emit('jobEnded', jobId, state, type);
  }

  /** A job's type, from this process's cache of the jobs it runs (read once otherwise). */
  private async jobType(jobId: string): Promise<JobType | null> {
    return (await this.job(jobId).catch(() => null))?.type ?? null;
  }

  /**
   * Ordered jobs: nodes whose prerequisites finished join the queue; nodes after one that did not
   * finish are skipped (which may skip others after them in turn).
   */
  private async release(jobId: string): Promise<void> {
    const { store } = this.opts;
    for (;;) {
      const { skip } = await store.release(jobId);
      for (const [node, prerequisite] of skip) {
        await this.skip(jobId, node, `skipped: ${prerequisite}, whose run it must follow, did not finish successfully`);
        await store.unblock(jobId, node);
      }
      if (skip.length === 0) return;
    }
  }

  private async dispatch(jobId: string, concurrency: number): Promise<void> {
    const nodes = await this.opts.store.refill(jobId, concurrency);
    if (nodes.length > 0) await this.enqueue(jobId, nodes);
  }

  private queueJobId(jobId: string, node: string): string {
    return `${jobId}-${createHash('sha256').update(node).digest('hex').slice(0, 24)}`;
  }

  private async enqueue(jobId: string, nodes: string[]): Promise<void> {
    await this.queue.addBulk(nodes.map((node) => ({
      name: 'node-run',
      data: { jobId, node },
      opts: { jobId: this.queueJobId(jobId, node), attempts: NODE_RUN_ATTEMPTS, backoff: { type: 'fixed', delay: NODE_RUN_RETRY_DELAY_MS } },
    })));
  }

  /**
   * After a restart (all jobs), a Redis restart (all) or now and then (the jobs this process
   * knows): every job that has not ended gets its ready and running nodes queued again, and its
   * next nodes dispatched. Queue ids make it idempotent; a re-queued running node re-attaches.
   */
  private async recover(only: string[] | null = null, reason = 'start'): Promise<void> {
    for (const jobId of only ?? (await this.opts.store.activeJobIds())) {
      const job = await this.opts.store.getJob(jobId);
      if (!job || ENDED_JOB_STATES.includes(job.state as JobState)) {
        if (only) this.forget(jobId);
        continue;
      }
      const inFlight = (await this.opts.store.getNodes(jobId)).filter((n) => n.state === 'ready' || n.state === 'running').map((n) => n.name);
      // A run abandoned by a stopping orchestrator may sit in the queue as failed: its id would
      // block the new one. Waiting or active (stalled) ones stay, and adding them again is ignored.
      for (const node of inFlight) {
        const queued = await this.queue.getJob(this.queueJobId(jobId, node));
        if (queued && ((await queued.isFailed()) || (await queued.isCompleted()))) await queued.remove();
      }
      if (inFlight.length > 0) await this.enqueue(jobId, inFlight);
      const [held] = await this.opts.store.jobFields(jobId, 'held');
      if (job.state === 'stopping') await this.stop(jobId, job.owner);
      else if (held) this.opts.log.info({ job: jobId }, 'job waits for its face before it runs (held)');
      else {
        if (job.options.ordered) await this.release(jobId);
        await this.dispatch(jobId, job.options.concurrency);
      }
      if (reason === 'start') this.opts.log.info({ job: jobId, in_flight: inFlight.length }, 'recovered job after restart');
      else this.opts.log.debug({ job: jobId, in_flight: inFlight.length, reason }, 'reconciled job');
    }
  }

  private async job(jobId: string): Promise<JobRecord | null> {
    let job = this.jobs.get(jobId);
    if (!job) {
      job = (await this.opts.store.getJob(jobId)) ?? undefined;
      if (job) this.jobs.set(jobId, job);
    }
    return job ?? null;
  }

  private async action(jobId: string): Promise<JobAction | null> {
    let a = this.actions.get(jobId);
    if (!a) {
      a = (await this.opts.store.getAction<JobAction>(jobId)) ?? undefined;
      if (a) this.actions.set(jobId, a);
    }
    return a ?? null;
  }

  private async runNode(bull: BullJob<NodeRunData>): Promise<void> {
    const { jobId, node } = bull.data;
    const { store, runner, inventory, log } = this.opts;
    const job = await this.job(jobId);
    if (!job) return;
    const txid = this.transactionId(jobId, node);
    const jobAction = await this.action(jobId);
    if (!jobAction) throw new Error(`job ${jobId} has no action recorded`);
    const kind = this.kinds.of(jobAction.module);
    if (!kind) throw new Error(`job ${jobId} runs module ${jobAction.module}, which no job kind runs`);
    const action = this.kinds.nodeAction(jobAction, node, jobId);

    // The usual case in one script: a `ready` node, connected, of a job neither stopping nor
    // stopped, moves to running. Anything else (or a refusal) reads the node and decides below.
    if (inventory.isConnected(node)) {
      const startMs = Date.now();
      if (await this.markRunning(job, node, txid, startMs, true)) return this.conclude(job, node, txid, startMs, kind, await this.delivery.send(node, txid, action), action);
    }

    const rec = await store.getNode(jobId, node);
    if (!rec || TERMINAL_NODE_STATES.includes(rec.state)) return;
    const jobState = (await store.jobState(jobId)) ?? job.state;
    let outcome: RunEnd | null = null;
    let startMs = rec.start_ms ?? Date.now();

    if (rec.state === 'ready' && isStopping(jobState)) {
      await this.skip(jobId, node, 'the job was stopped before this node ran', ['ready']);
      return this.afterNode(job);
    }
    if (rec.state === 'running') {
      // Re-attach (the orchestrator restarted during this run, or another took it over): ask the
      // agent before anything else; while it runs, the wait below needs no further question.
      const st = await runner.reattach(node, txid);
      log.info({ job: jobId, node, status: typeof st === 'string' ? st : st?.kind ?? 'unreachable' }, 're-attaching to a node run');
      if (st === 'unknown') outcome = await this.delivery.send(node, txid, action); // it never arrived
      else if (st !== null && st !== 'running' && st.kind !== 'lost') outcome = st;
    } else {
      if (!inventory.isConnected(node)) {
        // Away at dispatch (a broker or agent restart): waited for, not failed at once.
        log.info({ job: jobId, node }, 'node not connected; waiting for it before the run starts');
        const back = await this.delivery.waitConnected(node);
        if (isStopping(await store.jobState(jobId))) {
          await this.skip(jobId, node, 'the job was stopped before this node ran', ['ready']);
          return this.afterNode(job);
        }
        if (!back) {
          await this.finish(job, node, txid, startMs, notConnectedOutcome(node), ['ready']);
          return this.afterNode(job);
        }
      }
      startMs = Date.now();
      if (!(await this.markRunning(job, node, txid, startMs, false))) return; // someone else moved it
      outcome = await this.delivery.send(node, txid, action);
    }
    return this.conclude(job, node, txid, startMs, kind, outcome, action);
  }

  /** ready → running (refused, with `unlessStopping`, while the job stops); says so in the log and to listeners. */
  private async markRunning(job: JobRecord, node: string, txid: string, startMs: number, unlessStopping: boolean): Promise<boolean> {
    const moved = await this.opts.store.transition(job.id, { name: node, state: 'running', transaction_uuid: txid, start_ms: startMs }, ['ready'], { type: 'node_running' }, startMs, unlessStopping ? STOPPING_JOB_STATES : []);
    if (!moved) return false;
    this.opts.log.info({ job: job.id, node, transaction_id: txid }, 'node run started');
    this.emit('nodeStarted', job.id, node, job.type);
    return true;
  }

  /** The run's outcome (waited for when not known yet), by its kind's rules, kept; then the next nodes. */
  private async conclude(job: JobRecord, node: string, txid: string, startMs: number, kind: JobKind, known: RunEnd | null, action: PxpAction): Promise<void> {
    const { store } = this.opts;
    let outcome = known;
    if (!outcome) {
      const deadline = startMs + job.options.timeout_s * 1000 + OUTCOME_GRACE_MS;
      outcome = kind.crashesOnDisconnect ? await this.outcomeOrCrash(node, txid, action, deadline) : await this.delivery.outcome(node, txid, action, deadline);
    }
    // The job's state now, not the one read when the run began.
    const jobStopping = kind.abortsWhenStopping && isStopping(await store.jobState(job.id));
    const nodeOutcome = kind.outcome(outcome, { node, timeoutS: job.options.timeout_s, jobStopping });
    if (outcome.kind === 'results' && kind.onResults) await kind.onResults(job.id, node, outcome.results);
    await this.finish(job, node, txid, startMs, nodeOutcome, ['running', 'ready']);
    return this.afterNode(job);
  }

  private async outcomeOrCrash(node: string, txid: string, action: PxpAction, deadlineMs: number): Promise<RunEnd> {
    const { inventory } = this.opts;
    const lost = inventory.whenDisconnected(node);
    const abort = new AbortController();
    try {
      return await Promise.race([this.delivery.outcome(node, txid, action, deadlineMs, abort.signal), lost.promise.then(() => ({ kind: 'crashed' as const }))]);
    } finally {
      lost.cancel();
      abort.abort(RACE_DECIDED); // the losing wait stops asking the agent (a reason of our own: no DOMException per run)
    }
  }

  private async finish(job: JobRecord, node: string, txid: string, startMs: number, o: NodeOutcome, from: NodeRecord['state'][]): Promise<void> {
    const now = Date.now();
    const type = o.state === 'finished' ? 'node_finished' : o.state === 'errored' ? 'node_errored' : 'node_failed';
    const res = await this.opts.store.transition(
      job.id,
      { name: node, state: o.state, transaction_uuid: txid, start_ms: startMs, finish_ms: now, result: o.result, details: o.details },
      from,
      { type, details: { detail: o.details } },
      now,
    );
    if (!res) return; // already ended (a run re-attached twice)
    this.opts.log.info({ job: job.id, node, state: o.state }, 'node run ended');
    this.emit('nodeEnded', job.id, node, o.state, job.type);
    if (res.jobEnd) this.ended(job.id, res.jobEnd, job.type);
  }

  private async afterNode(job: JobRecord): Promise<void> {
    if (job.options.ordered) await this.release(job.id);
    // With no job concurrency and no order every node was queued at submit; otherwise the next may go.
    if (job.options.concurrency > 0 || job.options.ordered) await this.dispatch(job.id, job.options.concurrency);
  }
}

/** The action as one node runs it, by the standard kinds' rules (the job's flags plus the node's own). */
export function nodeAction(a: JobAction, node: string, jobId: string): PxpAction {
  return DEFAULT_KINDS.nodeAction(a, node, jobId);
}

const DEFAULT_KINDS = standardKinds();
