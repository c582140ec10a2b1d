// Where the Nomad face keeps its jobs (every version), deployments and allocations: Redis, as
// JSON values, under `<prefix>:nomad:`. One counter, the index, orders every change (CreateIndex,
// ModifyIndex, X-Nomad-Index and blocking queries).
import type { Redis } from 'ioredis';
import type { Allocation, Deployment, JobVersion } from './model.ts';

export class NomadStore {
  private readonly p: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.p = `${prefix}:nomad`;
  }

  async index(): Promise<number> {
    return Number((await this.redis.get(`${this.p}:index`)) ?? 0);
  }

  nextIndex(): Promise<number> {
    return this.redis.incr(`${this.p}:index`);
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

  async addVersion(jobId: string, v: JobVersion): Promise<void> {
    const m = this.redis.multi();
    m.sadd(`${this.p}:jobs`, jobId);
    m.set(`${this.p}:job:${jobId}:create-index`, v.ModifyIndex, 'NX');
    m.rpush(`${this.p}:job:${jobId}:versions`, JSON.stringify(v));
    await m.exec();
  }

  async markStable(jobId: string, version: number): Promise<void> {
    const all = await this.versions(jobId);
    const i = all.findIndex((v) => v.Version === version);
    if (i >= 0) await this.redis.lset(`${this.p}:job:${jobId}:versions`, i, JSON.stringify({ ...all[i], Stable: true }));
  }

  async saveDeployment(d: Deployment): Promise<void> {
    const m = this.redis.multi();
    m.set(`${this.p}:deployment:${d.ID}`, JSON.stringify(d));
    m.zadd(`${this.p}:deployments`, String(d.CreateIndex), d.ID);
    m.zadd(`${this.p}:job:${d.JobID}:deployments`, String(d.CreateIndex), d.ID);
    await m.exec();
  }

  async deployment(id: string): Promise<Deployment | null> {
    const v = await this.redis.get(`${this.p}:deployment:${id}`);
    return v ? (JSON.parse(v) as Deployment) : null;
  }

  async deploymentIds(jobId?: string): Promise<string[]> {
    return this.redis.zrange(jobId ? `${this.p}:job:${jobId}:deployments` : `${this.p}:deployments`, '0', '-1');
  }

  async saveAllocation(a: Allocation): Promise<void> {
    const m = this.redis.multi();
    m.set(`${this.p}:alloc:${a.ID}`, JSON.stringify(a));
    m.zadd(`${this.p}:deployment:${a.DeploymentID}:allocs`, String(a.CreateIndex), a.ID);
    await m.exec();
  }

  async allocations(deploymentId: string): Promise<Allocation[]> {
    const ids = await this.redis.zrange(`${this.p}:deployment:${deploymentId}:allocs`, '0', '-1');
    if (ids.length === 0) return [];
    const values = await this.redis.mget(ids.map((id) => `${this.p}:alloc:${id}`));
    return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as Allocation);
  }
}
