// Progressive deployments over the shared engine. Registering a changed spec makes a new job
// version and a deployment for it (cancelling an older one still going). A deployment places
// allocations (one node's run of its group, as an engine job): canaries first, then at most
// MaxParallel in flight; an allocation is healthy when its run succeeded and its node stayed
// connected for MinHealthyTime (or by hand, HealthCheck manual), unhealthy when the run failed or
// HealthyDeadline passed. An unhealthy allocation, or no progress within ProgressDeadline, fails
// the deployment, and AutoRevert registers the last stable version again.
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/log.ts';
import { BatonError } from '../../protocol/errors.ts';
import { PUPPET_RUN_MODULE } from '../../protocol/pxp.ts';
import { resolveScope, type ScopeContext } from '../deploy/scope.ts';
import type { Engine, JobAction } from '../engine/engine.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import { sensitiveParameters, validateParams, type TaskCatalog, type TaskMetadata } from '../tasks/catalog.ts';
import type { TaskSource } from '../tasks/source.ts';
import {
  Description, DeploymentStatus, event, msToNs, normalizeSpec, sameSpec, specInput, taskName, TERMINAL_DEPLOYMENT,
  type Allocation, type Deployment, type GroupState, type JobSpec, type JobVersion, type NomadJobInput, type TaskGroupSpec,
} from './model.ts';
import type { NomadStore } from './store.ts';

/** How soon a deployment whose placements failed (Redis away or slow) is evaluated again. */
export const EVALUATE_RETRY_MS = 1_000;

export const NomadErrorCode = { badRequest: 'nomad/bad-request', notFound: 'nomad/not-found' } as const;
const bad = (msg: string) => new BatonError(NomadErrorCode.badRequest, msg);

export interface ControllerOptions {
  store: NomadStore;
  engine: Engine;
  scope: ScopeContext;
  /** Environments (Puppet groups). */
  catalog: TaskCatalog;
  /** Task metadata and file entries (Task groups). */
  tasks: TaskSource;
  inventory: InventoryTracker;
  nodeTimeoutS: number;
  log: Logger;
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
  private readonly locks = new Map<string, Promise<unknown>>();
  /** engine job id → the allocation it runs and its deployment. */
  private readonly runs = new Map<string, { alloc: string; deployment: string }>();
  private readonly timers = new Map<string, NodeJS.Timeout[]>();
  private readonly actions = new Map<string, JobAction>();
  /** Waits for a node's disconnection, by allocation (MinHealthyTime). */
  private readonly cancels = new Map<string, () => void>();

  constructor(private readonly o: ControllerOptions) {
    o.engine.on('nodeStarted', (jobId) => this.onRun(jobId, 'started'));
    o.engine.on('nodeEnded', (jobId, _node, state) => this.onRun(jobId, state));
  }

  /** After a restart: running deployments pick up where they were. */
  async recover(): Promise<void> {
    for (const id of await this.o.store.deploymentIds()) {
      const d = await this.o.store.deployment(id);
      if (!d || TERMINAL_DEPLOYMENT.includes(d.Status)) continue;
      for (const a of await this.o.store.allocations(id)) if (a.EngineJob) this.runs.set(a.EngineJob, { alloc: a.ID, deployment: id });
      await this.locked(id, async () => {
        const spec = await this.spec(d);
        for (const a of await this.o.store.allocations(id)) {
          if (a.DeploymentStatus.Healthy !== null) continue;
          if (!a.EngineJob) {
            await this.markHealth(d, a, false, 'its run could not be placed', false);
            continue;
          }
          this.armAllocTimers(d, a);
          if (a.RunEndedMs !== null) {
            // Ended before the restart, health still open: the MinHealthyTime left, from the end.
            const g = spec.TaskGroups.find((x) => x.Name === a.TaskGroup)!;
            if (a.ClientStatus === 'complete' && g.Update.HealthCheck === 'task_states') this.armMinHealthy(d, a, Math.max(0, a.RunEndedMs + g.Update.MinHealthyTimeMs - Date.now()));
            continue;
          }
          const job = await this.o.engine.jobRecord(a.EngineJob);
          if (job && ['finished', 'failed', 'stopped'].includes(job.state)) await this.runEnded(d, a, job.state === 'finished' ? 'finished' : 'failed');
        }
        if (!TERMINAL_DEPLOYMENT.includes(d.Status)) {
          this.armProgress(d);
          await this.evaluate(d);
        }
      }).catch((err: Error) => this.o.log.error({ deployment: id, err: err.message }, 'could not recover a deployment'));
    }
  }

  async register(input: NomadJobInput, owner: string): Promise<WriteResult> {
    const spec = normalizeSpec(input);
    for (const g of spec.TaskGroups) await this.action(g); // refuses what cannot run, before anything is kept
    const groups = await this.resolveGroups(spec);
    return this.locked(`job:${spec.ID}`, async () => {
      const versions = await this.o.store.versions(spec.ID);
      const latest = versions.at(-1);
      const evalIndex = await this.o.store.nextIndex();
      if (latest && sameSpec(latest.Spec, spec)) {
        // A registration that failed (Redis stalled) after its version was kept but before its
        // deployment was: the same spec again starts the deployment it lacks.
        if (!(await this.hasDeployment(spec.ID, latest.Version))) {
          const d = await this.startDeployment(spec, latest, groups, owner);
          this.o.log.info({ job: spec.ID, version: latest.Version, deployment: d.ID }, 'deployment started for a version registered without one');
          return { EvalID: randomUUID(), EvalCreateIndex: evalIndex, JobModifyIndex: latest.ModifyIndex, Index: d.ModifyIndex, Warnings: '' };
        }
        this.changed(evalIndex);
        return { EvalID: randomUUID(), EvalCreateIndex: evalIndex, JobModifyIndex: latest.ModifyIndex, Index: evalIndex, Warnings: '' };
      }
      const version: JobVersion = { Version: latest ? latest.Version + 1 : 0, Spec: spec, Stable: false, SubmitTime: msToNs(Date.now()), ModifyIndex: evalIndex };
      await this.o.store.addVersion(spec.ID, version);
      for (const id of await this.o.store.deploymentIds(spec.ID)) {
        await this.locked(id, async () => {
          const old = await this.o.store.deployment(id);
          if (old && !TERMINAL_DEPLOYMENT.includes(old.Status)) await this.end(old, DeploymentStatus.cancelled, Description.newerVersion);
        });
      }
      const d = await this.startDeployment(spec, version, groups, owner);
      this.o.log.info({ job: spec.ID, version: version.Version, deployment: d.ID }, 'job version registered');
      return { EvalID: randomUUID(), EvalCreateIndex: evalIndex, JobModifyIndex: evalIndex, Index: d.ModifyIndex, Warnings: '' };
    });
  }

  async pause(id: string, pause: boolean): Promise<WriteResult> {
    return this.mutate(id, async (d) => {
      if (TERMINAL_DEPLOYMENT.includes(d.Status)) throw bad(`can't ${pause ? 'pause' : 'resume'} terminal deployment`);
      d.Status = pause ? DeploymentStatus.paused : DeploymentStatus.running;
      d.StatusDescription = pause ? Description.paused : Description.running;
      if (!pause) d.LastProgressMs = Date.now();
      await this.save(d);
      if (!pause) {
        this.armProgress(d);
        await this.evaluate(d);
      }
      return {};
    });
  }

  async promote(id: string, all: boolean, groups: string[]): Promise<WriteResult> {
    return this.mutate(id, async (d) => {
      if (TERMINAL_DEPLOYMENT.includes(d.Status)) throw bad("can't promote terminal deployment");
      const names = all ? Object.keys(d.TaskGroups).filter((n) => d.TaskGroups[n]!.DesiredCanaries > 0) : groups;
      if (names.length === 0) throw bad(all ? 'no canaries to promote' : 'no task groups to promote; give All or Groups');
      const allocs = await this.o.store.allocations(d.ID);
      for (const n of names) {
        const g = d.TaskGroups[n];
        if (!g) throw bad(`deployment has no task group "${n}"`);
        if (g.DesiredCanaries === 0) throw bad(`Task group "${n}" has no canaries to promote`);
        const healthy = allocs.filter((a) => a.TaskGroup === n && a.DeploymentStatus.Canary && a.DeploymentStatus.Healthy === true).length;
        if (healthy < g.DesiredCanaries) throw bad(`Task group "${n}" has ${healthy}/${g.DesiredCanaries} healthy allocations`);
      }
      for (const n of names) d.TaskGroups[n]!.Promoted = true;
      d.LastProgressMs = Date.now();
      await this.save(d);
      this.armProgress(d);
      await this.evaluate(d);
      return {};
    });
  }

  async fail(id: string): Promise<WriteResult> {
    return this.mutate(id, async (d) => {
      if (TERMINAL_DEPLOYMENT.includes(d.Status)) throw bad("can't fail terminal deployment");
      const reverted = await this.failDeployment(d, Description.byUser);
      return reverted === null ? {} : { RevertedJobVersion: reverted };
    });
  }

  async setHealth(id: string, healthy: string[], unhealthy: string[]): Promise<WriteResult> {
    return this.mutate(id, async (d) => {
      if (TERMINAL_DEPLOYMENT.includes(d.Status)) throw bad("can't set the health of allocations of a terminal deployment");
      const allocs = new Map((await this.o.store.allocations(d.ID)).map((a) => [a.ID, a]));
      const spec = await this.spec(d);
      for (const aid of [...healthy, ...unhealthy]) {
        const a = allocs.get(aid);
        if (!a) throw bad(`unknown allocation ${aid} in deployment ${d.ID}`);
        if (spec.TaskGroups.find((g) => g.Name === a.TaskGroup)!.Update.HealthCheck !== 'manual') throw bad(`task group "${a.TaskGroup}" does not use manual health checks`);
      }
      let reverted: number | null = null;
      for (const aid of healthy) await this.markHealth(d, allocs.get(aid)!, true, 'marked healthy by hand', false);
      for (const aid of unhealthy) reverted = await this.markHealth(d, allocs.get(aid)!, false, 'marked unhealthy by hand', false);
      if (!TERMINAL_DEPLOYMENT.includes(d.Status)) await this.evaluate(d);
      return reverted === null ? {} : { RevertedJobVersion: reverted };
    });
  }

  // ---- internals ----

  /** Tells the blocking queries of every orchestrator, this one's too (through Redis: NomadChanges). */
  private changed(index: number): void {
    void this.o.store.notify(index).catch((err: Error) => this.o.log.warn({ index, err: err.message }, 'could not publish a Nomad change notice'));
  }

  /** Runs `fn` after every earlier call for the same key (one change at a time per deployment). */
  private locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(() => {}, () => {});
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return next;
  }

  /** A change nobody waits for (timers, engine events): its failure is logged, never thrown. */
  private background(key: string, what: string, fn: () => Promise<unknown>): void {
    this.locked(key, fn).catch((err: Error) => this.o.log.error({ deployment: key, err: err.message }, `${what} failed`));
  }

  private async mutate(id: string, fn: (d: Deployment) => Promise<Partial<WriteResult>>): Promise<WriteResult> {
    return this.locked(id, async () => {
      const d = await this.o.store.deployment(id);
      if (!d) throw new BatonError(NomadErrorCode.notFound, 'deployment not found');
      const extra = await fn(d);
      const index = await this.o.store.index();
      return { EvalID: randomUUID(), EvalCreateIndex: index, DeploymentModifyIndex: d.ModifyIndex, Index: index, ...extra };
    });
  }

  private async save(d: Deployment): Promise<void> {
    d.ModifyIndex = await this.o.store.nextIndex();
    await this.o.store.saveDeployment(d);
    this.changed(d.ModifyIndex);
  }

  private async saveAlloc(a: Allocation): Promise<void> {
    a.ModifyIndex = await this.o.store.nextIndex();
    a.ModifyTime = msToNs(Date.now());
    await this.o.store.saveAllocation(a);
    this.changed(a.ModifyIndex);
  }

  private async spec(d: Deployment): Promise<JobSpec> {
    return (await this.o.store.versions(d.JobID)).find((v) => v.Version === d.JobVersion)!.Spec;
  }

  /** What a group's allocations run; refuses unknown tasks and bad params. */
  private async action(g: TaskGroupSpec): Promise<JobAction> {
    if (!g.Task === !g.Puppet) throw bad(`task group "${g.Name}" must have exactly one of Task or Puppet`);
    if (g.Puppet) {
      this.o.catalog.environmentDir(g.Puppet.environment);
      return { module: PUPPET_RUN_MODULE, action: 'run', params: { flags: ['--environment', g.Puppet.environment, g.Puppet.noop ? '--noop' : '--no-noop'], env: [] } };
    }
    const t = await this.o.tasks.describe(g.Task!.environment, g.Task!.task);
    const input = validateParams(t, g.Task!.params);
    return { module: 'task', action: 'run', params: { task: t.name, input, files: t.files, metadata: t.metadata, timeout: this.o.nodeTimeoutS } };
  }

  private async resolveGroups(spec: JobSpec): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const g of spec.TaskGroups) {
      const env = g.Task?.environment ?? g.Puppet?.environment ?? 'production';
      out.set(g.Name, (await resolveScope(this.o.scope, g.Scope, env)).nodes);
    }
    return out;
  }

  private async startDeployment(spec: JobSpec, version: JobVersion, nodes: Map<string, string[]>, _owner: string): Promise<Deployment> {
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
    const d: Deployment = {
      ID: randomUUID(), JobID: spec.ID, JobVersion: version.Version, JobModifyIndex: version.ModifyIndex, JobSpecModifyIndex: version.ModifyIndex, JobCreateIndex: createIndex,
      TaskGroups: groups, Status: DeploymentStatus.running, StatusDescription: Description.running, CreateIndex: index, ModifyIndex: index, StartMs: now, LastProgressMs: now,
    };
    await this.o.store.createDeployment(d); // deadline-checked: a late one creates nothing
    this.changed(index);
    // From here the registration is acknowledged: placements that fail now (Redis away or slow)
    // are tried again, never reported as a failed registration (which a client would retry).
    await this.locked(d.ID, async () => {
      this.armProgress(d);
      await this.evaluate(d);
    }).catch((err: Error) => {
      this.o.log.warn({ deployment: d.ID, err: err.message }, 'placing allocations failed; tried again shortly');
      this.evaluateLater(d.ID);
    });
    return d;
  }

  private async hasDeployment(jobId: string, version: number): Promise<boolean> {
    for (const id of await this.o.store.deploymentIds(jobId)) if ((await this.o.store.deployment(id))?.JobVersion === version) return true;
    return false;
  }

  /** Evaluates a running deployment again after EVALUATE_RETRY_MS, until an evaluation succeeds. */
  private evaluateLater(id: string): void {
    this.addTimer(`progress:${id}`, setTimeout(() => {
      this.locked(id, async () => {
        const d = await this.o.store.deployment(id);
        if (d && d.Status === DeploymentStatus.running) await this.evaluate(d);
      }).catch((err: Error) => {
        this.o.log.warn({ deployment: id, err: err.message }, 'placing allocations failed; tried again shortly');
        this.evaluateLater(id);
      });
    }, EVALUATE_RETRY_MS));
  }

  /** Places what may be placed now; completes the deployment when every allocation is healthy. */
  private async evaluate(d: Deployment): Promise<void> {
    if (d.Status !== DeploymentStatus.running) return;
    const spec = await this.spec(d);
    const allocs = await this.o.store.allocations(d.ID);
    let done = true;
    let awaitingPromotion = false;
    for (const g of spec.TaskGroups) {
      const st = d.TaskGroups[g.Name]!;
      const mine = allocs.filter((a) => a.TaskGroup === g.Name);
      const placed = new Set(mine.map((a) => a.NodeName));
      // Placed, but its run was never created (the submission failed): created now.
      for (const a of mine) if (!a.EngineJob && a.DeploymentStatus.Healthy === null) await this.submit(d, g, a);
      const canaries = st.Nodes.slice(0, st.DesiredCanaries);
      if (st.DesiredCanaries > 0 && !st.Promoted) {
        for (const node of canaries) if (!placed.has(node)) mine.push(await this.place(d, g, node, true));
        if (d.Status !== DeploymentStatus.running) return;
        const healthy = mine.filter((a) => a.DeploymentStatus.Canary && a.DeploymentStatus.Healthy === true).length;
        if (healthy === st.DesiredCanaries && st.AutoPromote) {
          st.Promoted = true;
          this.o.log.info({ deployment: d.ID, group: g.Name }, 'canaries healthy: promoted automatically');
        } else {
          done = false;
          if (healthy === st.DesiredCanaries) awaitingPromotion = true;
          continue;
        }
      }
      let inFlight = mine.filter((a) => a.DeploymentStatus.Healthy === null).length;
      for (const node of st.Nodes) {
        if (inFlight >= g.Update.MaxParallel) break;
        if (placed.has(node) || canaries.includes(node)) continue;
        mine.push(await this.place(d, g, node, false));
        if (d.Status !== DeploymentStatus.running) return;
        placed.add(node);
        inFlight++;
      }
      if (mine.length < st.DesiredTotal || mine.some((a) => a.DeploymentStatus.Healthy !== true)) done = false;
    }
    if (done) {
      await this.end(d, DeploymentStatus.successful, Description.successful);
      await this.o.store.markStable(d.JobID, d.JobVersion);
      this.changed(await this.o.store.nextIndex());
      return;
    }
    const desc = awaitingPromotion ? Description.needsPromotion : Description.running;
    if (d.StatusDescription !== desc) {
      d.StatusDescription = desc;
      await this.save(d);
    }
  }

  private async place(d: Deployment, g: TaskGroupSpec, node: string, canary: boolean): Promise<Allocation> {
    const st = d.TaskGroups[g.Name]!;
    const now = Date.now();
    const index = await this.o.store.nextIndex();
    const a: Allocation = {
      ID: randomUUID(), EvalID: randomUUID(), Name: `${d.JobID}.${g.Name}[${st.Nodes.indexOf(node)}]`, NodeID: node, NodeName: node, JobID: d.JobID, JobVersion: d.JobVersion,
      TaskGroup: g.Name, DesiredStatus: 'run', DesiredDescription: '', ClientStatus: 'pending', ClientDescription: 'No tasks have started',
      TaskStates: { [taskName(g)]: { State: 'pending', Failed: false, StartedAt: null, FinishedAt: null, Events: [event('Received', 'Task received by client')] } },
      DeploymentID: d.ID, DeploymentStatus: { Healthy: null, Timestamp: null, Canary: canary, ModifyIndex: index },
      CreateIndex: index, ModifyIndex: index, CreateTime: msToNs(now), ModifyTime: msToNs(now), EngineJob: null, PlacedMs: now, RunEndedMs: null,
    };
    st.PlacedAllocs++;
    if (canary) st.PlacedCanaries.push(a.ID);
    let action: JobAction;
    try {
      action = this.actions.get(`${d.ID}/${g.Name}`) ?? (await this.action(g));
    } catch (err) {
      // The group cannot run any more (its task is gone, say): the allocation is unhealthy at once.
      await this.o.store.saveAllocation(a);
      await this.save(d);
      await this.markHealth(d, a, false, `cannot be placed: ${(err as Error).message}`, false);
      return a;
    }
    this.actions.set(`${d.ID}/${g.Name}`, action);
    await this.o.store.saveAllocation(a);
    await this.save(d);
    await this.submit(d, g, a);
    return a;
  }

  /** Creates the engine job that runs an allocation (deadline-checked like every job creation). */
  private async submit(d: Deployment, g: TaskGroupSpec, a: Allocation): Promise<void> {
    const node = a.NodeName;
    const canary = a.DeploymentStatus.Canary;
    const action = this.actions.get(`${d.ID}/${g.Name}`) ?? (await this.action(g));
    this.actions.set(`${d.ID}/${g.Name}`, action);
    const job = await this.o.engine.submit({
      type: 'deployment', environment: g.Task?.environment ?? g.Puppet?.environment ?? 'production', ...(g.Task ? { task: g.Task.task } : {}),
      params: g.Task?.params ?? {}, sensitive: g.Task ? sensitiveParameters({ metadata: action.params.metadata as TaskMetadata }) : [],
      options: { concurrency: 0, noop: g.Puppet?.noop === true, timeout_s: this.o.nodeTimeoutS, description: `${a.Name} of deployment ${d.ID}` },
      owner: 'nomad', scope: { nodes: [node] }, nodes: [node], action,
    });
    a.EngineJob = job.id;
    this.runs.set(job.id, { alloc: a.ID, deployment: d.ID });
    await this.saveAlloc(a);
    this.armAllocTimers(d, a);
    this.o.log.info({ deployment: d.ID, group: g.Name, node, canary, allocation: a.ID }, 'allocation placed');
  }

  /** An allocation's run started or ended (engine events). */
  private onRun(engineJob: string, what: string): void {
    const run = this.runs.get(engineJob);
    if (!run) return;
    if (what !== 'started') this.runs.delete(engineJob);
    void this.locked(run.deployment, async () => {
      const d = await this.o.store.deployment(run.deployment);
      const a = (await this.o.store.allocations(run.deployment)).find((x) => x.ID === run.alloc);
      if (!d || !a) return;
      if (what !== 'started') return this.runEnded(d, a, what);
      a.ClientStatus = 'running';
      a.ClientDescription = 'Tasks are running';
      const ts = Object.values(a.TaskStates)[0]!;
      ts.State = 'running';
      ts.StartedAt = new Date().toISOString();
      ts.Events.push(event('Started', 'Task started by client'));
      await this.saveAlloc(a);
    }).catch((err: Error) => this.o.log.error({ allocation: run.alloc, err: err.message }, 'allocation update failed'));
  }

  private async runEnded(d: Deployment, a: Allocation, state: string): Promise<void> {
    if (a.RunEndedMs !== null) return;
    const ok = state === 'finished';
    const node = a.EngineJob ? (await this.o.engine.nodeRecord(a.EngineJob, a.NodeName)) : null;
    const exit = typeof node?.details?.exit_code === 'number' ? node.details.exit_code : ok ? 0 : 1;
    const ts = Object.values(a.TaskStates)[0]!;
    ts.State = 'dead';
    ts.Failed = !ok;
    ts.FinishedAt = new Date().toISOString();
    ts.Events.push({ ...event('Terminated', ok ? 'Exit Code: 0' : `Exit Code: ${exit}${node?.details?.message ? `, ${String(node.details.message)}` : ''}`), ExitCode: exit, FailsTask: !ok });
    a.ClientStatus = ok ? 'complete' : 'failed';
    a.ClientDescription = ok ? 'All tasks have completed' : 'Failed tasks';
    a.RunEndedMs = Date.now();
    await this.saveAlloc(a);
    if (TERMINAL_DEPLOYMENT.includes(d.Status) || a.DeploymentStatus.Healthy !== null) return;
    if (!ok) {
      await this.markHealth(d, a, false, 'the run failed', true);
      return;
    }
    const g = (await this.spec(d)).TaskGroups.find((x) => x.Name === a.TaskGroup)!;
    if (g.Update.HealthCheck === 'task_states') this.armMinHealthy(d, a, g.Update.MinHealthyTimeMs);
  }

  /** Healthy once the node stayed connected for MinHealthyTime after a successful run. */
  private armMinHealthy(d: Deployment, a: Allocation, ms: number): void {
    const lost = this.o.inventory.whenDisconnected(a.NodeName);
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      lost.cancel();
      this.background(d.ID, 'health check', () => this.healthIfUndecided(d.ID, a.ID, true, `the node stayed connected for ${ms} ms after a successful run`));
    }, ms);
    void lost.promise.then(() => {
      if (settled) return;
      clearTimeout(timer);
      this.background(d.ID, 'health check', () => this.healthIfUndecided(d.ID, a.ID, false, 'the node disconnected before MinHealthyTime passed'));
    });
    this.addTimer(a.ID, timer);
    this.cancels.set(a.ID, () => {
      settled = true;
      lost.cancel();
    });
  }

  private armAllocTimers(d: Deployment, a: Allocation): void {
    this.spec(d).then((spec) => {
      const g = spec.TaskGroups.find((x) => x.Name === a.TaskGroup)!;
      const left = a.PlacedMs + g.Update.HealthyDeadlineMs - Date.now();
      this.addTimer(a.ID, setTimeout(() => this.background(d.ID, 'healthy deadline', () => this.healthIfUndecided(d.ID, a.ID, false, 'healthy deadline reached')), Math.max(0, left)));
    }, (err: Error) => this.o.log.error({ deployment: d.ID, err: err.message }, 'could not arm the healthy deadline'));
  }

  /** Drops an allocation's timers and its wait for the node's disconnection. */
  private disarm(allocId: string): void {
    for (const t of this.timers.get(allocId) ?? []) clearTimeout(t);
    this.timers.delete(allocId);
    this.cancels.get(allocId)?.();
    this.cancels.delete(allocId);
  }

  private addTimer(key: string, t: NodeJS.Timeout): void {
    t.unref();
    this.timers.set(key, [...(this.timers.get(key) ?? []), t]);
  }

  private async healthIfUndecided(deploymentId: string, allocId: string, healthy: boolean, why: string): Promise<void> {
    const d = await this.o.store.deployment(deploymentId);
    const a = (await this.o.store.allocations(deploymentId)).find((x) => x.ID === allocId);
    if (!d || !a || a.DeploymentStatus.Healthy !== null || TERMINAL_DEPLOYMENT.includes(d.Status)) return;
    await this.markHealth(d, a, healthy, why, true);
  }

  /** Records an allocation's health; unhealthy fails the deployment. Returns a reverted version, if any. */
  private async markHealth(d: Deployment, a: Allocation, healthy: boolean, why: string, evaluate: boolean): Promise<number | null> {
    this.disarm(a.ID);
    a.DeploymentStatus = { ...a.DeploymentStatus, Healthy: healthy, Timestamp: new Date().toISOString() };
    Object.values(a.TaskStates)[0]!.Events.push(event(healthy ? 'Alloc Healthy' : 'Alloc Unhealthy', why));
    await this.saveAlloc(a);
    const st = d.TaskGroups[a.TaskGroup]!;
    if (healthy) {
      st.HealthyAllocs++;
      d.LastProgressMs = Date.now();
      await this.save(d);
      this.armProgress(d);
      this.o.log.info({ deployment: d.ID, allocation: a.ID, node: a.NodeName }, 'allocation healthy');
      if (evaluate) await this.evaluate(d);
      return null;
    }
    st.UnhealthyAllocs++;
    this.o.log.info({ deployment: d.ID, allocation: a.ID, node: a.NodeName, why }, 'allocation unhealthy');
    return this.failDeployment(d, Description.unhealthy);
  }

  /** Fails a deployment; with AutoRevert, registers the last stable version again when it differs. */
  private async failDeployment(d: Deployment, why: string): Promise<number | null> {
    const spec = await this.spec(d);
    let desc: string = why;
    let revertTo: JobVersion | null = null;
    if (spec.TaskGroups.some((g) => g.Update.AutoRevert)) {
      const stable = (await this.o.store.versions(d.JobID)).filter((v) => v.Stable && v.Version !== d.JobVersion).at(-1);
      if (stable && sameSpec(stable.Spec, spec)) desc = `${why} - not rolling back to stable job version ${stable.Version} as current job has same specification`;
      else if (stable) {
        desc = `${why} - rolling back to job version ${stable.Version}`;
        revertTo = stable;
      }
    }
    await this.end(d, DeploymentStatus.failed, desc);
    if (!revertTo) return null;
    const target = revertTo;
    // Registering takes the job's lock and this deployment's: do it after this change is done.
    setImmediate(() => this.register(specInput(target.Spec), 'nomad').catch((err: Error) => this.o.log.error({ job: d.JobID, err: err.message }, 'revert failed')));
    return target.Version;
  }

  private async end(d: Deployment, status: DeploymentStatus, desc: string): Promise<void> {
    d.Status = status;
    d.StatusDescription = desc;
    for (const t of this.timers.get(`progress:${d.ID}`) ?? []) clearTimeout(t);
    for (const key of [...this.actions.keys()]) if (key.startsWith(`${d.ID}/`)) this.actions.delete(key);
    for (const a of await this.o.store.allocations(d.ID)) {
      this.disarm(a.ID);
      if (!a.EngineJob || status === DeploymentStatus.successful) continue;
      // A newer version replaces the runs of a cancelled deployment; a failed one lets them finish.
      const replace = status === DeploymentStatus.cancelled && a.RunEndedMs === null;
      await this.o.engine.stop(a.EngineJob, 'nomad', replace).catch(() => {});
      if (replace) {
        a.DesiredStatus = 'stop';
        a.DesiredDescription = 'alloc is being updated due to job update';
        await this.saveAlloc(a);
      }
    }
    await this.save(d);
    this.o.log.info({ deployment: d.ID, job: d.JobID, version: d.JobVersion, status, description: desc }, 'deployment ended');
  }

  /** ProgressDeadline: fails a running deployment when no allocation became healthy in time. */
  private armProgress(d: Deployment): void {
    const key = `progress:${d.ID}`;
    for (const t of this.timers.get(key) ?? []) clearTimeout(t);
    this.timers.delete(key);
    const deadlines = Object.values(d.TaskGroups).map((g) => g.ProgressDeadline / 1e6).filter((ms) => ms > 0);
    if (deadlines.length === 0) return;
    const at = d.LastProgressMs + Math.min(...deadlines);
    for (const g of Object.values(d.TaskGroups)) g.RequireProgressBy = new Date(at).toISOString();
    this.addTimer(key, setTimeout(() => this.background(d.ID, 'progress deadline', async () => {
      const now = await this.o.store.deployment(d.ID);
      if (!now || now.Status !== DeploymentStatus.running || now.LastProgressMs !== d.LastProgressMs) return;
      if (now.StatusDescription === Description.needsPromotion) return; // a person has the next move
      await this.failDeployment(now, Description.progressDeadline);
    }), Math.max(0, at - Date.now())));
  }
}
