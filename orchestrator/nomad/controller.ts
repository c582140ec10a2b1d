// Progressive deployments over the shared engine: the Nomad face's writes. Registering a changed
// spec makes a new job version and a deployment for it (cancelling an older one still going).
// What a deployment does next is decided by `reconcile` (pure) and applied by the applier in one
// compare-and-set per change; deadlines are BullMQ delayed jobs. No state in process memory: any
// orchestrator may serve any request or deadline of any deployment.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import { resolveScope, type ScopeContext } from '../deploy/scope.ts';
import type { Engine } from '../engine/engine.ts';
import type { JobStore } from '../engine/store.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import type { TaskCatalog } from '../tasks/catalog.ts';
import type { TaskSource } from '../tasks/source.ts';
import { DeploymentApplier } from './applier.ts';
import { DeploymentDeadlines } from './deadlines.ts';
import { badRequest as bad, NomadErrorCode } from './errors.ts';
import {
  Description, DeploymentStatus, msToNs, normalizeSpec, sameSpec, specInput, TERMINAL_DEPLOYMENT,
  type GroupState, type JobSpec, type JobVersion, type NomadJobInput,
} from './model.ts';
import type { Command } from './reconcile.ts';
import type { NomadStore, VersionedDeployment } from './store.ts';

export { NomadErrorCode } from './errors.ts';

export interface ControllerOptions {
  store: NomadStore;
  /** The engine's store (allocation runs are created at most once through its reservations). */
  jobs: JobStore;
  engine: Engine;
  scope: ScopeContext;
  /** Environments (Puppet groups). */
  catalog: TaskCatalog;
  /** Task metadata and file entries (Task groups). */
  tasks: TaskSource;
  inventory: InventoryTracker;
  nodeTimeoutS: number;
  log: Logger;
  /** BullMQ connections for the deadline queue (maxRetriesPerRequest null; the worker's without a command timeout). */
  queueConnection: Redis;
  workerConnection: Redis;
}

export interface WriteResult {
  EvalID: string;
  EvalCreateIndex: number;
  Index: number;
  DeploymentModifyIndex?: number;
  JobModifyIndex?: number;
  RevertedJobVersion?: number;
  Warnings?: string;
}

export class DeploymentController {
  private readonly deadlines: DeploymentDeadlines;
  private readonly applier: DeploymentApplier;

  constructor(private readonly o: ControllerOptions) {
    this.deadlines = new DeploymentDeadlines({
      queueName: o.store.keys.nomadDeadlineQueueName(), queueConnection: o.queueConnection, workerConnection: o.workerConnection, log: o.log,
      run: async (id, atMs) => void (await this.applier.run(id, { atLeastMs: atMs })),
    });
    this.applier = new DeploymentApplier({
      store: o.store, jobs: o.jobs, engine: o.engine, catalog: o.catalog, tasks: o.tasks, inventory: o.inventory, nodeTimeoutS: o.nodeTimeoutS, log: o.log,
      deadlines: this.deadlines, revert: (spec) => this.register(specInput(spec), 'nomad'),
    });
    // Wake-ups only (a run's end is read from the engine's records by the next reconcile anyway).
    const wake = (jobId: string) => void o.store.runDeployment(jobId).then((id) => id && this.applier.soon(id, 'run changed'), (err: Error) => o.log.warn({ job: jobId, err: err.message }, 'could not look up a run\'s deployment'));
    // Deployment runs only (a type not known: it may be one; look).
    o.engine.on('nodeStarted', (jobId, _node, type) => (type === null || type === 'deployment') && wake(jobId));
    o.engine.on('nodeEnded', (jobId, _node, _state, type) => (type === null || type === 'deployment') && wake(jobId));
  }

  /**
   * Starts taking deadlines. Running deployments are also reconciled once (quicker after a
   * restart; not needed for correctness: their deadlines are in Redis).
   */
  async recover(): Promise<void> {
    this.deadlines.start();
    for (const id of await this.o.store.deploymentIds()) {
      const d = await this.o.store.deployment(id);
      if (d && !TERMINAL_DEPLOYMENT.includes(d.Status)) this.applier.soon(id, 'start');
    }
  }

  async close(): Promise<void> {
    await this.deadlines.close();
  }

  async register(input: NomadJobInput, owner: string): Promise<WriteResult> {
    const spec = normalizeSpec(input);
    for (const g of spec.TaskGroups) await this.applier.nodeAction(g); // refuses what cannot run, before anything is kept
    const groups = await this.resolveGroups(spec);
    const versions = await this.o.store.versions(spec.ID);
    const latest = versions.at(-1);
    const evalIndex = await this.o.store.nextIndex();
    if (latest && sameSpec(latest.Spec, spec)) {
      // A registration that failed (Redis stalled) after its version was kept but before its
      // deployment was: the same spec again starts the deployment it lacks.
      if (!(await this.hasDeployment(spec.ID, latest.Version))) {
        const id = await this.startDeployment(spec, latest, groups, owner);
        this.o.log.info({ job: spec.ID, version: latest.Version, deployment: id }, 'deployment started for a version registered without one');
        return { EvalID: randomUUID(), EvalCreateIndex: evalIndex, JobModifyIndex: latest.ModifyIndex, Index: await this.o.store.index(), Warnings: '' };
      }
      this.applier.changed(evalIndex);
      return { EvalID: randomUUID(), EvalCreateIndex: evalIndex, JobModifyIndex: latest.ModifyIndex, Index: evalIndex, Warnings: '' };
    }
    const version: JobVersion = { Version: latest ? latest.Version + 1 : 0, Spec: spec, Stable: false, SubmitTime: msToNs(Date.now()), ModifyIndex: evalIndex };
    await this.o.store.addVersion(spec.ID, version);
    for (const id of await this.o.store.deploymentIds(spec.ID)) {
      const old = await this.o.store.deployment(id);
      if (old && !TERMINAL_DEPLOYMENT.includes(old.Status)) await this.applier.run(id, { command: { kind: 'cancel' } });
    }
    const id = await this.startDeployment(spec, version, groups, owner);
    this.o.log.info({ job: spec.ID, version: version.Version, deployment: id }, 'job version registered');
    return { EvalID: randomUUID(), EvalCreateIndex: evalIndex, JobModifyIndex: evalIndex, Index: await this.o.store.index(), Warnings: '' };
  }

  async pause(id: string, pause: boolean): Promise<WriteResult> {
    return this.mutate(id, { kind: pause ? 'pause' : 'resume' }, (st) => {
      if (TERMINAL_DEPLOYMENT.includes(st.deployment.Status)) throw bad(`can't ${pause ? 'pause' : 'resume'} terminal deployment`);
    });
  }

  async promote(id: string, all: boolean, groups: string[]): Promise<WriteResult> {
    let names: string[] = [];
    return this.mutate(id, () => ({ kind: 'promote', groups: names }), (st) => {
      const d = st.deployment;
      if (TERMINAL_DEPLOYMENT.includes(d.Status)) throw bad("can't promote terminal deployment");
      names = all ? Object.keys(d.TaskGroups).filter((n) => d.TaskGroups[n]!.DesiredCanaries > 0) : groups;
      if (names.length === 0) throw bad(all ? 'no canaries to promote' : 'no task groups to promote; give All or Groups');
      for (const n of names) {
        const g = d.TaskGroups[n];
        if (!g) throw bad(`deployment has no task group "${n}"`);
        if (g.DesiredCanaries === 0) throw bad(`Task group "${n}" has no canaries to promote`);
        const healthy = st.allocations.filter((a) => a.TaskGroup === n && a.DeploymentStatus.Canary && a.DeploymentStatus.Healthy === true).length;
        if (healthy < g.DesiredCanaries) throw bad(`Task group "${n}" has ${healthy}/${g.DesiredCanaries} healthy allocations`);
      }
    });
  }

  async fail(id: string): Promise<WriteResult> {
    return this.mutate(id, { kind: 'fail' }, (st) => {
      if (TERMINAL_DEPLOYMENT.includes(st.deployment.Status)) throw bad("can't fail terminal deployment");
    });
  }

  async setHealth(id: string, healthy: string[], unhealthy: string[]): Promise<WriteResult> {
    return this.mutate(id, { kind: 'health', healthy, unhealthy }, (st, spec) => {
      if (TERMINAL_DEPLOYMENT.includes(st.deployment.Status)) throw bad("can't set the health of allocations of a terminal deployment");
      for (const aid of [...healthy, ...unhealthy]) {
        const a = st.allocations.find((x) => x.ID === aid);
        if (!a) throw bad(`unknown allocation ${aid} in deployment ${id}`);
        if (spec.TaskGroups.find((g) => g.Name === a.TaskGroup)!.Update.HealthCheck !== 'manual') throw bad(`task group "${a.TaskGroup}" does not use manual health checks`);
      }
    });
  }

  // ---- internals ----

  /** A person's command: checked against the state read, reconciled and applied with it at once. */
  private async mutate(id: string, command: Command | (() => Command), check: (st: VersionedDeployment, spec: JobSpec) => void): Promise<WriteResult> {
    const res = await this.applier.run(id, {
      check: (st, spec) => {
        check(st, spec);
        return typeof command === 'function' ? command() : command;
      },
    });
    const reverted = res.actions.find((a) => a.type === 'revert');
    const index = await this.o.store.index();
    return {
      EvalID: randomUUID(), EvalCreateIndex: index, DeploymentModifyIndex: res.deployment.ModifyIndex, Index: index,
      ...(reverted?.type === 'revert' ? { RevertedJobVersion: reverted.version } : {}),
    };
  }

  private async resolveGroups(spec: JobSpec): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const g of spec.TaskGroups) {
      const env = g.Task?.environment ?? g.Puppet?.environment ?? 'production';
      out.set(g.Name, (await resolveScope(this.o.scope, g.Scope, env)).nodes);
    }
    return out;
  }

  private async startDeployment(spec: JobSpec, version: JobVersion, nodes: Map<string, string[]>, _owner: string): Promise<string> {
    const now = Date.now();
    const index = await this.o.store.nextIndex();
    const createIndex = (await this.o.store.jobCreateIndex(spec.ID)) || index;
    const groups: Record<string, GroupState> = {};
    for (const g of spec.TaskGroups) {
      const n = nodes.get(g.Name)!;
      groups[g.Name] = {
        Promoted: false, AutoPromote: g.Update.AutoPromote, AutoRevert: g.Update.AutoRevert,
        DesiredCanaries: Math.min(g.Update.Canary, n.length), DesiredTotal: n.length, PlacedCanaries: [], PlacedAllocs: 0, HealthyAllocs: 0, UnhealthyAllocs: 0,
        ProgressDeadline: msToNs(g.Update.ProgressDeadlineMs), RequireProgressBy: null, Nodes: n,
      };
    }
    const id = randomUUID();
    await this.o.store.createDeployment({
      ID: id, JobID: spec.ID, JobVersion: version.Version, JobModifyIndex: version.ModifyIndex, JobSpecModifyIndex: version.ModifyIndex, JobCreateIndex: createIndex,
      TaskGroups: groups, Status: DeploymentStatus.running, StatusDescription: Description.running, CreateIndex: index, ModifyIndex: index, StartMs: now, LastProgressMs: now,
    }); // deadline-checked: a late one creates nothing
    this.applier.changed(index);
    // From here the registration is acknowledged: placing allocations goes on in the background
    // (a failure there, Redis away or slow, is tried again, never reported as a failed
    // registration, which a client would retry).
    this.applier.soon(id, 'registered');
    return id;
  }

  private async hasDeployment(jobId: string, version: number): Promise<boolean> {
    for (const id of await this.o.store.deploymentIds(jobId)) if ((await this.o.store.deployment(id))?.JobVersion === version) return true;
    return false;
  }
}
