// Plan job records in Redis, shared by every orchestrator on it: the plan job (its compiled plan,
// parameters, owner, state, result), its steps (state, engine jobs, result), events and history.
// State changes go through one Lua script (plan-state-4.lua) so that history, events and the plan
// job feed never disagree with the state.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { projectPath } from '../../lib/paths.ts';
import { JOB_FEED_MAX_ENTRIES } from '../engine/store.ts';
import { PlanKeys } from './keys.ts';
import type { CompiledPlan } from './loader.ts';

export const PlanJobState = { pending: 'pending', running: 'running', success: 'success', failure: 'failure', stopping: 'stopping', stopped: 'stopped' } as const;
export type PlanJobState = (typeof PlanJobState)[keyof typeof PlanJobState];
export const ENDED_PLAN_STATES: readonly PlanJobState[] = ['success', 'failure', 'stopped'];

export const StepState = { running: 'running', success: 'success', failure: 'failure', stopped: 'stopped' } as const;
export type StepState = (typeof StepState)[keyof typeof StepState];

export interface PlanJobRecord {
  id: string;
  state: PlanJobState;
  plan_name: string;
  environment: string;
  description: string;
  params: Record<string, unknown>;
  sensitive: string[];
  owner: string;
  created_ms: number;
  started_ms?: number;
  finished_ms?: number;
  result?: unknown;
  scheduled_job?: { id: string; scheduled_for: string; late: boolean };
}

export interface StepRecord {
  /** "1", "2", "3.1" (the first step of the third step's sub-plan). */
  path: string;
  name: string | null;
  kind: string;
  /** Task name, command, script, or plan name. */
  what: string;
  state: StepState;
  /** The nodes the step runs on (resolved once, at its start). */
  nodes?: string[];
  job_ids: string[];
  /** The step's result: a task-like step's StepResult, a plan step's return value, or an error. */
  result?: unknown;
  error?: { kind: string; msg: string; details: Record<string, unknown> };
  start_ms: number;
  finish_ms?: number;
}

export interface PlanEvent {
  id: number;
  type: string;
  timestamp: string;
  details: Record<string, unknown>;
}

interface Scripts {
  planState(...args: (string | number)[]): Promise<number>;
}

export class PlanStore {
  readonly keys: PlanKeys;
  private readonly r: Redis & Scripts;

  constructor(redis: Redis, prefix: string) {
    this.keys = new PlanKeys(prefix);
    redis.defineCommand('planState', { numberOfKeys: 4, lua: readFileSync(projectPath('orchestrator', 'plans', 'lua', 'plan-state-4.lua'), 'utf8') });
    this.r = redis as Redis & Scripts;
  }

  /**
   * Creates a plan job, in one MULTI with its entry in the unqueued set and, for a keyed run (a
   * schedule's occurrence), the key's `done` record (`idempotency`: key, the record as JSON, its TTL).
   */
  async create(job: Omit<PlanJobRecord, 'id' | 'state' | 'created_ms'>, plan: CompiledPlan, nowMs = Date.now(), idempotency?: { key: string; record: (id: string) => string; ttlMs: number }): Promise<PlanJobRecord> {
    const id = String(await this.r.incr(this.keys.sequence()));
    const k = this.keys;
    const iso = new Date(nowMs).toISOString();
    const m = this.r.multi();
    m.hset(k.planJob(id), {
      id, state: 'pending', plan_name: job.plan_name, environment: job.environment, description: job.description,
      params: JSON.stringify(job.params), sensitive: JSON.stringify(job.sensitive), owner: job.owner, created_ms: String(nowMs),
      plan: JSON.stringify(plan), ...(job.scheduled_job ? { scheduled_job: JSON.stringify(job.scheduled_job) } : {}),
    });
    m.rpush(k.history(id), JSON.stringify({ state: 'pending', enter_time: iso }));
    m.zadd(k.index(), nowMs, id);
    m.sadd(k.unqueued(), id);
    // The key is this run's reservation (pending): it becomes `done`, naming this plan job, with it.
    if (idempotency) m.set(idempotency.key, idempotency.record(id), 'PX', idempotency.ttlMs, 'XX');
    m.xadd(k.feed(), 'MAXLEN', '~', JOB_FEED_MAX_ENTRIES, '*', 'plan_job', id, 'state', 'pending');
    await m.exec();
    return { ...job, id, state: 'pending', created_ms: nowMs };
  }

  /** Plan jobs created and maybe never queued. */
  unqueued(): Promise<string[]> {
    return this.r.smembers(this.keys.unqueued());
  }

  /** A plan job is in the queue now (or ended): the unqueued set lets go of it. */
  async queued(id: string): Promise<void> {
    await this.r.srem(this.keys.unqueued(), id);
  }

  async get(id: string): Promise<PlanJobRecord | null> {
    const h = await this.r.hgetall(this.keys.planJob(id));
    if (!h.id) return null;
    return {
      id: h.id, state: h.state as PlanJobState, plan_name: h.plan_name!, environment: h.environment!, description: h.description ?? '',
      params: JSON.parse(h.params!) as Record<string, unknown>, sensitive: JSON.parse(h.sensitive!) as string[], owner: h.owner!,
      created_ms: Number(h.created_ms),
      ...(h.started_ms ? { started_ms: Number(h.started_ms) } : {}),
      ...(h.finished_ms ? { finished_ms: Number(h.finished_ms) } : {}),
      ...(h.result !== undefined ? { result: JSON.parse(h.result) as unknown } : {}),
      ...(h.scheduled_job ? { scheduled_job: JSON.parse(h.scheduled_job) as PlanJobRecord['scheduled_job'] } : {}),
    };
  }

  async state(id: string): Promise<PlanJobState | null> {
    return (await this.r.hget(this.keys.planJob(id), 'state')) as PlanJobState | null;
  }

  async plan(id: string): Promise<CompiledPlan | null> {
    const v = await this.r.hget(this.keys.planJob(id), 'plan');
    return v ? (JSON.parse(v) as CompiledPlan) : null;
  }

  /** Moves the plan job to `to` from one of `from`, with an event; false when it was not in one of them. */
  async transition(id: string, to: PlanJobState, from: readonly PlanJobState[], event: { type: string; details?: Record<string, unknown> } | null, fields: Record<string, string> = {}, nowMs = Date.now()): Promise<boolean> {
    const k = this.keys;
    const iso = new Date(nowMs).toISOString();
    const ev = event ? JSON.stringify({ type: event.type, timestamp: iso, details: { 'plan-id': id, ...event.details } }) : '';
    const ends = ENDED_PLAN_STATES.includes(to) ? '1' : '0';
    return (await this.r.planState(k.planJob(id), k.history(id), k.events(id), k.feed(), to, from.join(','), iso, nowMs, ev, id, JSON.stringify(fields), ends, JOB_FEED_MAX_ENTRIES)) === 1;
  }

  async history(id: string): Promise<{ state: string; enter_time: string }[]> {
    return (await this.r.lrange(this.keys.history(id), 0, -1)).map((v) => JSON.parse(v) as { state: string; enter_time: string });
  }

  async appendEvent(id: string, type: string, details: Record<string, unknown>, nowMs = Date.now()): Promise<void> {
    await this.r.xadd(this.keys.events(id), '0-*', 'event', JSON.stringify({ type, timestamp: new Date(nowMs).toISOString(), details }));
  }

  /** Events from id `start` on (inclusive), at most `count`. */
  async events(id: string, start: number, count: number): Promise<PlanEvent[]> {
    const entries = await this.r.xrange(this.keys.events(id), `0-${Math.max(1, start)}`, '+', 'COUNT', count);
    return entries.map(([eid, fields]) => ({ id: Number(eid.split('-')[1]), ...(JSON.parse(fields[1]!) as Omit<PlanEvent, 'id'>) }));
  }

  async step(id: string, path: string): Promise<StepRecord | null> {
    const v = await this.r.hget(this.keys.steps(id), path);
    return v ? (JSON.parse(v) as StepRecord) : null;
  }

  async steps(id: string): Promise<StepRecord[]> {
    const h = await this.r.hgetall(this.keys.steps(id));
    const order = (p: string) => p.split('.').map(Number);
    return Object.values(h).map((v) => JSON.parse(v) as StepRecord).sort((a, b) => {
      const [x, y] = [order(a.path), order(b.path)];
      for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
      return 0;
    });
  }

  async putStep(id: string, rec: StepRecord): Promise<void> {
    await this.r.hset(this.keys.steps(id), rec.path, JSON.stringify(rec));
  }

  /** The engine job of a step's batch, if one was recorded. */
  async batchJob(id: string, path: string, batch: number): Promise<string | null> {
    return this.r.hget(this.keys.stepJobs(id), `${path}#${batch}`);
  }

  /** Records a batch's engine job; true for the one caller that recorded it first. */
  async recordBatchJob(id: string, path: string, batch: number, jobId: string): Promise<boolean> {
    return (await this.r.hsetnx(this.keys.stepJobs(id), `${path}#${batch}`, jobId)) === 1;
  }

  /** Every engine job the plan job's steps started. */
  async allStepJobs(id: string): Promise<string[]> {
    return Object.values(await this.r.hgetall(this.keys.stepJobs(id)));
  }

  /** Plan job ids, newest first unless `order` is asc, with the total. */
  async ids(opts: { limit: number; offset: number; order: 'asc' | 'desc' }): Promise<{ ids: string[]; total: number }> {
    const total = await this.r.zcard(this.keys.index());
    const stop = opts.limit > 0 ? opts.offset + opts.limit - 1 : -1;
    const ids = opts.order === 'asc' ? await this.r.zrange(this.keys.index(), String(opts.offset), String(stop)) : await this.r.zrevrange(this.keys.index(), opts.offset, stop);
    return { ids, total };
  }

  async markStarted(id: string, nowMs = Date.now()): Promise<void> {
    await this.r.hsetnx(this.keys.planJob(id), 'started_ms', String(nowMs));
  }
}
