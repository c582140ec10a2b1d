// Job records, node records, events and state history in Redis. Every node state change goes
// through one Lua script, so counts, events and the job's own end never disagree.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { projectPath } from '../../lib/paths.ts';
import { Keys } from './keys.ts';

export const JobState = { new: 'new', ready: 'ready', running: 'running', stopping: 'stopping', stopped: 'stopped', finished: 'finished', failed: 'failed' } as const;
export type JobState = (typeof JobState)[keyof typeof JobState];
export const NodeState = { new: 'new', ready: 'ready', running: 'running', finished: 'finished', failed: 'failed', errored: 'errored', skipped: 'skipped' } as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];
export const TERMINAL_NODE_STATES: readonly NodeState[] = ['finished', 'failed', 'errored', 'skipped'];
export const ENDED_JOB_STATES: readonly JobState[] = ['stopped', 'finished', 'failed'];

export type JobType = 'task' | 'deploy' | 'command' | 'deployment';

export interface JobOptions {
  concurrency: number; // 0 = unlimited
  noop: boolean;
  timeout_s: number;
  description?: string;
  /** Some nodes wait for others (application components): see NewJob.deps. */
  ordered?: boolean;
  /** Deploy jobs: enforce_environment and the Puppet flags asked for. */
  enforce_environment?: boolean;
  debug?: boolean;
  trace?: boolean;
  evaltrace?: boolean;
}

export interface NewJob {
  type: JobType;
  environment: string;
  task?: string;
  params: Record<string, unknown>;
  sensitive: string[];
  options: JobOptions;
  owner: string;
  scope: Record<string, unknown>;
  nodes: string[];
  /** What each node runs (for PXP: {module, action, params}); stored with the job, not shown by the API. */
  action: unknown;
  /** Nodes that may start only once these other nodes of the job finished (without failure). */
  deps?: Record<string, string[]>;
  /** Runs wait for Engine.begin (a Chef job votes first); kept with the job so a restart waits too. */
  held?: boolean;
  /** A face's own fields of the job record, written with it (Chef: its state and spec). */
  fields?: Record<string, string | number>;
}

export interface JobRecord extends Omit<NewJob, 'nodes' | 'action'> {
  id: string;
  state: JobState;
  created_ms: number;
  finished_ms?: number;
  node_count: number;
}

export interface NodeRecord {
  name: string;
  state: NodeState;
  transaction_uuid?: string;
  start_ms?: number;
  finish_ms?: number;
  result?: unknown;
  details?: Record<string, unknown>;
  latest_event_id?: number;
}

export interface JobEvent {
  id: number;
  type: string;
  timestamp: string;
  details: Record<string, unknown>;
  message?: string;
}

interface Scripts {
  nodeTransition(...args: (string | number)[]): Promise<[string, string] | null>;
  refill(...args: (string | number)[]): Promise<string[]>;
  stop(...args: (string | number)[]): Promise<number>;
  release(...args: (string | number)[]): Promise<[string[], string[]]>;
}

function lua(name: string): string {
  return readFileSync(projectPath('orchestrator', 'engine', 'lua', name), 'utf8');
}

export class JobStore {
  readonly keys: Keys;
  private readonly r: Redis & Scripts;

  constructor(redis: Redis, prefix: string) {
    this.keys = new Keys(prefix);
    redis.defineCommand('nodeTransition', { numberOfKeys: 5, lua: lua('node-transition-5.lua') });
    redis.defineCommand('refill', { numberOfKeys: 4, lua: lua('refill-4.lua') });
    redis.defineCommand('stop', { numberOfKeys: 3, lua: lua('stop-3.lua') });
    redis.defineCommand('release', { numberOfKeys: 4, lua: lua('release-4.lua') });
    this.r = redis as Redis & Scripts;
  }

  /** The dataset's epoch, made once. */
  async epoch(): Promise<string> {
    await this.r.set(this.keys.epoch(), randomUUID().slice(0, 8), 'NX');
    return (await this.r.get(this.keys.epoch()))!;
  }

  async createJob(job: NewJob, nowMs = Date.now()): Promise<JobRecord> {
    const id = String(await this.r.incr(this.keys.jobSequence()));
    const iso = new Date(nowMs).toISOString();
    const record: JobRecord = {
      id, type: job.type, state: 'running', environment: job.environment, ...(job.task ? { task: job.task } : {}),
      params: job.params, sensitive: job.sensitive, options: job.options, owner: job.owner, scope: job.scope,
      created_ms: nowMs, node_count: job.nodes.length,
    };
    const m = this.r.multi();
    m.hset(this.keys.job(id), {
      id, type: job.type, state: 'running', environment: job.environment, task: job.task ?? '',
      params: JSON.stringify(job.params), sensitive: JSON.stringify(job.sensitive), options: JSON.stringify(job.options),
      owner: job.owner, scope: JSON.stringify(job.scope), created_ms: nowMs, node_count: job.nodes.length,
      action: JSON.stringify(job.action),
      ...(job.held ? { held: 1 } : {}),
      ...job.fields,
    });
    m.zadd(this.keys.jobIndex(), nowMs, id);
    if (job.nodes.length > 0) {
      m.hset(this.keys.nodes(id), Object.fromEntries(job.nodes.map((n) => [n, JSON.stringify({ name: n, state: 'new' })])));
      m.hset(this.keys.counts(id), 'new', job.nodes.length);
      const deps = job.deps ?? {};
      const free = job.nodes.filter((n) => !deps[n]?.length);
      const blocked = job.nodes.filter((n) => deps[n]?.length);
      if (free.length > 0) m.rpush(this.keys.pending(id), ...free);
      if (blocked.length > 0) {
        m.sadd(this.keys.blocked(id), ...blocked);
        m.hset(this.keys.deps(id), Object.fromEntries(blocked.map((n) => [n, JSON.stringify(deps[n])])));
      }
    }
    m.rpush(this.keys.history(id), JSON.stringify({ state: 'new', enter_time: iso }), JSON.stringify({ state: 'running', enter_time: iso }));
    await m.exec();
    return record;
  }

  async getJob(id: string): Promise<JobRecord | null> {
    const h = await this.r.hgetall(this.keys.job(id));
    if (!h.id) return null;
    return {
      id: h.id, type: h.type as JobType, state: h.state as JobState, environment: h.environment!, ...(h.task ? { task: h.task } : {}),
      params: JSON.parse(h.params!) as Record<string, unknown>, sensitive: JSON.parse(h.sensitive!) as string[],
      options: JSON.parse(h.options!) as JobOptions, owner: h.owner!, scope: JSON.parse(h.scope!) as Record<string, unknown>,
      created_ms: Number(h.created_ms), ...(h.finished_ms ? { finished_ms: Number(h.finished_ms) } : {}), node_count: Number(h.node_count),
    };
  }

  async jobState(id: string): Promise<JobState | null> {
    return (await this.r.hget(this.keys.job(id), 'state')) as JobState | null;
  }

  /** Job ids, newest first unless `order` is asc, with the total. */
  async jobIds(opts: { limit: number; offset: number; order: 'asc' | 'desc' }): Promise<{ ids: string[]; total: number }> {
    const total = await this.r.zcard(this.keys.jobIndex());
    const stop = opts.limit > 0 ? opts.offset + opts.limit - 1 : -1;
    const ids = opts.order === 'asc'
      ? await this.r.zrange(this.keys.jobIndex(), String(opts.offset), String(stop))
      : await this.r.zrevrange(this.keys.jobIndex(), opts.offset, stop);
    return { ids, total };
  }

  async getNodes(id: string): Promise<NodeRecord[]> {
    const h = await this.r.hgetall(this.keys.nodes(id));
    return Object.values(h).map((v) => JSON.parse(v) as NodeRecord).sort((a, b) => a.name.localeCompare(b.name));
  }

  async getNode(id: string, node: string): Promise<NodeRecord | null> {
    const v = await this.r.hget(this.keys.nodes(id), node);
    return v ? (JSON.parse(v) as NodeRecord) : null;
  }

  async counts(id: string): Promise<Record<string, number>> {
    const h = await this.r.hgetall(this.keys.counts(id));
    return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Number(v)]).filter(([, v]) => (v as number) > 0));
  }

  async history(id: string): Promise<{ state: string; enter_time: string }[]> {
    return (await this.r.lrange(this.keys.history(id), 0, -1)).map((v) => JSON.parse(v) as { state: string; enter_time: string });
  }

  /**
   * Moves a node to `record.state` if it is in one of `from`, appending an event. Returns the
   * event id and the job's end state ('' while it goes on), or null when the move was refused.
   */
  async transition(
    jobId: string,
    record: NodeRecord,
    from: readonly NodeState[],
    event: { type: string; details?: Record<string, unknown>; message?: string } | null,
    nowMs = Date.now(),
  ): Promise<{ eventId: number | null; jobEnd: JobState | '' } | null> {
    const iso = new Date(nowMs).toISOString();
    const { latest_event_id: _ignored, ...rest } = record;
    const eventJson = event ? JSON.stringify({ type: event.type, timestamp: iso, details: { node: record.name, ...event.details }, ...(event.message ? { message: event.message } : {}) }) : '';
    const res = await this.r.nodeTransition(
      this.keys.job(jobId), this.keys.nodes(jobId), this.keys.counts(jobId), this.keys.events(jobId), this.keys.history(jobId),
      record.name, from.join(','), JSON.stringify(rest), record.state, event ? event.type : '', eventJson,
      TERMINAL_NODE_STATES.join(','), iso, nowMs,
    );
    if (!res) return null;
    return { eventId: res[0] ? Number(res[0]) : null, jobEnd: res[1] as JobState | '' };
  }

  /** Pending nodes that may start now under the job's concurrency, already moved to `ready`. */
  refill(jobId: string, concurrency: number): Promise<string[]> {
    return this.r.refill(this.keys.job(jobId), this.keys.pending(jobId), this.keys.nodes(jobId), this.keys.counts(jobId), concurrency, new Date().toISOString());
  }

  /** What every node of the job runs (kept apart from the record the API shows). */
  async getAction<T>(jobId: string): Promise<T | null> {
    const v = await this.r.hget(this.keys.job(jobId), 'action');
    return v ? (JSON.parse(v) as T) : null;
  }

  /** Marks the job stopping (idempotent); returns whether this call changed it. */
  async requestStop(jobId: string, login: string): Promise<boolean> {
    return (await this.r.stop(this.keys.job(jobId), this.keys.events(jobId), this.keys.history(jobId), new Date().toISOString(), login)) === 1;
  }

  /** Takes every node still waiting for its turn or for other nodes (used when a job stops). */
  async drainPending(jobId: string): Promise<string[]> {
    const m = this.r.multi();
    m.lrange(this.keys.pending(jobId), 0, -1);
    m.smembers(this.keys.blocked(jobId));
    m.del(this.keys.pending(jobId), this.keys.blocked(jobId));
    const res = await m.exec();
    return [...((res?.[0]?.[1] as string[] | undefined) ?? []), ...((res?.[1]?.[1] as string[] | undefined) ?? [])];
  }

  /**
   * Ordered jobs: blocked nodes whose prerequisites all finished go to the pending list; those
   * with a prerequisite that did not finish are returned as `skip` ([node, prerequisite]).
   */
  async release(jobId: string): Promise<{ ready: string[]; skip: [string, string][] }> {
    const [ready, flat] = await this.r.release(this.keys.blocked(jobId), this.keys.deps(jobId), this.keys.nodes(jobId), this.keys.pending(jobId));
    const skip: [string, string][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) skip.push([flat[i]!, flat[i + 1]!]);
    return { ready, skip };
  }

  /** A blocked node was skipped: it waits no more. */
  async unblock(jobId: string, node: string): Promise<void> {
    await this.r.srem(this.keys.blocked(jobId), node);
  }

  /** Appends an event of a face's own (a Chef vote, start or completion) to the job's stream. */
  async appendEvent(jobId: string, type: string, details: Record<string, unknown>, nowMs = Date.now()): Promise<number> {
    const id = await this.r.xadd(this.keys.events(jobId), '0-*', 'event', JSON.stringify({ type, timestamp: new Date(nowMs).toISOString(), details }));
    return Number(id!.split('-')[1]);
  }

  /** Fields a face keeps on the job record (Chef: its job state and spec). */
  async setJobFields(jobId: string, fields: Record<string, string | number>): Promise<void> {
    await this.r.hset(this.keys.job(jobId), fields);
  }

  async jobFields(jobId: string, ...names: string[]): Promise<(string | null)[]> {
    return this.r.hmget(this.keys.job(jobId), ...names);
  }

  /** Sets a field only if it is not set yet; true for the one caller that set it. */
  async claimJobField(jobId: string, field: string, value: string | number): Promise<boolean> {
    return (await this.r.hsetnx(this.keys.job(jobId), field, value)) === 1;
  }

  async clearJobField(jobId: string, field: string): Promise<void> {
    await this.r.hdel(this.keys.job(jobId), field);
  }

  /** Events from id `start` on (inclusive), at most `count`. */
  async events(jobId: string, start: number, count = 1000): Promise<JobEvent[]> {
    const entries = await this.r.xrange(this.keys.events(jobId), `0-${Math.max(1, start)}`, '+', 'COUNT', count);
    return entries.map(([id, fields]) => ({ id: Number(id.split('-')[1]), ...(JSON.parse(fields[1]!) as Omit<JobEvent, 'id'>) }));
  }

  /** Ids of jobs that have not ended (for recovery after a restart). */
  async activeJobIds(): Promise<string[]> {
    const ids = await this.r.zrange(this.keys.jobIndex(), '0', '-1');
    const out: string[] = [];
    for (const id of ids) {
      const state = await this.r.hget(this.keys.job(id), 'state');
      if (state && !ENDED_JOB_STATES.includes(state as JobState)) out.push(id);
    }
    return out;
  }
}
