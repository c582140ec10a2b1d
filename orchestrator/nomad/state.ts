// A deployment's state under reconcile's actions, pure: what each action changes in the
// deployment and its allocations, and the counters derived from the allocations.
import {
  canonical, DeploymentStatus, event, msToNs, taskName,
  type Allocation, type Deployment, type TaskGroupSpec,
} from './model.ts';
import type { Action } from './actions.ts';

export interface DeploymentState {
  deployment: Deployment;
  allocations: Allocation[];
}

export interface AppliedState extends DeploymentState {
  deploymentChanged: boolean;
  /** The allocations new or changed. */
  changed: Allocation[];
}

export function cloneState(d: Deployment, allocs: Allocation[]): DeploymentState {
  return { deployment: structuredClone(d), allocations: structuredClone(allocs) };
}

/** A new allocation of group `g` on `node` (its run not created yet). */
export function newAllocation(d: Deployment, g: TaskGroupSpec, node: string, canary: boolean, id: string, nowMs: number): Allocation {
  return {
    ID: id, EvalID: id, Name: `${d.JobID}.${g.Name}[${d.TaskGroups[g.Name]!.Nodes.indexOf(node)}]`, NodeID: node, NodeName: node, JobID: d.JobID, JobVersion: d.JobVersion,
    TaskGroup: g.Name, DesiredStatus: 'run', DesiredDescription: '', ClientStatus: 'pending', ClientDescription: 'No tasks have started',
    TaskStates: { [taskName(g)]: { State: 'pending', Failed: false, StartedAt: null, FinishedAt: null, Events: [event('Received', 'Task received by client', nowMs)] } },
    DeploymentID: d.ID, DeploymentStatus: { Healthy: null, Timestamp: null, Canary: canary, ModifyIndex: 0 },
    CreateIndex: 0, ModifyIndex: 0, CreateTime: msToNs(nowMs), ModifyTime: msToNs(nowMs), EngineJob: null, PlacedMs: nowMs, RunEndedMs: null, SubmitClaimMs: null,
  };
}

/** Applies one action to `st` in place (effects-only actions change nothing). */
export function applyAction(st: DeploymentState, a: Action, nowMs: number): void {
  const d = st.deployment;
  const alloc = (id: string) => st.allocations.find((x) => x.ID === id);
  switch (a.type) {
    case 'place':
      st.allocations.push(structuredClone(a.alloc));
      break;
    case 'claim': {
      const x = alloc(a.alloc);
      if (x) x.SubmitClaimMs = nowMs;
      break;
    }
    case 'submitted': {
      const x = alloc(a.alloc);
      if (x) x.EngineJob = a.engineJob;
      break;
    }
    case 'run-started': {
      const x = alloc(a.alloc);
      if (!x) break;
      x.ClientStatus = 'running';
      x.ClientDescription = 'Tasks are running';
      const ts = Object.values(x.TaskStates)[0]!;
      ts.State = 'running';
      ts.StartedAt = new Date(a.atMs).toISOString();
      ts.Events.push(event('Started', 'Task started by client', a.atMs));
      break;
    }
    case 'run-ended': {
      const x = alloc(a.alloc);
      if (!x) break;
      const ts = Object.values(x.TaskStates)[0]!;
      ts.State = 'dead';
      ts.Failed = !a.ok;
      ts.FinishedAt = new Date(a.atMs).toISOString();
      const msg = a.ok ? 'Exit Code: 0' : `Exit Code: ${a.exitCode}${a.message ? `, ${a.message}` : ''}`;
      ts.Events.push({ ...event('Terminated', msg, a.atMs), ExitCode: a.exitCode, FailsTask: !a.ok });
      x.ClientStatus = a.ok ? 'complete' : 'failed';
      x.ClientDescription = a.ok ? 'All tasks have completed' : 'Failed tasks';
      x.RunEndedMs = a.atMs;
      break;
    }
    case 'health': {
      const x = alloc(a.alloc);
      if (!x) break;
      x.DeploymentStatus = { ...x.DeploymentStatus, Healthy: a.healthy, Timestamp: new Date(nowMs).toISOString() };
      Object.values(x.TaskStates)[0]!.Events.push(event(a.healthy ? 'Alloc Healthy' : 'Alloc Unhealthy', a.why, nowMs));
      if (a.healthy) d.LastProgressMs = nowMs;
      break;
    }
    case 'promote': {
      const g = d.TaskGroups[a.group];
      if (g) g.Promoted = true;
      break;
    }
    case 'status':
      d.Status = a.status;
      d.StatusDescription = a.description;
      break;
    case 'progress':
      d.LastProgressMs = nowMs;
      break;
    case 'stop-run': {
      const x = alloc(a.alloc);
      if (x && a.replace) {
        x.DesiredStatus = 'stop';
        x.DesiredDescription = 'alloc is being updated due to job update';
      }
      break;
    }
    case 'mark-stable':
    case 'revert':
    case 'arm':
      break;
  }
}

/** The counters and the progress time the API shows, from the allocations. */
export function deriveCounters(st: DeploymentState): void {
  const d = st.deployment;
  const deadlines = Object.values(d.TaskGroups).map((g) => g.ProgressDeadline / 1e6).filter((ms) => ms > 0);
  const by = deadlines.length > 0 && d.Status === DeploymentStatus.running ? new Date(d.LastProgressMs + Math.min(...deadlines)).toISOString() : null;
  for (const [name, g] of Object.entries(d.TaskGroups)) {
    const mine = st.allocations.filter((a) => a.TaskGroup === name);
    g.PlacedAllocs = mine.length;
    g.PlacedCanaries = mine.filter((a) => a.DeploymentStatus.Canary).map((a) => a.ID);
    g.HealthyAllocs = mine.filter((a) => a.DeploymentStatus.Healthy === true).length;
    g.UnhealthyAllocs = mine.filter((a) => a.DeploymentStatus.Healthy === false).length;
    if (by !== null || d.Status === DeploymentStatus.running) g.RequireProgressBy = by;
  }
}

/** The state after `actions`: new objects; which of them changed. */
export function applyActions(d: Deployment, allocs: Allocation[], actions: Action[], nowMs: number): AppliedState {
  const st = cloneState(d, allocs);
  for (const a of actions) applyAction(st, a, nowMs);
  deriveCounters(st);
  const before = new Map(allocs.map((a) => [a.ID, canonical(a)]));
  return {
    ...st,
    deploymentChanged: canonical(st.deployment) !== canonical(d),
    changed: st.allocations.filter((a) => before.get(a.ID) !== canonical(a)),
  };
}
