// The deployment's decisions, pure (as Nomad's reconcile.go): from the job version's spec, the
// deployment, its allocations, what the engine and the inventory observed and `now`, the actions
// to take. Canaries first, then at most MaxParallel in flight; promotion (by hand or automatic);
// an allocation is healthy when its run succeeded and its node stayed connected for
// MinHealthyTime (HealthCheck task_states) or when marked so by hand (manual), unhealthy when its
// run failed or HealthyDeadline passed first; an unhealthy allocation, or no progress within
// ProgressDeadline, fails the deployment, and AutoRevert registers the last stable version again.
// No I/O here: the controller applies the actions (state in one compare-and-set, then effects).
import { createHash } from 'node:crypto';
import {
  Description, DeploymentStatus, sameSpec, TERMINAL_DEPLOYMENT,
  type Allocation, type Deployment, type JobSpec, type JobVersion, type TaskGroupSpec,
} from './model.ts';
import { DeadlineKind, type Action, type Command, type NodeObservation, type RunObservation } from './actions.ts';
import { applyAction, cloneState, newAllocation } from './state.ts';

export { DeadlineKind, type Action, type Command, type NodeObservation, type RunObservation } from './actions.ts';

/** How long an orchestrator that took on creating an allocation's run has before another may. */
export const SUBMIT_LEASE_MS = 30_000;

export interface ReconcileInput {
  spec: JobSpec;
  deployment: Deployment;
  allocations: Allocation[];
  nowMs: number;
  /** By allocation id: its run, for allocations whose run has not ended yet. */
  runs?: Record<string, RunObservation>;
  /** By node name; a node missing counts as connected. */
  nodes?: Record<string, NodeObservation>;
  /** Every version of the job (AutoRevert looks for the last stable one). */
  versions?: JobVersion[];
  command?: Command;
}

/** The id of a deployment's allocation on a node: the same for every reconcile, so never placed twice. */
export function allocationId(deploymentId: string, group: string, node: string): string {
  const h = createHash('sha256').update(deploymentId).update('\n').update(group).update('\n').update(node).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export const deadlineKey = (deploymentId: string, kind: DeadlineKind, part: string | number): string => `${deploymentId}-${kind}-${part}`;

/** The earliest ProgressDeadline of a deployment's groups (ms), or null when none has one. */
export function progressDeadlineMs(d: Deployment): number | null {
  const all = Object.values(d.TaskGroups).map((g) => g.ProgressDeadline / 1e6).filter((ms) => ms > 0);
  return all.length === 0 ? null : Math.min(...all);
}

export function reconcile(input: ReconcileInput): Action[] {
  const { spec, nowMs: now } = input;
  const st = cloneState(input.deployment, input.allocations);
  const d = st.deployment;
  const out: Action[] = [];
  const act = (a: Action): void => {
    out.push(a);
    applyAction(st, a, now);
  };
  const allocs = (): Allocation[] => st.allocations;
  const groupOf = (a: Allocation): TaskGroupSpec => spec.TaskGroups.find((g) => g.Name === a.TaskGroup)!;

  const end = (status: DeploymentStatus, desc: string): void => {
    act({ type: 'status', status, description: desc });
    if (status === DeploymentStatus.successful) return;
    for (const a of allocs()) {
      if (!a.EngineJob || a.RunEndedMs !== null) continue;
      // A newer version replaces the runs of a cancelled deployment; a failed one lets them finish.
      act({ type: 'stop-run', alloc: a.ID, replace: status === DeploymentStatus.cancelled });
    }
  };
  const fail = (why: string): void => {
    let desc: string = why;
    let revert: number | null = null;
    if (spec.TaskGroups.some((g) => g.Update.AutoRevert)) {
      const stable = (input.versions ?? []).filter((v) => v.Stable && v.Version !== d.JobVersion).at(-1);
      if (stable && sameSpec(stable.Spec, spec)) desc = `${why} - not rolling back to stable job version ${stable.Version} as current job has same specification`;
      else if (stable) {
        desc = `${why} - rolling back to job version ${stable.Version}`;
        revert = stable.Version;
      }
    }
    end(DeploymentStatus.failed, desc);
    if (revert !== null) act({ type: 'revert', version: revert });
  };

  // What the engine observed: runs started and ended (for ended deployments too).
  for (const a of allocs()) {
    const run = input.runs?.[a.ID];
    if (!a.EngineJob || a.RunEndedMs !== null || !run) continue;
    if (run.state !== 'pending' && a.ClientStatus === 'pending' && run.startMs !== null) act({ type: 'run-started', alloc: a.ID, atMs: run.startMs });
    if (run.state === 'finished' || run.state === 'failed') {
      const ok = run.state === 'finished';
      act({ type: 'run-ended', alloc: a.ID, ok, exitCode: run.exitCode ?? (ok ? 0 : 1), message: run.message, atMs: run.endMs ?? now });
    }
  }

  // Runs to create: placed, not yet created, nobody on it (or whoever was let its lease pass);
  // while paused too (pause holds new placements, not the runs of those already placed).
  const claimRuns = (): void => {
    for (const a of allocs()) {
      if (a.EngineJob || a.DeploymentStatus.Healthy !== null || a.DesiredStatus === 'stop') continue;
      const claim = a.SubmitClaimMs ?? null;
      if (claim === null || now >= claim + SUBMIT_LEASE_MS) {
        act({ type: 'claim', alloc: a.ID });
        act({ type: 'arm', deadline: DeadlineKind.lease, key: deadlineKey(d.ID, DeadlineKind.lease, `${a.ID}-${now}`), atMs: now + SUBMIT_LEASE_MS });
      } else act({ type: 'arm', deadline: DeadlineKind.lease, key: deadlineKey(d.ID, DeadlineKind.lease, `${a.ID}-${claim}`), atMs: claim + SUBMIT_LEASE_MS });
    }
  };

  const cmd = input.command;
  const terminal = (): boolean => TERMINAL_DEPLOYMENT.includes(d.Status);
  if (cmd?.kind === 'submitted') {
    const a = allocs().find((x) => x.ID === cmd.alloc);
    if (a && !a.EngineJob) {
      act({ type: 'submitted', alloc: a.ID, engineJob: cmd.engineJob });
      if (terminal() && d.Status !== DeploymentStatus.successful) act({ type: 'stop-run', alloc: a.ID, replace: d.Status === DeploymentStatus.cancelled });
    }
  } else if (cmd && !terminal()) {
    switch (cmd.kind) {
      case 'cancel':
        end(DeploymentStatus.cancelled, Description.newerVersion);
        break;
      case 'fail':
        fail(Description.byUser);
        break;
      case 'pause':
        act({ type: 'status', status: DeploymentStatus.paused, description: Description.paused });
        break;
      case 'resume':
        act({ type: 'status', status: DeploymentStatus.running, description: Description.running });
        act({ type: 'progress' });
        break;
      case 'promote':
        for (const g of cmd.groups) act({ type: 'promote', group: g, auto: false });
        act({ type: 'progress' });
        break;
      case 'health':
        for (const id of cmd.healthy) act({ type: 'health', alloc: id, healthy: true, why: cmd.why ?? 'marked healthy by hand' });
        for (const id of cmd.unhealthy) act({ type: 'health', alloc: id, healthy: false, why: cmd.why ?? 'marked unhealthy by hand' });
        break;
    }
  }
  if (terminal()) return out;

  // Health of the allocations not decided yet (while paused too).
  for (const a of allocs()) {
    if (a.DeploymentStatus.Healthy !== null || a.DesiredStatus === 'stop') continue;
    const u = groupOf(a).Update;
    const deadline = a.PlacedMs + u.HealthyDeadlineMs;
    if (a.ClientStatus === 'failed') {
      act({ type: 'health', alloc: a.ID, healthy: false, why: 'the run failed' });
      continue;
    }
    if (a.ClientStatus === 'complete' && u.HealthCheck === 'task_states' && a.RunEndedMs !== null) {
      const healthyAt = a.RunEndedMs + u.MinHealthyTimeMs;
      const node = input.nodes?.[a.NodeName];
      // Down within [run end, healthyAt): unhealthy; a disconnection after healthyAt is not this one's.
      const downInWindow = node !== undefined && node.lastDownMs !== null && node.lastDownMs >= a.RunEndedMs && node.lastDownMs < healthyAt;
      const downNow = node !== undefined && !node.connected && (node.lastDownMs === null ? now < healthyAt : node.lastDownMs < healthyAt);
      if (downInWindow || downNow) {
        act({ type: 'health', alloc: a.ID, healthy: false, why: 'the node disconnected before MinHealthyTime passed' });
        continue;
      }
      if (healthyAt <= deadline && now >= healthyAt) {
        act({ type: 'health', alloc: a.ID, healthy: true, why: `the node stayed connected for ${u.MinHealthyTimeMs} ms after a successful run` });
        continue;
      }
      if (healthyAt <= deadline) act({ type: 'arm', deadline: DeadlineKind.minHealthy, key: deadlineKey(d.ID, DeadlineKind.minHealthy, a.ID), atMs: healthyAt });
    }
    if (now >= deadline) act({ type: 'health', alloc: a.ID, healthy: false, why: 'healthy deadline reached' });
    else act({ type: 'arm', deadline: DeadlineKind.healthy, key: deadlineKey(d.ID, DeadlineKind.healthy, a.ID), atMs: deadline });
  }
  if (allocs().some((a) => a.DeploymentStatus.Healthy === false && a.DesiredStatus !== 'stop')) {
    fail(Description.unhealthy);
    return out;
  }
  if (d.Status !== DeploymentStatus.running) {
    claimRuns();
    return out;
  }

  // Placement: canaries first; after promotion the rest, at most MaxParallel undecided at once.
  let done = true;
  let awaitingPromotion = false;
  for (const g of spec.TaskGroups) {
    const gs = d.TaskGroups[g.Name]!;
    const mine = () => allocs().filter((a) => a.TaskGroup === g.Name);
    const placed = new Set(mine().map((a) => a.NodeName));
    const canaries = gs.Nodes.slice(0, gs.DesiredCanaries);
    if (gs.DesiredCanaries > 0 && !gs.Promoted) {
      for (const node of canaries) if (!placed.has(node)) act({ type: 'place', alloc: newAllocation(d, g, node, true, allocationId(d.ID, g.Name, node), now) });
      const healthy = mine().filter((a) => a.DeploymentStatus.Canary && a.DeploymentStatus.Healthy === true).length;
      if (healthy === gs.DesiredCanaries && gs.AutoPromote) act({ type: 'promote', group: g.Name, auto: true });
      else {
        done = false;
        if (healthy === gs.DesiredCanaries) awaitingPromotion = true;
        continue;
      }
    }
    let inFlight = mine().filter((a) => a.DeploymentStatus.Healthy === null).length;
    for (const node of gs.Nodes) {
      if (inFlight >= g.Update.MaxParallel) break;
      if (placed.has(node) || canaries.includes(node)) continue;
      act({ type: 'place', alloc: newAllocation(d, g, node, false, allocationId(d.ID, g.Name, node), now) });
      placed.add(node);
      inFlight++;
    }
    if (mine().length < gs.DesiredTotal || mine().some((a) => a.DeploymentStatus.Healthy !== true)) done = false;
  }

  claimRuns();

  if (done) {
    act({ type: 'status', status: DeploymentStatus.successful, description: Description.successful });
    act({ type: 'mark-stable' });
    return out;
  }
  const desc = awaitingPromotion ? Description.needsPromotion : Description.running;
  if (d.StatusDescription !== desc) act({ type: 'status', status: DeploymentStatus.running, description: desc });

  // ProgressDeadline: no allocation became healthy in time (unless a person has the next move).
  const progressMs = progressDeadlineMs(d);
  if (progressMs !== null) {
    const at = d.LastProgressMs + progressMs;
    if (now >= at && desc !== Description.needsPromotion) fail(Description.progressDeadline);
    else if (now < at) act({ type: 'arm', deadline: DeadlineKind.progress, key: deadlineKey(d.ID, DeadlineKind.progress, at), atMs: at });
  }
  return out;
}
