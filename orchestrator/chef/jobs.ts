// Chef Push Jobs on the shared engine: a `command` job votes first (every node gets `command
// commit`; ack → ready, nack → nacked, silence or no session → unavailable), then runs on the
// ready nodes if at least `quorum` acked, else ends quorum_failed. Chef's job and node states are
// kept beside the engine's (job field `chef_state`, node details `chef_state`). A node that acked
// is busy until its job ends it: a mark in Redis (not in this process), so that every orchestrator
// shows it and another can end it when this one dies; the mark expires should none ever end it.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { projectPath } from '../../lib/paths.ts';
import type { Logger } from '../../lib/log.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { newMessageId } from '../../protocol/pcp-v2.ts';
import { pxpRequest, PxpMessageType } from '../../protocol/pxp.ts';
import type { Engine, JobAction } from '../engine/engine.ts';
import type { Keys } from '../engine/keys.ts';
import { COMMAND_MODULE } from '../engine/kinds/command.ts';
import type { JobIdempotency, JobRecord, JobStore, JobType, NodeRecord } from '../engine/store.ts';
import { ENDED_JOB_STATES, isStopping } from '../engine/store.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import { BatonError } from '../../protocol/errors.ts';
import { CHEF_VOTE_MARGIN_MS, ChefVoteErrorCode, type VoteLeases } from './votes.ts';
import { agentUri } from '../pcp/pxp-runner.ts';

export const ChefJobState = {
  voting: 'voting', running: 'running', complete: 'complete', quorumFailed: 'quorum_failed', timedOut: 'timed_out', aborted: 'aborted', crashed: 'crashed',
} as const;
export type ChefJobState = (typeof ChefJobState)[keyof typeof ChefJobState];
/** How long a ready node has to confirm it was released after a failed quorum. */
export const RELEASE_TIMEOUT_MS = 10_000;
/**
 * A node's busy mark lasts the job's voting timeout and run timeout plus this margin from the
 * node's ack (renewed, run timeout plus margin, when its run starts): the bound on a node left
 * busy by an orchestrator that died with no other to end the job.
 */
export const CHEF_BUSY_MARGIN_MS = 60_000;
export const FINAL_CHEF_STATES: readonly string[] = ['complete', 'quorum_failed', 'timed_out', 'aborted', 'crashed'];

export interface ChefJobSpec {
  /** The organization the job was created in; only that organization sees it. */
  org: string;
  command: string;
  nodes: string[];
  run_timeout: number;
  quorum: number;
  user?: string;
  dir?: string;
  env: Record<string, string>;
  file?: string;
  capture_output: boolean;
}

export interface ChefJobsOptions {
  engine: Engine;
  /** The engine's store (waits for Redis rather than failing fast). */
  store: JobStore;
  redis: Redis;
  keys: Keys;
  client: PcpClient;
  inventory: InventoryTracker;
  votingTimeoutS: number;
  orgFeedExpirationS: number;
  log: Logger;
  /** Vote leases and checks (a vote whose orchestrator died is taken up by another). */
  votes: VoteLeases;
}

interface BusyScripts {
  chefBusyClaim(key: string, jobId: string, ttlMs: number, replaces: string): Promise<number | string>;
  chefBusyRenew(key: string, jobId: string, ttlMs: number): Promise<number>;
  chefDeleteIfHolder(key: string, holder: string): Promise<number>;
}

/** Which of `nodes` are busy with a command job, as Redis has it (every orchestrator reads the same). */
export async function busyNodes(redis: Redis, keys: Keys, nodes: readonly string[]): Promise<Set<string>> {
  if (nodes.length === 0) return new Set();
  const held = await redis.mget(...nodes.map((n) => keys.chefBusy(n)));
  return new Set(nodes.filter((_n, i) => held[i] !== null));
}

/** Whether an engine event is of a Chef command job (a type not known: it may be; look). */
const isCommandJob = (type: JobType | null): boolean => type === null || type === 'command';

/** Whether a job's vote is not over: still voting, or decided and not carried out (runs still held, ready nodes of a failed quorum). */
const voteUnfinished = (chefState: string | null | undefined, held: string | null | undefined): boolean =>
  chefState === ChefJobState.voting || chefState === ChefJobState.quorumFailed || (chefState === ChefJobState.running && Boolean(held));

/** A node's state as Chef shows it. */
export function chefNodeState(n: NodeRecord): string {
  const own = n.details?.chef_state;
  if (typeof own === 'string' && (n.state !== 'new' || own === 'ready')) return own;
  if (n.state === 'ready') return 'ready';
  return n.state === 'running' ? 'running' : n.state === 'finished' ? 'complete' : n.state === 'skipped' ? 'aborted' : n.state;
}

export class ChefJobs {
  private readonly r: Redis & BusyScripts;

  constructor(private readonly o: ChefJobsOptions) {
    const lua = (name: string) => readFileSync(projectPath('orchestrator', 'chef', 'lua', name), 'utf8');
    o.redis.defineCommand('chefBusyClaim', { numberOfKeys: 1, lua: lua('chef-busy-claim-1.lua') });
    o.redis.defineCommand('chefBusyRenew', { numberOfKeys: 1, lua: lua('chef-busy-renew-1.lua') });
    o.redis.defineCommand('chefDeleteIfHolder', { numberOfKeys: 1, lua: lua('chef-delete-if-holder-1.lua') });
    this.r = o.redis as Redis & BusyScripts;
    // Command jobs only (Chef's): other faces' runs cost no Redis here.
    o.engine.on('nodeStarted', (jobId, node, type) => void (isCommandJob(type) && this.renewBusy(jobId, node)));
    o.engine.on('nodeEnded', (jobId, node, _state, type) => void (isCommandJob(type) && this.release(node, jobId)));
    o.engine.on('jobEnded', (jobId, _state, type) => void (isCommandJob(type) && this.finalize(jobId).catch((err: Error) => o.log.warn({ job: jobId, err: err.message }, 'could not complete a command job'))));
  }

  /** Whether `node` is busy with a command job (through any orchestrator). */
  async isBusy(node: string): Promise<boolean> {
    return (await busyNodes(this.o.redis, this.o.keys, [node])).has(node);
  }

  /**
   * Creates the job (held: it votes first) and starts its vote. Once the job exists the
   * submission is acknowledged: the start events are best effort (Redis may stall right then),
   * and a vote that cannot start or finish here is taken up by the vote check (any orchestrator).
   */
  async submit(spec: ChefJobSpec, owner: string, idempotency?: JobIdempotency): Promise<JobRecord> {
    const { engine, store } = this.o;
    const params = { job_id: '', command: spec.command, run_timeout: spec.run_timeout, capture_output: spec.capture_output, env: spec.env, ...(spec.dir ? { dir: spec.dir } : {}), ...(spec.user ? { user: spec.user } : {}), ...(spec.file ? { file: spec.file } : {}) };
    const action: JobAction = { module: COMMAND_MODULE, action: 'run', params };
    const now = Date.now();
    const job = await engine.submit({
      type: 'command', environment: 'production', params: {}, sensitive: [],
      options: { concurrency: 0, noop: false, timeout_s: spec.run_timeout },
      owner, scope: { nodes: spec.nodes }, nodes: spec.nodes, action,
      fields: { chef_state: ChefJobState.voting, chef: JSON.stringify(spec), updated_ms: now },
      ...(idempotency ? { idempotency } : {}),
    }, { hold: true });
    const start = { command: spec.command, run_timeout: spec.run_timeout, user: spec.user ?? null, quorum: spec.quorum, node_count: spec.nodes.length };
    await store.appendEvent(job.id, 'chef_start', start, now).catch((err: Error) => this.o.log.warn({ job: job.id, err: err.message }, 'could not record the start of a command job'));
    await this.orgEvent(spec.org, 'start', { job: job.id, ...start }, now).catch((err: Error) => this.o.log.warn({ job: job.id, err: err.message }, 'could not add a job start to the organisation feed'));
    // The check first: should this process die while it votes, another takes the vote up.
    await this.o.votes.arm(job.id, this.voteLeaseMs()).catch((err: Error) => this.o.log.warn({ job: job.id, err: err.message }, 'could not arm the check of a vote (a restart arms it)'));
    void this.holdAndVote(job.id, spec).catch((err: Error) => this.o.log.error({ job: job.id, err: err.message }, 'voting failed'));
    return job;
  }

  /** Aborts a job (Chef's abort): nothing more starts, and running commands are killed. */
  async abort(jobId: string, login: string): Promise<void> {
    await this.o.engine.stop(jobId, login, true);
  }

  async spec(jobId: string): Promise<ChefJobSpec | null> {
    const [raw] = await this.o.store.jobFields(jobId, 'chef');
    return raw ? (JSON.parse(raw) as ChefJobSpec) : null;
  }

  /** Starts taking vote checks; after a restart, every job not past its vote gets one now. */
  async recover(): Promise<void> {
    this.o.votes.start((jobId) => this.checkVote(jobId));
    for (const id of await this.o.store.activeJobIds()) {
      const [state, held] = await this.o.store.jobFields(id, 'chef_state', 'held');
      if (voteUnfinished(state, held)) await this.o.votes.arm(id, 0);
    }
  }

  private voteLeaseMs(): number {
    return this.o.votingTimeoutS * 1000 + CHEF_VOTE_MARGIN_MS;
  }

  /**
   * A vote check, due when the vote should be over: a job still voting, or decided and not yet
   * carried out, is taken up here once nobody holds its vote (its orchestrator died).
   */
  private async checkVote(jobId: string): Promise<void> {
    const [state, raw, held] = await this.o.store.jobFields(jobId, 'chef_state', 'chef', 'held');
    if (!raw || !state) return;
    const jobState = await this.o.store.jobState(jobId);
    if (jobState === null || ENDED_JOB_STATES.includes(jobState)) return void (await this.finalize(jobId)); // its Chef end, if it was never written
    if (!voteUnfinished(state, held)) return;
    const spec = JSON.parse(raw) as ChefJobSpec;
    const took = await this.holdAndVote(jobId, spec, () => this.o.log.info({ job: jobId, chef_state: state }, 'taking up the vote of a command job'));
    if (!took) throw new BatonError(ChefVoteErrorCode.held, `the vote of job ${jobId} is held by another orchestrator`);
  }

  /** Votes while holding the job's vote lease; false (nothing done) when another orchestrator has it. */
  private async holdAndVote(jobId: string, spec: ChefJobSpec, onHeld: () => void = () => {}): Promise<boolean> {
    const token = await this.o.votes.acquire(jobId, this.voteLeaseMs());
    if (!token) return false;
    onHeld();
    try {
      await this.vote(jobId, spec);
    } finally {
      await this.o.votes.release(jobId, token);
    }
    return true;
  }

  /**
   * The vote, from wherever it was left: the nodes not asked yet (or whose answer was never
   * recorded) get `command commit`, then the decision is taken and carried out. Each step is
   * kept in Redis before the next, so an orchestrator taking it up repeats nothing done.
   */
  private async vote(jobId: string, spec: ChefJobSpec): Promise<void> {
    const { store, client, inventory, log } = this.o;
    if ((await store.jobFields(jobId, 'chef_state'))[0] === ChefJobState.voting) {
      const deadline = Date.now() + this.o.votingTimeoutS * 1000;
      const nodes = (await store.getNodes(jobId)).filter((n) => n.state === 'new' && n.details?.chef_state === undefined).map((n) => n.name);
      const commit = { ...(await store.getAction<JobAction>(jobId))!.params, job_id: jobId };
      await Promise.all(nodes.map(async (node) => {
        if (!inventory.isConnected(node)) return this.refuse(jobId, node, 'unavailable', 'the node is not connected');
        let reply;
        try {
          reply = await client.request(pxpRequest(agentUri(node), { transaction_id: `commit-${jobId}-${newMessageId()}`, module: COMMAND_MODULE, action: 'commit', params: commit }, true), Math.max(1, deadline - Date.now()));
        } catch (err) {
          return this.refuse(jobId, node, 'unavailable', `no answer to the commit: ${(err as Error).message}`);
        }
        const results = (reply.data as { results?: { ack?: boolean; reason?: string; code?: string } }).results;
        if (reply.message_type !== PxpMessageType.blockingResponse || !results) {
          return this.refuse(jobId, node, 'nacked', `the agent refused the commit: ${String((reply.data as { description?: unknown }).description ?? reply.message_type)}`);
        }
        if (!results.ack) return this.refuse(jobId, node, 'nacked', results.reason ?? 'nacked', results.code);
        await this.claimBusy(jobId, node, (this.o.votingTimeoutS + spec.run_timeout) * 1000 + CHEF_BUSY_MARGIN_MS);
        await store.transition(jobId, { name: node, state: 'new', details: { chef_state: 'ready' } }, ['new'], { type: 'quorum_vote', details: { status: 'success' } });
      }));
      const ready = (await store.getNodes(jobId)).filter((n) => n.state === 'new' && n.details?.chef_state === 'ready').length;
      const now = Date.now();
      const stopped = isStopping(await store.jobState(jobId));
      const met = !stopped && ready >= spec.quorum && ready > 0;
      await store.setJobFields(jobId, { chef_state: met || stopped ? ChefJobState.running : ChefJobState.quorumFailed, updated_ms: now });
      if (!stopped) {
        await store.appendEvent(jobId, met ? 'quorum_succeeded' : 'quorum_failed', { ready, quorum: spec.quorum }, now);
        log.info({ job: jobId, ready, quorum: spec.quorum }, met ? 'quorum succeeded' : 'quorum failed');
      }
    }
    await this.carryOut(jobId);
  }

  /** Carries out a decided vote: the runs begin, or (quorum failed, or stopped) ready nodes are let go. */
  private async carryOut(jobId: string): Promise<void> {
    const { store, engine } = this.o;
    const [state] = await store.jobFields(jobId, 'chef_state');
    const stopped = isStopping(await store.jobState(jobId));
    const ready = (await store.getNodes(jobId)).filter((n) => n.state === 'new' && n.details?.chef_state === 'ready').map((n) => n.name);
    if (state === ChefJobState.running && stopped) {
      // Stopped while it voted: nothing runs, and the nodes that acked are let go.
      await Promise.all(ready.map((node) => this.releaseNode(jobId, node)));
    } else if (state === ChefJobState.running) {
      await engine.begin(jobId);
    } else if (state === ChefJobState.quorumFailed) {
      await Promise.all(ready.map(async (node) => {
        await engine.settle(jobId, node, 'skipped', { chef_state: 'was_ready', message: 'ready, but the quorum was not met' }, { type: 'node_skipped' });
        await this.releaseNode(jobId, node);
      }));
    }
    if (ENDED_JOB_STATES.includes((await store.jobState(jobId))!)) await this.finalize(jobId);
  }

  private async refuse(jobId: string, node: string, state: 'nacked' | 'unavailable', message: string, code?: string): Promise<void> {
    await this.o.engine.settle(jobId, node, 'skipped', { chef_state: state, message, ...(code ? { code } : {}) }, {
      type: 'quorum_vote',
      details: { status: state === 'nacked' ? 'failure' : 'unavailable', message },
    });
  }

  /** A node that acked holds itself for the job until told (or until its commitment lapses). */
  private async releaseNode(jobId: string, node: string): Promise<void> {
    await this.release(node, jobId);
    const { client, log } = this.o;
    await client.request(pxpRequest(agentUri(node), { transaction_id: `release-${jobId}-${newMessageId()}`, module: COMMAND_MODULE, action: 'release', params: { job_id: jobId } }, true), RELEASE_TIMEOUT_MS)
      .catch((err: Error) => log.warn({ job: jobId, node, err: err.message }, 'could not release a node from its commitment'));
  }

  /**
   * Marks the node busy with the job. The node acked, so the agent holds no other job: a mark of
   * another job found in its place is stale (that job's end was never recorded, or it let the
   * commitment lapse) and is replaced, but only if it is still the one read.
   */
  private async claimBusy(jobId: string, node: string, ttlMs: number): Promise<void> {
    const key = this.o.keys.chefBusy(node);
    const held = await this.r.chefBusyClaim(key, jobId, ttlMs, '');
    if (held === 1) return;
    const again = await this.r.chefBusyClaim(key, jobId, ttlMs, String(held));
    if (again === 1) this.o.log.info({ job: jobId, node, stale_job: String(held) }, 'the node acked: it replaced the stale busy mark of another job');
    else this.o.log.warn({ job: jobId, node, holder: String(again) }, 'the node acked, but another job marked it busy meanwhile; that mark stays');
  }

  /** A command job's node run started: its busy mark, if it still has it, lasts the run (timeout) from now. */
  private async renewBusy(jobId: string, node: string): Promise<void> {
    try {
      const spec = await this.spec(jobId);
      if (spec) await this.r.chefBusyRenew(this.o.keys.chefBusy(node), jobId, spec.run_timeout * 1000 + CHEF_BUSY_MARGIN_MS);
    } catch (err) {
      this.o.log.warn({ job: jobId, node, err: (err as Error).message }, 'could not renew the busy mark of a node');
    }
  }

  /** Clears the node's busy mark if this job holds it. */
  private async release(node: string, jobId: string): Promise<void> {
    try {
      await this.r.chefDeleteIfHolder(this.o.keys.chefBusy(node), jobId);
    } catch (err) {
      this.o.log.warn({ job: jobId, node, err: (err as Error).message }, 'could not clear the busy mark of a node (it expires)');
    }
  }

  /** The job ended in the engine: its Chef end state, feed event and organisation event. */
  private async finalize(jobId: string): Promise<void> {
    const { store } = this.o;
    const [state, raw] = await store.jobFields(jobId, 'chef_state', 'chef');
    if (!state || !raw || state === ChefJobState.voting) return;
    if (!(await store.claimJobField(jobId, 'chef_done', Date.now()))) return; // completed once, by someone else
    const nodes = await store.getNodes(jobId);
    await Promise.all(nodes.map((n) => this.release(n.name, jobId)));
    let end: string = state;
    if (state !== ChefJobState.quorumFailed) {
      const jobState = await store.jobState(jobId);
      end = jobState === 'stopped' ? ChefJobState.aborted : nodes.some((n) => n.details?.chef_state === 'timed_out') ? ChefJobState.timedOut : ChefJobState.complete;
    }
    const now = Date.now();
    await store.setJobFields(jobId, { chef_state: end, updated_ms: now });
    await store.appendEvent(jobId, 'chef_job_complete', { status: end }, now);
    await this.orgEvent((JSON.parse(raw) as ChefJobSpec).org, 'job_complete', { job: jobId, status: end }, now);
    this.o.log.info({ job: jobId, status: end }, 'command job complete');
  }

  /** Appends to the organisation feed, dropping what has expired. */
  private async orgEvent(org: string, type: string, data: Record<string, unknown>, nowMs: number): Promise<void> {
    const key = this.o.keys.orgEvents(org);
    await this.o.redis.xadd(key, 'MINID', String(nowMs - this.o.orgFeedExpirationS * 1000), '*', 'event', JSON.stringify({ type, timestamp: new Date(nowMs).toISOString(), ...data }));
  }
}
