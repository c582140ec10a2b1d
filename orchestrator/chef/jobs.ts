// Chef Push Jobs on the shared engine: a `command` job votes first (every node gets `command
// commit`; ack → ready, nack → nacked, silence or no session → unavailable), then runs on the
// ready nodes if at least `quorum` acked, else ends quorum_failed. Chef's job and node states are
// kept beside the engine's (job field `chef_state`, node details `chef_state`).
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { newMessageId } from '../../protocol/pcp-v2.ts';
import { pxpRequest, PxpMessageType } from '../../protocol/pxp.ts';
import type { Engine, JobAction } from '../engine/engine.ts';
import type { Keys } from '../engine/keys.ts';
import type { JobIdempotency, JobRecord, JobStore, NodeRecord } from '../engine/store.ts';
import { ENDED_JOB_STATES } from '../engine/store.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import { agentUri } from '../pcp/pxp-runner.ts';

export const ChefJobState = {
  voting: 'voting', running: 'running', complete: 'complete', quorumFailed: 'quorum_failed', timedOut: 'timed_out', aborted: 'aborted', crashed: 'crashed',
} as const;
export type ChefJobState = (typeof ChefJobState)[keyof typeof ChefJobState];
/** How long a ready node has to confirm it was released after a failed quorum. */
export const RELEASE_TIMEOUT_MS = 10_000;
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
}

/** A node's state as Chef shows it. */
export function chefNodeState(n: NodeRecord): string {
  const own = n.details?.chef_state;
  if (typeof own === 'string' && (n.state !== 'new' || own === 'ready')) return own;
  if (n.state === 'ready') return 'ready';
  return n.state === 'running' ? 'running' : n.state === 'finished' ? 'complete' : n.state === 'skipped' ? 'aborted' : n.state;
}

export class ChefJobs {
  /** Nodes that acked a command job and have not ended it (availability: busy). */
  private readonly busy = new Map<string, number>();

  constructor(private readonly o: ChefJobsOptions) {
    o.engine.on('nodeEnded', (jobId, node) => this.release(node, jobId));
    o.engine.on('jobEnded', (jobId) => void this.finalize(jobId).catch((err: Error) => o.log.warn({ job: jobId, err: err.message }, 'could not complete a command job')));
  }

  isBusy(node: string): boolean {
    return this.busy.has(node);
  }

  /**
   * Creates the job (held: it votes first) and starts its vote. Once the job exists the
   * submission is acknowledged: the start events are best effort (Redis may stall right then),
   * and a vote that cannot start now is taken at the next start (recover).
   */
  async submit(spec: ChefJobSpec, owner: string, idempotency?: JobIdempotency): Promise<JobRecord> {
    const { engine, store } = this.o;
    const params = { job_id: '', command: spec.command, run_timeout: spec.run_timeout, capture_output: spec.capture_output, env: spec.env, ...(spec.dir ? { dir: spec.dir } : {}), ...(spec.user ? { user: spec.user } : {}), ...(spec.file ? { file: spec.file } : {}) };
    const action: JobAction = { module: 'command', action: 'run', params };
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
    void this.vote(job.id, spec).catch((err: Error) => this.o.log.error({ job: job.id, err: err.message }, 'voting failed'));
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

  /** After a restart: votes that were under way are taken again; ended jobs get their Chef end. */
  async recover(): Promise<void> {
    for (const id of await this.o.store.activeJobIds()) {
      const [state, raw] = await this.o.store.jobFields(id, 'chef_state', 'chef');
      if (state === ChefJobState.voting && raw) void this.vote(id, JSON.parse(raw) as ChefJobSpec).catch((err: Error) => this.o.log.error({ job: id, err: err.message }, 'voting failed'));
    }
  }

  private async vote(jobId: string, spec: ChefJobSpec): Promise<void> {
    const { store, engine, client, inventory, log } = this.o;
    const deadline = Date.now() + this.o.votingTimeoutS * 1000;
    const nodes = (await store.getNodes(jobId)).filter((n) => n.state === 'new' && n.details?.chef_state === undefined).map((n) => n.name);
    const commit = { ...(await store.getAction<JobAction>(jobId))!.params, job_id: jobId };
    const acked: string[] = [];
    await Promise.all(nodes.map(async (node) => {
      if (!inventory.isConnected(node)) return this.refuse(jobId, node, 'unavailable', 'the node is not connected');
      let reply;
      try {
        reply = await client.request(pxpRequest(agentUri(node), { transaction_id: `commit-${jobId}-${newMessageId()}`, module: 'command', action: 'commit', params: commit }, true), Math.max(1, deadline - Date.now()));
      } catch (err) {
        return this.refuse(jobId, node, 'unavailable', `no answer to the commit: ${(err as Error).message}`);
      }
      const results = (reply.data as { results?: { ack?: boolean; reason?: string; code?: string } }).results;
      if (reply.message_type !== PxpMessageType.blockingResponse || !results) {
        return this.refuse(jobId, node, 'nacked', `the agent refused the commit: ${String((reply.data as { description?: unknown }).description ?? reply.message_type)}`);
      }
      if (!results.ack) return this.refuse(jobId, node, 'nacked', results.reason ?? 'nacked', results.code);
      this.busy.set(node, Number(jobId));
      acked.push(node);
      await store.transition(jobId, { name: node, state: 'new', details: { chef_state: 'ready' } }, ['new'], { type: 'quorum_vote', details: { status: 'success' } });
    }));
    const ready = (await store.getNodes(jobId)).filter((n) => n.state === 'new' && n.details?.chef_state === 'ready').map((n) => n.name);
    const now = Date.now();
    const stopped = ['stopping', 'stopped'].includes((await store.jobState(jobId)) ?? '');
    if (stopped) {
      // Stopped while it voted: nothing runs, and the nodes that acked are let go.
      await store.setJobFields(jobId, { chef_state: ChefJobState.running, updated_ms: now });
      await Promise.all(acked.map((node) => this.releaseNode(jobId, node)));
    } else if (ready.length >= spec.quorum && ready.length > 0) {
      await store.setJobFields(jobId, { chef_state: ChefJobState.running, updated_ms: now });
      await store.appendEvent(jobId, 'quorum_succeeded', { ready: ready.length, quorum: spec.quorum }, now);
      log.info({ job: jobId, ready: ready.length, quorum: spec.quorum }, 'quorum succeeded');
      await engine.begin(jobId);
    } else {
      await store.setJobFields(jobId, { chef_state: ChefJobState.quorumFailed, updated_ms: now });
      await store.appendEvent(jobId, 'quorum_failed', { ready: ready.length, quorum: spec.quorum }, now);
      log.info({ job: jobId, ready: ready.length, quorum: spec.quorum }, 'quorum failed');
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
    this.release(node, jobId);
    const { client, log } = this.o;
    await client.request(pxpRequest(agentUri(node), { transaction_id: `release-${jobId}-${newMessageId()}`, module: 'command', action: 'release', params: { job_id: jobId } }, true), RELEASE_TIMEOUT_MS)
      .catch((err: Error) => log.warn({ job: jobId, node, err: err.message }, 'could not release a node from its commitment'));
  }

  private release(node: string, jobId: string): void {
    if (this.busy.get(node) === Number(jobId)) this.busy.delete(node);
  }

  /** The job ended in the engine: its Chef end state, feed event and organisation event. */
  private async finalize(jobId: string): Promise<void> {
    const { store } = this.o;
    const [state, raw] = await store.jobFields(jobId, 'chef_state', 'chef');
    if (!state || !raw || state === ChefJobState.voting) return;
    if (!(await store.claimJobField(jobId, 'chef_done', Date.now()))) return; // completed once, by someone else
    const nodes = await store.getNodes(jobId);
    for (const n of nodes) this.release(n.name, jobId);
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
