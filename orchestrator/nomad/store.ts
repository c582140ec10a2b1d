// Where the Nomad face keeps its jobs (every version), deployments and allocations: Redis, as
// JSON values, under `<prefix>:nomad:`. One counter, the index, orders every change (CreateIndex,
// ModifyIndex, X-Nomad-Index and blocking queries).
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { projectPath } from '../../lib/paths.ts';
import { Keys } from '../engine/keys.ts';
import { createDeadlineMs, StoreError, StoreErrorCode } from '../engine/store.ts';
import type { Allocation, Deployment, JobVersion } from './model.ts';

interface Scripts {
  nomadAddVersion(...args: (string | number)[]): Promise<number>;
  nomadCreateDeployment(...args: (string | number)[]): Promise<number>;
  nomadCommitDeployment(numKeys: number, ...args: (string | number)[]): Promise<number>;
}

/** A deployment with its allocations, as read at `version` (for a compare-and-set). */
export interface VersionedDeployment {
  version: number;
  deployment: Deployment;
  allocations: Allocation[];
}

/** Change notices kept in the stream (readers only ever want the newest). */
export const MAX_CHANGE_NOTICES = 1000;

export interface NomadStoreOptions {
  /** `redis-timeout`: creating writes (a job version, a deployment) carry a deadline this far ahead. */
  timeoutMs?: number;
}

export class NomadStore {
  private readonly p: string;
  private readonly redis: Redis & Scripts;
  private readonly timeoutMs: number | undefined;
  readonly keys: Keys;

  constructor(redis: Redis, prefix: string, opts: NomadStoreOptions = {}) {
    this.p = `${prefix}:nomad`;
    this.keys = new Keys(prefix);
    this.timeoutMs = opts.timeoutMs;
    const lua = (name: string) => readFileSync(projectPath('orchestrator', 'engine', 'lua', name), 'utf8');
    redis.defineCommand('nomadAddVersion', { numberOfKeys: 3, lua: lua('nomad-add-version-3.lua') });
    redis.defineCommand('nomadCreateDeployment', { numberOfKeys: 3, lua: lua('nomad-create-deployment-3.lua') });
    // Five keys and one per allocation written: the count goes with each call.
    redis.defineCommand('nomadCommitDeployment', { lua: lua('nomad-commit-deployment-5.lua') });
    this.redis = redis as Redis & Scripts;
  }

  private deadline(): number {
    return this.timeoutMs === undefined ? 0 : createDeadlineMs(this.timeoutMs);
  }

  private late(what: string): StoreError {
    return new StoreError(StoreErrorCode.deadlinePassed, `Redis ran the creation of ${what} after its deadline; nothing was created`);
  }

  async index(): Promise<number> {
    return Number((await this.redis.get(`${this.p}:index`)) ?? 0);
  }

  nextIndex(): Promise<number> {
    return this.redis.incr(`${this.p}:index`);
  }

  /** The stream of change notices that NomadChanges follows. */
  changesKey(): string {
    return `${this.p}:changes`;
  }

  /** Tells every orchestrator's blocking queries that the state reached `index` (after it is written). */
  async notify(index: number): Promise<void> {
    await this.redis.xadd(this.changesKey(), 'MAXLEN', '~', String(MAX_CHANGE_NOTICES), '*', 'index', String(index));
  }

  async jobIds(): Promise<string[]> {
    return (await this.redis.smembers(`${this.p}:jobs`)).sort();
  }

  async versions(jobId: string): Promise<JobVersion[]> {
    return (await this.redis.lrange(`${this.p}:job:${jobId}:versions`, 0, -1)).map((v) => JSON.parse(v) as JobVersion);
  }

  async jobCreateIndex(jobId: string): Promise<number> {
    return Number((await this.redis.get(`${this.p}:job:${jobId}:create-index`)) ?? 0);
  }

  /** Adds a job version; refused (StoreError deadlinePassed) when Redis runs it after its deadline. */
  async addVersion(jobId: string, v: JobVersion): Promise<void> {
    const res = await this.redis.nomadAddVersion(`${this.p}:jobs`, `${this.p}:job:${jobId}:create-index`, `${this.p}:job:${jobId}:versions`, this.deadline(), jobId, v.ModifyIndex, JSON.stringify(v));
    if (res === 0) throw this.late(`version ${v.Version} of job ${jobId}`);
  }

  async markStable(jobId: string, version: number): Promise<void> {
    const all = await this.versions(jobId);
    const i = all.findIndex((v) => v.Version === version);
    if (i >= 0) await this.redis.lset(`${this.p}:job:${jobId}:versions`, i, JSON.stringify({ ...all[i], Stable: true }));
  }

  /** Creates a deployment; refused (StoreError deadlinePassed) when Redis runs it after its deadline. */
  async createDeployment(d: Deployment): Promise<void> {
    const res = await this.redis.nomadCreateDeployment(`${this.p}:deployment:${d.ID}`, `${this.p}:deployments`, `${this.p}:job:${d.JobID}:deployments`, this.deadline(), JSON.stringify(d), String(d.CreateIndex), d.ID);
    if (res === 0) throw this.late(`deployment ${d.ID}`);
  }

  /** A deployment and its allocations with the version they were read at; null when there is none. */
  async versioned(id: string): Promise<VersionedDeployment | null> {
    // The version first: a change after it makes the commit of what was read fail, never pass.
    const version = Number((await this.redis.get(this.keys.nomadDeploymentVersion(id))) ?? 0);
    const deployment = await this.deployment(id);
    if (!deployment) return null;
    return { version, deployment, allocations: await this.allocations(id) };
  }

  /**
   * Writes a deployment (null: unchanged) and allocations if the deployment is still at
   * `version`; false (nothing written) when another change came first.
   */
  async commit(id: string, jobId: string, version: number, d: Deployment | null, allocs: Allocation[]): Promise<boolean> {
    const keys = [this.keys.nomadDeploymentVersion(id), `${this.p}:deployment:${id}`, `${this.p}:deployment:${id}:allocs`, `${this.p}:deployments`, `${this.p}:job:${jobId}:deployments`, ...allocs.map((a) => `${this.p}:alloc:${a.ID}`)];
    const args = [version, d ? JSON.stringify(d) : '', d ? String(d.CreateIndex) : '0', id, ...allocs.flatMap((a) => [JSON.stringify(a), String(a.CreateIndex), a.ID])];
    return (await this.redis.nomadCommitDeployment(keys.length, ...keys, ...args)) >= 0;
  }

  /** Which deployment an engine job (an allocation's run) belongs to. */
  async setRunDeployment(engineJob: string, deploymentId: string): Promise<void> {
    await this.redis.set(this.keys.nomadRun(engineJob), deploymentId);
  }

  runDeployment(engineJob: string): Promise<string | null> {
    return this.redis.get(this.keys.nomadRun(engineJob));
  }

  async deployment(id: string): Promise<Deployment | null> {
    const v = await this.redis.get(`${this.p}:deployment:${id}`);
    return v ? (JSON.parse(v) as Deployment) : null;
  }

  async deploymentIds(jobId?: string): Promise<string[]> {
    return this.redis.zrange(jobId ? `${this.p}:job:${jobId}:deployments` : `${this.p}:deployments`, '0', '-1');
  }

  async allocations(deploymentId: string): Promise<Allocation[]> {
    const ids = await this.redis.zrange(`${this.p}:deployment:${deploymentId}:allocs`, '0', '-1');
    if (ids.length === 0) return [];
    const values = await this.redis.mget(ids.map((id) => `${this.p}:alloc:${id}`));
    return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as Allocation);
  }
}
