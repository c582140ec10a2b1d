// Schedule records in Redis, shared by every orchestrator on it: the schedule's definition (its
// command body, timing and owner) and what its occurrences did (the last run, the last error).
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { projectPath } from '../../lib/paths.ts';
import { ScheduleKeys } from './keys.ts';
import type { ScheduleOptions, Timing } from './timing.ts';

export type ScheduleType = 'task' | 'deploy' | 'plan';

/** What a schedule is: fixed at creation, changed by an update (which raises `revision`). */
export interface ScheduleSpec {
  id: string;
  type: ScheduleType;
  /** The immediate command's body (without the scheduling keys). Sensitive parameters are kept, never shown. */
  body: Record<string, unknown>;
  scheduled_time: string | null;
  schedule_options: ScheduleOptions | null;
  timing: Timing;
  /** Who created it: its jobs are theirs. */
  owner: { login: string; permissions: readonly string[] };
  /** Names of the body's parameters that are sensitive (masked wherever the schedule is shown). */
  sensitive: string[];
  created_ms: number;
  updated_ms: number;
  revision: number;
}

export interface ScheduleRun {
  job_id: string;
  /** `job` for engine jobs, `plan_job` for plan jobs. */
  job_kind: 'job' | 'plan_job';
  scheduled_for: string;
  started_at: string;
  late: boolean;
}

export interface ScheduleFailure {
  scheduled_for: string;
  at: string;
  kind: string;
  msg: string;
}

export interface ScheduleRecord {
  spec: ScheduleSpec;
  last_run: ScheduleRun | null;
  last_error: ScheduleFailure | null;
  runs: number;
}

export type NewScheduleSpec = Omit<ScheduleSpec, 'id' | 'created_ms' | 'updated_ms' | 'revision'>;

interface Scripts {
  scheduleHsetIfExists(key: string, incr: string, ...pairs: string[]): Promise<number>;
}

export class ScheduleStore {
  readonly keys: ScheduleKeys;
  private readonly r: Redis & Scripts;

  constructor(redis: Redis, prefix: string) {
    this.keys = new ScheduleKeys(prefix);
    redis.defineCommand('scheduleHsetIfExists', { numberOfKeys: 1, lua: readFileSync(projectPath('orchestrator', 'schedules', 'lua', 'hset-if-exists-1.lua'), 'utf8') });
    this.r = redis as Redis & Scripts;
  }

  async create(s: NewScheduleSpec, nowMs = Date.now()): Promise<ScheduleSpec> {
    const id = String(await this.r.incr(this.keys.sequence()));
    const spec: ScheduleSpec = { ...s, id, created_ms: nowMs, updated_ms: nowMs, revision: 1 };
    await this.r.multi().hset(this.keys.schedule(id), { spec: JSON.stringify(spec), runs: '0' }).zadd(this.keys.index(), nowMs, id).exec();
    return spec;
  }

  /** Replaces the definition (revision + 1); false when the schedule is gone. */
  async replace(spec: ScheduleSpec): Promise<boolean> {
    return (await this.r.scheduleHsetIfExists(this.keys.schedule(spec.id), '', 'spec', JSON.stringify(spec))) === 1;
  }

  async get(id: string): Promise<ScheduleRecord | null> {
    const h = await this.r.hgetall(this.keys.schedule(id));
    return h.spec ? recordOf(h) : null;
  }

  /** Every schedule, oldest first. */
  async all(): Promise<ScheduleRecord[]> {
    const ids = await this.r.zrange(this.keys.index(), '0', '-1');
    if (ids.length === 0) return [];
    const m = this.r.pipeline();
    for (const id of ids) m.hgetall(this.keys.schedule(id));
    const res = (await m.exec()) ?? [];
    const out: ScheduleRecord[] = [];
    for (const [err, h] of res) {
      if (err) throw err;
      const hash = h as Record<string, string>;
      if (hash.spec) out.push(recordOf(hash));
    }
    return out;
  }

  async remove(id: string): Promise<boolean> {
    const res = await this.r.multi().del(this.keys.schedule(id)).zrem(this.keys.index(), id).exec();
    return Number(res?.[0]?.[1] ?? 0) > 0;
  }

  /** An occurrence started a job: the last run, one more run. */
  async recordRun(id: string, run: ScheduleRun): Promise<void> {
    await this.r.scheduleHsetIfExists(this.keys.schedule(id), 'runs', 'last_run', JSON.stringify(run));
  }

  /** An occurrence could not start its job. */
  async recordError(id: string, failure: ScheduleFailure): Promise<void> {
    await this.r.scheduleHsetIfExists(this.keys.schedule(id), '', 'last_error', JSON.stringify(failure));
  }
}

function recordOf(h: Record<string, string>): ScheduleRecord {
  return {
    spec: JSON.parse(h.spec!) as ScheduleSpec,
    last_run: h.last_run ? (JSON.parse(h.last_run) as ScheduleRun) : null,
    last_error: h.last_error ? (JSON.parse(h.last_error) as ScheduleFailure) : null,
    runs: Number(h.runs ?? 0),
  };
}
