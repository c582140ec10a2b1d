// The thin applier around reconcile: reads a deployment, its allocations and what the engine and
// the inventory observed; runs reconcile; writes the new state in one compare-and-set on the
// deployment's version (a conflict: read again and decide again); then does the effects of what
// it wrote: node runs submitted through the engine, runs stopped, the version marked stable, a
// revert registered, deadlines armed. Any orchestrator may run it for any deployment at any time.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/log.ts';
import { BatonError } from '../../protocol/errors.ts';
import { PUPPET_RUN_MODULE } from '../../protocol/pxp.ts';
import type { Engine, JobAction } from '../engine/engine.ts';
import { taskRunAction } from '../engine/kinds/task.ts';
import type { JobStore } from '../engine/store.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import { sensitiveParameters, validateParams, type TaskCatalog, type TaskMetadata } from '../tasks/catalog.ts';
import type { TaskSource } from '../tasks/source.ts';
import type { DeploymentDeadlines } from './deadlines.ts';
import { badRequest, NomadErrorCode } from './errors.ts';
import { msToNs, type Allocation, type Deployment, type JobSpec, type TaskGroupSpec } from './model.ts';
import { reconcile, SUBMIT_LEASE_MS, type Action, type Command, type NodeObservation, type RunObservation } from './reconcile.ts';
import { applyActions } from './state.ts';
import type { NomadStore, VersionedDeployment } from './store.ts';

/** Reads and decisions per reconcile before it gives up on a deployment that keeps changing. */
export const RECONCILE_ATTEMPTS = 50;
/** How soon a deployment whose reconcile failed (Redis away or slow) is reconciled again. */
export const RECONCILE_RETRY_MS = 1_000;

export interface ApplierOptions {
  store: NomadStore;
  /** The engine's store (the reservation that makes an allocation's run created at most once). */
  jobs: JobStore;
  engine: Engine;
  catalog: TaskCatalog;
  tasks: TaskSource;
  inventory: InventoryTracker;
  nodeTimeoutS: number;
  log: Logger;
  deadlines: DeploymentDeadlines;
  /** Registers a job's spec again (AutoRevert). */
  revert: (spec: JobSpec) => Promise<unknown>;
}

export interface Reconciled {
  deployment: Deployment;
  actions: Action[];
}

export class DeploymentApplier {
  /** What a group's allocations run, by deployment and group: a cache, never needed for correctness. */
  private readonly nodeActions = new Map<string, JobAction>();
  /** A node's last disconnection this orchestrator saw (MinHealthyTime: did it stay connected). */
  private readonly lastDown = new Map<string, number>();

  constructor(private readonly o: ApplierOptions) {
    o.inventory.on('down', (node) => this.lastDown.set(node, Date.now()));
  }

  /**
   * Reconciles a deployment (after `command`, or the one `check` gives for what was read) and
   * applies the result. `atLeastMs`: a deadline that is due (now is taken as at least that).
   */
  async run(id: string, opts: { command?: Command; check?: (st: VersionedDeployment, spec: JobSpec) => Command | void; atLeastMs?: number } = {}): Promise<Reconciled> {
    const { store } = this.o;
    for (let attempt = 0; attempt < RECONCILE_ATTEMPTS; attempt++) {
      const st = await store.versioned(id);
      if (!st) throw new BatonError(NomadErrorCode.notFound, 'deployment not found');
      const versions = await store.versions(st.deployment.JobID);
      const spec = versions.find((v) => v.Version === st.deployment.JobVersion)!.Spec;
      const command = opts.check?.(st, spec) ?? opts.command;
      const runs = await this.observeRuns(st.allocations);
      const nodes: Record<string, NodeObservation> = {};
      for (const a of st.allocations) {
        const n = this.o.inventory.get(a.NodeName);
        if (n.timestamp !== null) nodes[a.NodeName] = { connected: n.connected, lastDownMs: this.lastDown.get(a.NodeName) ?? null };
      }
      const now = Math.max(Date.now(), opts.atLeastMs ?? 0);
      const actions = reconcile({ spec, deployment: st.deployment, allocations: st.allocations, nowMs: now, runs, nodes, versions, ...(command ? { command } : {}) });
      const next = applyActions(st.deployment, st.allocations, actions, now);
      if (next.deploymentChanged || next.changed.length > 0) {
        const index = await store.nextIndex();
        if (next.deploymentChanged) next.deployment.ModifyIndex = index;
        for (const a of next.changed) {
          if (a.CreateIndex === 0) a.CreateIndex = index;
          a.ModifyIndex = index;
          a.ModifyTime = msToNs(now);
          a.DeploymentStatus.ModifyIndex = index;
        }
        if (!(await store.commit(id, st.deployment.JobID, st.version, next.deploymentChanged ? next.deployment : null, next.changed))) {
          // Another reconcile (of this orchestrator or another) came first: read again, decide again.
          if (attempt > 2) await new Promise((r) => setTimeout(r, Math.random() * attempt * 5).unref());
          continue;
        }
        this.changed(index);
      }
      await this.effects(next.deployment, next.allocations, spec, actions);
      return { deployment: next.deployment, actions };
    }
    throw new BatonError(NomadErrorCode.conflict, `deployment ${id} kept changing during ${RECONCILE_ATTEMPTS} reconciles`);
  }

  /** Reconciles now, in the background: a failure is logged and a wake-up is queued instead. */
  soon(id: string, why: string): void {
    this.run(id).catch((err: Error) => {
      this.o.log.warn({ deployment: id, why, err: err.message }, 'reconcile failed; it runs again shortly');
      void this.o.deadlines.kick(id, RECONCILE_RETRY_MS).catch((e: Error) => this.o.log.warn({ deployment: id, err: e.message }, 'could not queue a deployment wake-up'));
    });
  }

  /** Tells the blocking queries of every orchestrator (through Redis: NomadChanges). */
  changed(index: number): void {
    void this.o.store.notify(index).catch((err: Error) => this.o.log.warn({ index, err: err.message }, 'could not publish a Nomad change notice'));
  }

  /** What a group's allocations run; refuses unknown tasks and bad params. */
  async nodeAction(g: TaskGroupSpec): Promise<JobAction> {
    if (!g.Task === !g.Puppet) throw badRequest(`task group "${g.Name}" must have exactly one of Task or Puppet`);
    if (g.Puppet) {
      this.o.catalog.environmentDir(g.Puppet.environment);
      return { module: PUPPET_RUN_MODULE, action: 'run', params: { flags: ['--environment', g.Puppet.environment, g.Puppet.noop ? '--noop' : '--no-noop'], env: [] } };
    }
    const t = await this.o.tasks.describe(g.Task!.environment, g.Task!.task);
    return taskRunAction(t, validateParams(t, g.Task!.params), this.o.nodeTimeoutS);
  }

  private async observeRuns(allocs: Allocation[]): Promise<Record<string, RunObservation>> {
    const out: Record<string, RunObservation> = {};
    await Promise.all(allocs.filter((a) => a.EngineJob && a.RunEndedMs === null).map(async (a) => {
      const rec = await this.o.engine.nodeRecord(a.EngineJob!, a.NodeName);
      if (!rec) return;
      const state = rec.state === 'new' || rec.state === 'ready' ? 'pending' : rec.state === 'running' ? 'running' : rec.state === 'finished' ? 'finished' : 'failed';
      const exit = rec.details?.exit_code;
      out[a.ID] = {
        state, startMs: rec.start_ms ?? null, endMs: rec.finish_ms ?? null,
        exitCode: typeof exit === 'number' ? exit : null, message: rec.details?.message ? String(rec.details.message) : null,
      };
    }));
    return out;
  }

  private async effects(d: Deployment, allocs: Allocation[], spec: JobSpec, actions: Action[]): Promise<void> {
    const { engine, store, deadlines, log } = this.o;
    const byId = new Map(allocs.map((a) => [a.ID, a]));
    const work: Promise<unknown>[] = [];
    for (const a of actions) {
      switch (a.type) {
        case 'claim':
          work.push(this.submit(d, spec, byId.get(a.alloc)!));
          break;
        case 'stop-run': {
          const job = byId.get(a.alloc)?.EngineJob;
          if (job) work.push(engine.stop(job, 'nomad', a.replace).catch((err: Error) => log.warn({ deployment: d.ID, job, err: err.message }, 'could not stop an allocation run')));
          break;
        }
        case 'mark-stable':
          work.push(store.markStable(d.JobID, d.JobVersion).then(async () => this.changed(await store.nextIndex())));
          break;
        case 'revert': {
          const target = (await store.versions(d.JobID)).find((v) => v.Version === a.version)!;
          // Registering cancels this deployment's siblings: after this change is done, not awaited.
          setImmediate(() => void this.o.revert(target.Spec).catch((err: Error) => log.error({ job: d.JobID, err: err.message }, 'revert failed')));
          break;
        }
        case 'arm':
          work.push(deadlines.arm(d.ID, a.deadline, a.key, a.atMs));
          break;
        case 'status':
          if (a.status !== 'running' && a.status !== 'paused') this.forget(d.ID);
          log.info({ deployment: d.ID, job: d.JobID, version: d.JobVersion, status: a.status, description: a.description }, 'deployment status');
          break;
        case 'health':
          log.info({ deployment: d.ID, allocation: a.alloc, healthy: a.healthy, why: a.why }, a.healthy ? 'allocation healthy' : 'allocation unhealthy');
          break;
        default:
          break;
      }
    }
    await Promise.all(work);
  }

  /**
   * Creates the engine job that runs an allocation (this reconcile holds its lease), at most once:
   * the creation is bound to a reservation of the allocation's run key, made good by the job
   * creation itself (one Lua script). An orchestrator that died after creating the job but before
   * recording it leaves the key holding the job: whoever takes the lease next records that job.
   */
  private async submit(d: Deployment, spec: JobSpec, a: Allocation): Promise<void> {
    const { store, engine, log } = this.o;
    const runKey = store.keys.nomadAllocRun(a.ID);
    const token = randomUUID();
    const held = await this.o.jobs.beginIdempotent(runKey, token, a.ID, SUBMIT_LEASE_MS);
    if (held?.state === 'done' && held.job) {
      await this.recordSubmitted(d, a, held.job);
      return;
    }
    if (held) return; // another orchestrator is creating it now; the lease deadline looks again
    const g = spec.TaskGroups.find((x) => x.Name === a.TaskGroup)!;
    const key = `${d.ID}/${g.Name}`;
    let action: JobAction;
    try {
      action = this.nodeActions.get(key) ?? (await this.nodeAction(g));
    } catch (err) {
      await this.o.jobs.releaseIdempotent(runKey, token);
      if (!(err instanceof BatonError)) throw err;
      // The group cannot run any more (its task is gone, say): the allocation is unhealthy at once.
      await this.run(d.ID, { command: { kind: 'health', healthy: [], unhealthy: [a.ID], why: `cannot be placed: ${err.message}` } });
      return;
    }
    this.nodeActions.set(key, action);
    const job = await engine.submit({
      type: 'deployment', environment: g.Task?.environment ?? g.Puppet?.environment ?? 'production', ...(g.Task ? { task: g.Task.task } : {}),
      params: g.Task?.params ?? {}, sensitive: g.Task ? sensitiveParameters({ metadata: action.params.metadata as TaskMetadata }) : [],
      options: { concurrency: 0, noop: g.Puppet?.noop === true, timeout_s: this.o.nodeTimeoutS, description: `${a.Name} of deployment ${d.ID}` },
      owner: 'nomad', scope: { nodes: [a.NodeName] }, nodes: [a.NodeName], action,
      idempotency: { key: runKey, token, record: (id) => ({ state: 'done', token, fingerprint: a.ID, status: 201, headers: {}, body: '', job: id }) },
    });
    log.info({ deployment: d.ID, group: g.Name, node: a.NodeName, canary: a.DeploymentStatus.Canary, allocation: a.ID, job: job.id }, 'allocation placed');
    await this.recordSubmitted(d, a, job.id);
  }

  private async recordSubmitted(d: Deployment, a: Allocation, engineJob: string): Promise<void> {
    // Known before it is recorded: an engine event of this run finds its deployment either way.
    await this.o.store.setRunDeployment(engineJob, d.ID);
    await this.run(d.ID, { command: { kind: 'submitted', alloc: a.ID, engineJob } });
  }

  /** Drops the cached actions of an ended deployment. */
  forget(deploymentId: string): void {
    for (const k of [...this.nodeActions.keys()]) if (k.startsWith(`${deploymentId}/`)) this.nodeActions.delete(k);
  }
}
