// The Nomad face's deployment decisions, pure: reconcile driven as the applier drives it (decide,
// apply the state, do the "effects" by hand: submit what is claimed, feed run observations, advance
// simulated time). No Redis, no engine, no clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeObservation, RunObservation } from '../../orchestrator/nomad/actions.ts';
import {
  Description, DeploymentStatus, isFullId, msToNs, normalizeSpec,
  type Allocation, type Deployment, type GroupState, type JobSpec, type JobVersion, type NomadJobInput,
} from '../../orchestrator/nomad/model.ts';
import { allocationId, reconcile, SUBMIT_LEASE_MS, type Action, type Command, type ReconcileInput } from '../../orchestrator/nomad/reconcile.ts';
import { applyActions } from '../../orchestrator/nomad/state.ts';

type UpdateInput = NonNullable<NomadJobInput['TaskGroups'][number]['Update']>;

const NODES = ['n1', 'n2', 'n3', 'n4'];
const T0 = Date.UTC(2026, 0, 1);
const MIN_HEALTHY_MS = 100;

/** A one-group job as a Nomad client registers it (realistic input through normalizeSpec). */
function specOf(update: UpdateInput = {}, params: Record<string, unknown> = { seconds: 1 }, nodes: string[] = NODES): JobSpec {
  return normalizeSpec({ ID: 'web', TaskGroups: [{ Name: 'web', Scope: { nodes }, Task: { task: 'sample::sleep', params }, Update: { MinHealthyTime: `${MIN_HEALTHY_MS}ms`, ...update } }] });
}

/** The deployment of `version`, as the controller's startDeployment builds it. */
function startDeployment(spec: JobSpec, version: number, nowMs: number, nodes: string[] = NODES): Deployment {
  const groups: Record<string, GroupState> = {};
  for (const g of spec.TaskGroups) {
    groups[g.Name] = {
      Promoted: false, AutoPromote: g.Update.AutoPromote, AutoRevert: g.Update.AutoRevert,
      DesiredCanaries: Math.min(g.Update.Canary, nodes.length), DesiredTotal: nodes.length, PlacedCanaries: [], PlacedAllocs: 0, HealthyAllocs: 0, UnhealthyAllocs: 0,
      ProgressDeadline: msToNs(g.Update.ProgressDeadlineMs), RequireProgressBy: null, Nodes: nodes,
    };
  }
  return {
    ID: `7e57d000-0000-4000-8000-00000000000${version}`, JobID: spec.ID, JobVersion: version, JobModifyIndex: 10 + version, JobSpecModifyIndex: 10 + version, JobCreateIndex: 10,
    TaskGroups: groups, Status: DeploymentStatus.running, StatusDescription: Description.running, CreateIndex: 11 + version, ModifyIndex: 11 + version, StartMs: nowMs, LastProgressMs: nowMs,
  };
}

const versionOf = (spec: JobSpec, version: number, stable: boolean): JobVersion => ({ Version: version, Spec: spec, Stable: stable, SubmitTime: msToNs(T0), ModifyIndex: 10 + version });

/** One deployment under simulation: its state, what the "engine" and "inventory" report, the time. */
class Sim {
  deployment: Deployment;
  allocations: Allocation[] = [];
  runs: Record<string, RunObservation> = {};
  nodes: Record<string, NodeObservation> = {};
  versions: JobVersion[];
  now = T0;
  /** Every action decided so far, in order. */
  readonly history: Action[] = [];

  constructor(readonly spec: JobSpec, opts: { versions?: JobVersion[]; version?: number; nodes?: string[] } = {}) {
    const version = opts.version ?? 0;
    this.versions = opts.versions ?? [versionOf(spec, version, false)];
    this.deployment = startDeployment(spec, version, this.now, opts.nodes);
  }

  input(command?: Command): ReconcileInput {
    return { spec: this.spec, deployment: this.deployment, allocations: this.allocations, nowMs: this.now, runs: this.runs, nodes: this.nodes, versions: this.versions, ...(command ? { command } : {}) };
  }

  /** One reconcile and its state applied (no effects). */
  decide(command?: Command): Action[] {
    const actions = reconcile(this.input(command));
    const next = applyActions(this.deployment, this.allocations, actions, this.now);
    this.deployment = next.deployment;
    this.allocations = next.allocations;
    this.history.push(...actions);
    this.checkMaxParallel();
    return actions;
  }

  /** A reconcile and its effects: each claimed allocation submitted (its run pending) as the applier does. */
  step(command?: Command): Action[] {
    const actions = this.decide(command);
    const all = [...actions];
    for (const a of actions) {
      if (a.type !== 'claim') continue;
      all.push(...this.decide({ kind: 'submitted', alloc: a.alloc, engineJob: `job-${a.alloc}` }));
      this.runs[a.alloc] = { state: 'pending', startMs: null, endMs: null, exitCode: null, message: null };
    }
    return all;
  }

  advance(ms: number): void { this.now += ms; }

  alloc(node: string): Allocation {
    const a = this.allocations.find((x) => x.NodeName === node);
    assert.ok(a, `an allocation on ${node}`);
    return a;
  }

  start(node: string): void {
    this.runs[this.alloc(node).ID] = { state: 'running', startMs: this.now, endMs: null, exitCode: null, message: null };
  }

  end(node: string, ok = true): void {
    const id = this.alloc(node).ID;
    this.runs[id] = { state: ok ? 'finished' : 'failed', startMs: this.runs[id]?.startMs ?? this.now, endMs: this.now, exitCode: ok ? 0 : 2, message: ok ? null : 'boom' };
  }

  /** Runs every allocation that has a run and no end yet to a successful end, then waits MinHealthyTime. */
  finishAll(): Action[] {
    for (const a of this.allocations) if (a.EngineJob && a.RunEndedMs === null) this.end(a.NodeName);
    const ended = this.step();
    this.advance(MIN_HEALTHY_MS);
    return [...ended, ...this.step()];
  }

  placedNodes(): string[] { return this.allocations.map((a) => a.NodeName); }

  private checkMaxParallel(): void {
    for (const g of this.spec.TaskGroups) {
      const undecided = this.allocations.filter((a) => a.TaskGroup === g.Name && !a.DeploymentStatus.Canary && a.DeploymentStatus.Healthy === null);
      assert.ok(undecided.length <= g.Update.MaxParallel, `at most MaxParallel (${g.Update.MaxParallel}) undecided allocations, saw ${undecided.length}`);
    }
  }
}

const ofType = <K extends Action['type']>(actions: Action[], type: K): Extract<Action, { type: K }>[] =>
  actions.filter((a): a is Extract<Action, { type: K }> => a.type === type);
const placedOn = (actions: Action[]): string[] => ofType(actions, 'place').map((a) => a.alloc.NodeName);
const statuses = (actions: Action[]): string[] => ofType(actions, 'status').map((a) => a.status);

describe('nomad reconcile: rolling placement', () => {
  it('places at most MaxParallel at once, the rest as earlier ones become healthy, then marks the version stable', () => {
    const sim = new Sim(specOf({ MaxParallel: 2 }));
    const first = sim.step();
    assert.deepEqual(placedOn(first), ['n1', 'n2']);
    assert.deepEqual(ofType(first, 'claim').map((a) => a.alloc), [sim.alloc('n1').ID, sim.alloc('n2').ID]);
    assert.equal(sim.deployment.TaskGroups.web!.PlacedAllocs, 2);

    sim.start('n1');
    sim.start('n2');
    assert.deepEqual(placedOn(sim.step()), [], 'nothing more while two are undecided');
    assert.equal(sim.alloc('n1').ClientStatus, 'running');

    const rest = sim.finishAll();
    assert.deepEqual(ofType(rest, 'health').map((a) => [a.alloc, a.healthy]), [[sim.alloc('n1').ID, true], [sim.alloc('n2').ID, true]]);
    assert.deepEqual(placedOn(rest), ['n3', 'n4']);
    assert.ok(!statuses(rest).includes(DeploymentStatus.successful));

    const last = sim.finishAll();
    assert.deepEqual(ofType(last, 'status').at(-1), { type: 'status', status: DeploymentStatus.successful, description: Description.successful });
    assert.equal(ofType(last, 'mark-stable').length, 1);
    assert.equal(sim.deployment.Status, DeploymentStatus.successful);
    assert.equal(sim.deployment.TaskGroups.web!.HealthyAllocs, 4);
    assert.deepEqual(sim.placedNodes(), NODES, 'each node placed once');
  });

  it('keeps MaxParallel 1 to one undecided allocation through the whole rollout', () => {
    const sim = new Sim(specOf({ MaxParallel: 1 }));
    sim.step();
    for (let i = 0; i < NODES.length && sim.deployment.Status === DeploymentStatus.running; i++) sim.finishAll();
    assert.equal(sim.deployment.Status, DeploymentStatus.successful);
    assert.deepEqual(placedOn(sim.history), NODES);
    assert.equal(ofType(sim.history, 'mark-stable').length, 1);
  });
});

describe('nomad reconcile: canaries and promotion', () => {
  it('places only the canaries, nothing else before promotion, the rest after a manual promote', () => {
    const sim = new Sim(specOf({ Canary: 1, MaxParallel: 3 }));
    const first = sim.step();
    assert.deepEqual(placedOn(first), ['n1']);
    assert.equal(sim.alloc('n1').DeploymentStatus.Canary, true);
    assert.deepEqual(sim.deployment.TaskGroups.web!.PlacedCanaries, [sim.alloc('n1').ID]);

    const healthy = sim.finishAll();
    assert.equal(ofType(healthy, 'health')[0]?.healthy, true);
    assert.deepEqual(placedOn(healthy), []);
    assert.equal(sim.deployment.StatusDescription, Description.needsPromotion);
    sim.advance(60_000);
    assert.deepEqual(placedOn(sim.step()), [], 'still nothing placed while waiting for promotion');
    assert.equal(ofType(sim.history, 'promote').length, 0);

    const promoted = sim.step({ kind: 'promote', groups: ['web'] });
    assert.deepEqual(ofType(promoted, 'promote'), [{ type: 'promote', group: 'web', auto: false }]);
    assert.deepEqual(placedOn(promoted), ['n2', 'n3', 'n4']);
    assert.equal(sim.deployment.TaskGroups.web!.Promoted, true);
    assert.equal(sim.deployment.StatusDescription, Description.running);
    assert.equal(sim.alloc('n2').DeploymentStatus.Canary, false);

    const done = sim.finishAll();
    assert.ok(statuses(done).includes(DeploymentStatus.successful));
    assert.equal(ofType(done, 'mark-stable').length, 1);
  });

  it('promotes by itself (AutoPromote) once every canary is healthy', () => {
    const sim = new Sim(specOf({ Canary: 2, AutoPromote: true, MaxParallel: 2 }));
    assert.deepEqual(placedOn(sim.step()), ['n1', 'n2']);
    sim.end('n1');
    sim.step();
    sim.advance(MIN_HEALTHY_MS);
    const one = sim.step();
    assert.equal(ofType(one, 'health').length, 1);
    assert.equal(ofType(one, 'promote').length, 0, 'one of two canaries healthy: no promotion');

    const both = sim.finishAll();
    assert.deepEqual(ofType(both, 'promote'), [{ type: 'promote', group: 'web', auto: true }]);
    assert.deepEqual(placedOn(both), ['n3', 'n4']);
    assert.ok(!sim.history.some((a) => a.type === 'status' && a.description === Description.needsPromotion), 'never waits for a person');
    sim.finishAll();
    assert.equal(sim.deployment.Status, DeploymentStatus.successful);
  });
});

describe('nomad reconcile: allocation health', () => {
  it('is healthy only MinHealthyTime after a successful run, with an arm for that time before', () => {
    const sim = new Sim(specOf({ MaxParallel: 1 }));
    sim.step();
    const id = sim.alloc('n1').ID;
    sim.advance(500);
    sim.end('n1');
    const endAt = sim.now;
    const ended = sim.step();
    assert.deepEqual(ofType(ended, 'run-ended').map((a) => [a.alloc, a.ok, a.atMs]), [[id, true, endAt]]);
    assert.equal(ofType(ended, 'health').length, 0);
    assert.ok(ended.some((a) => a.type === 'arm' && a.deadline === 'min-healthy' && a.atMs === endAt + MIN_HEALTHY_MS));

    sim.advance(MIN_HEALTHY_MS - 1);
    assert.equal(ofType(sim.step(), 'health').length, 0, '1 ms before MinHealthyTime: not yet');
    sim.advance(1);
    const healthy = sim.step();
    assert.deepEqual(ofType(healthy, 'health').map((a) => [a.alloc, a.healthy]), [[id, true]]);
    assert.equal(sim.alloc('n1').DeploymentStatus.Healthy, true);
  });

  /** The health decided for n1 whose run ended at E, its node as `node(E)` says, reconciled at E + `atMs`. */
  function healthWithNode(node: (endMs: number) => NodeObservation, atMs: number): { health: boolean[]; sim: Sim } {
    const sim = new Sim(specOf({ MaxParallel: 1 }));
    sim.step();
    sim.advance(10);
    sim.end('n1');
    sim.step();
    sim.nodes.n1 = node(sim.now);
    sim.advance(atMs);
    return { health: ofType(sim.step(), 'health').map((a) => a.healthy), sim };
  }

  it('is unhealthy when its node disconnects before MinHealthyTime passed (down now, or down in between)', () => {
    const down = healthWithNode((e) => ({ connected: false, lastDownMs: e + 50 }), 50);
    assert.deepEqual(down.health, [false]);
    assert.equal(down.sim.deployment.StatusDescription, Description.unhealthy);
    assert.deepEqual(healthWithNode((e) => ({ connected: true, lastDownMs: e + 50 }), MIN_HEALTHY_MS).health, [false]);
  });

  it('stays healthy when its node went down only before the run ended', () => {
    assert.deepEqual(healthWithNode((e) => ({ connected: true, lastDownMs: e - 10 }), MIN_HEALTHY_MS).health, [true]);
  });

  it('stays healthy when its node went down only after MinHealthyTime passed (a late reconcile)', () => {
    assert.deepEqual(healthWithNode((e) => ({ connected: true, lastDownMs: e + MIN_HEALTHY_MS + 50 }), MIN_HEALTHY_MS + 100).health, [true]);
  });

  it('is unhealthy once HealthyDeadline passed without a healthy run, with an arm for it before', () => {
    const sim = new Sim(specOf({ MaxParallel: 1, HealthyDeadline: '1s', ProgressDeadline: '1m' }));
    const placedAt = sim.now;
    const first = sim.step();
    assert.ok(first.some((a) => a.type === 'arm' && a.deadline === 'healthy' && a.atMs === placedAt + 1000));
    sim.start('n1');
    sim.advance(999);
    assert.equal(ofType(sim.step(), 'health').length, 0);
    sim.advance(1);
    const late = sim.step();
    assert.deepEqual(ofType(late, 'health').map((a) => [a.healthy, a.why]), [[false, 'healthy deadline reached']]);
    assert.equal(sim.deployment.Status, DeploymentStatus.failed);
    assert.deepEqual(ofType(late, 'stop-run'), [{ type: 'stop-run', alloc: sim.alloc('n1').ID, replace: false }], 'a failed deployment lets its runs finish');
  });

  it('is unhealthy when its run failed, and that fails the deployment', () => {
    const sim = new Sim(specOf({ MaxParallel: 2 }));
    sim.step();
    sim.start('n1');
    sim.start('n2');
    sim.step();
    sim.advance(200);
    sim.end('n1', false);
    const failed = sim.step();
    const id = sim.alloc('n1').ID;
    assert.deepEqual(ofType(failed, 'run-ended').map((a) => [a.alloc, a.ok, a.exitCode, a.message]), [[id, false, 2, 'boom']]);
    assert.deepEqual(ofType(failed, 'health').map((a) => [a.alloc, a.healthy, a.why]), [[id, false, 'the run failed']]);
    assert.deepEqual(ofType(failed, 'status').at(-1), { type: 'status', status: DeploymentStatus.failed, description: Description.unhealthy });
    assert.deepEqual(ofType(failed, 'stop-run'), [{ type: 'stop-run', alloc: sim.alloc('n2').ID, replace: false }]);
    assert.equal(sim.alloc('n1').ClientStatus, 'failed');
    assert.equal(sim.deployment.TaskGroups.web!.UnhealthyAllocs, 1);
    assert.equal(ofType(failed, 'mark-stable').length + ofType(failed, 'revert').length, 0);
  });

  it('takes health by hand with HealthCheck manual', () => {
    const sim = new Sim(specOf({ MaxParallel: 1, HealthCheck: 'manual' }));
    sim.step();
    sim.end('n1');
    sim.step();
    sim.advance(MIN_HEALTHY_MS * 10);
    assert.equal(ofType(sim.step(), 'health').length, 0, 'a successful run alone is not healthy');
    const marked = sim.step({ kind: 'health', healthy: [sim.alloc('n1').ID], unhealthy: [] });
    assert.deepEqual(ofType(marked, 'health').map((a) => a.healthy), [true]);
    assert.deepEqual(placedOn(marked), ['n2']);
  });
});

describe('nomad reconcile: AutoRevert', () => {
  const older = specOf({ MaxParallel: 4, AutoRevert: true }, { seconds: 0 });
  const current = specOf({ MaxParallel: 4, AutoRevert: true });

  function failOnce(versions: JobVersion[], spec = current): Action[] {
    const sim = new Sim(spec, { versions, version: versions.at(-1)!.Version });
    sim.step();
    sim.end('n1', false);
    return sim.step();
  }

  it('reverts to the last earlier stable version of a different spec', () => {
    const actions = failOnce([versionOf(older, 0, true), versionOf(specOf({ MaxParallel: 4, AutoRevert: true }, { seconds: 5 }), 1, false), versionOf(current, 2, false)]);
    assert.deepEqual(ofType(actions, 'revert'), [{ type: 'revert', version: 0 }]);
    assert.equal(ofType(actions, 'status').at(-1)?.description, `${Description.unhealthy} - rolling back to job version 0`);
  });

  it('does not revert to a stable version with the same spec, and says so', () => {
    const actions = failOnce([versionOf(older, 0, true), versionOf(current, 1, true), versionOf(current, 2, false)]);
    assert.equal(ofType(actions, 'revert').length, 0);
    assert.equal(ofType(actions, 'status').at(-1)?.description, `${Description.unhealthy} - not rolling back to stable job version 1 as current job has same specification`);
  });

  it('does not revert without AutoRevert or without an earlier stable version', () => {
    const plain = specOf({ MaxParallel: 4 });
    const without = failOnce([versionOf(older, 0, true), versionOf(plain, 1, false)], plain);
    assert.equal(ofType(without, 'revert').length, 0);
    assert.equal(ofType(without, 'status').at(-1)?.description, Description.unhealthy);
    const none = failOnce([versionOf(older, 0, false), versionOf(current, 1, false)]);
    assert.equal(ofType(none, 'revert').length, 0);
    assert.equal(ofType(none, 'status').at(-1)?.description, Description.unhealthy);
  });
});

describe('nomad reconcile: ProgressDeadline', () => {
  it('fails a deployment without progress at the deadline, with an arm for it before', () => {
    const sim = new Sim(specOf({ MaxParallel: 1, ProgressDeadline: '1s', HealthyDeadline: '1m' }));
    const first = sim.step();
    assert.ok(first.some((a) => a.type === 'arm' && a.deadline === 'progress' && a.atMs === T0 + 1000));
    sim.start('n1');
    sim.advance(999);
    assert.equal(sim.step().some((a) => a.type === 'status' && a.status === DeploymentStatus.failed), false);
    sim.advance(1);
    const late = sim.step();
    assert.deepEqual(ofType(late, 'status').at(-1), { type: 'status', status: DeploymentStatus.failed, description: Description.progressDeadline });
  });

  it('starts the progress deadline again when an allocation becomes healthy', () => {
    const sim = new Sim(specOf({ MaxParallel: 1, ProgressDeadline: '1s' }));
    sim.step();
    sim.advance(800);
    const healthyAt = sim.now + MIN_HEALTHY_MS;
    sim.finishAll();
    assert.equal(sim.deployment.LastProgressMs, healthyAt);
    sim.advance(500); // past the first deadline (T0 + 1 s), before the new one
    const later = sim.step();
    assert.equal(sim.deployment.Status, DeploymentStatus.running);
    assert.ok(later.some((a) => a.type === 'arm' && a.deadline === 'progress' && a.atMs === healthyAt + 1000));
  });

  it('does not fail a deployment that waits for promotion', () => {
    const sim = new Sim(specOf({ Canary: 1, MaxParallel: 2, ProgressDeadline: '1s' }));
    sim.step();
    sim.finishAll();
    sim.advance(10_000);
    const waiting = sim.step();
    assert.equal(sim.deployment.Status, DeploymentStatus.running);
    assert.equal(sim.deployment.StatusDescription, Description.needsPromotion);
    assert.equal(waiting.some((a) => a.type === 'arm' && a.deadline === 'progress'), false);
    const promoted = sim.step({ kind: 'promote', groups: ['web'] });
    assert.equal(sim.deployment.LastProgressMs, sim.now, 'promotion is progress');
    assert.ok(promoted.some((a) => a.type === 'arm' && a.deadline === 'progress' && a.atMs === sim.now + 1000));
  });
});

describe('nomad reconcile: commands', () => {
  it('holds placement while paused and places again on resume', () => {
    const sim = new Sim(specOf({ MaxParallel: 1 }));
    sim.step();
    const paused = sim.step({ kind: 'pause' });
    assert.deepEqual(ofType(paused, 'status'), [{ type: 'status', status: DeploymentStatus.paused, description: Description.paused }]);
    const healthy = sim.finishAll();
    assert.deepEqual(ofType(healthy, 'health').map((a) => a.healthy), [true], 'health is still taken while paused');
    assert.deepEqual(placedOn(healthy), []);
    sim.advance(3_600_000);
    assert.deepEqual(placedOn(sim.step()), [], 'nor later');
    assert.equal(sim.deployment.Status, DeploymentStatus.paused, 'no progress deadline while paused');

    const resumed = sim.step({ kind: 'resume' });
    assert.deepEqual(ofType(resumed, 'status')[0], { type: 'status', status: DeploymentStatus.running, description: Description.running });
    assert.ok(resumed.some((a) => a.type === 'progress'));
    assert.deepEqual(placedOn(resumed), ['n2']);
  });

  it('claims a lapsed submission lease again while paused (pause holds new placements only)', () => {
    const sim = new Sim(specOf({ MaxParallel: 1 }));
    sim.decide(); // placed and claimed; whoever claimed it never submits (it died)
    sim.advance(1000);
    sim.decide({ kind: 'pause' });
    sim.advance(SUBMIT_LEASE_MS - 1001);
    assert.equal(ofType(sim.decide(), 'claim').length, 0, 'not while the lease holds');
    sim.advance(1);
    const again = sim.step();
    assert.deepEqual(ofType(again, 'claim').map((x) => x.alloc), [sim.alloc('n1').ID]);
    assert.equal(sim.alloc('n1').EngineJob, `job-${sim.alloc('n1').ID}`);
    assert.equal(sim.deployment.Status, DeploymentStatus.paused);
    assert.deepEqual(placedOn(again), [], 'nothing new placed while paused');
  });

  it('cancel stops the runs (replaced), and a run submitted after it is stopped too', () => {
    const sim = new Sim(specOf({ MaxParallel: 3 }));
    sim.decide(); // placed and claimed; submit only n1 and n2 (n3's submission still under way)
    for (const n of ['n1', 'n2']) sim.decide({ kind: 'submitted', alloc: sim.alloc(n).ID, engineJob: `job-${n}` });
    sim.start('n1');
    const cancelled = sim.step({ kind: 'cancel' });
    assert.deepEqual(ofType(cancelled, 'status'), [{ type: 'status', status: DeploymentStatus.cancelled, description: Description.newerVersion }]);
    assert.deepEqual(ofType(cancelled, 'stop-run'), [{ type: 'stop-run', alloc: sim.alloc('n1').ID, replace: true }, { type: 'stop-run', alloc: sim.alloc('n2').ID, replace: true }]);
    assert.equal(sim.alloc('n1').DesiredStatus, 'stop');
    const late = sim.decide({ kind: 'submitted', alloc: sim.alloc('n3').ID, engineJob: 'job-n3' });
    assert.deepEqual(late, [{ type: 'submitted', alloc: sim.alloc('n3').ID, engineJob: 'job-n3' }, { type: 'stop-run', alloc: sim.alloc('n3').ID, replace: true }]);
  });

  it('fail marks the deployment failed by the user and lets its runs finish', () => {
    const sim = new Sim(specOf({ MaxParallel: 2 }));
    sim.step();
    const failed = sim.step({ kind: 'fail' });
    assert.deepEqual(ofType(failed, 'status'), [{ type: 'status', status: DeploymentStatus.failed, description: Description.byUser }]);
    assert.deepEqual(ofType(failed, 'stop-run').map((a) => a.replace), [false, false]);
    assert.equal(sim.alloc('n1').DesiredStatus, 'run');
  });
});

describe('nomad reconcile: submission claims', () => {
  it('claims an allocation without a run once per lease, and no more once it is submitted', () => {
    const sim = new Sim(specOf({ MaxParallel: 1 }));
    const first = sim.decide();
    const id = sim.alloc('n1').ID;
    assert.deepEqual(ofType(first, 'claim'), [{ type: 'claim', alloc: id }]);
    const lease = ofType(first, 'arm').find((a) => a.deadline === 'lease');
    assert.equal(lease?.atMs, T0 + SUBMIT_LEASE_MS);
    assert.equal(sim.alloc('n1').SubmitClaimMs, T0);

    sim.advance(SUBMIT_LEASE_MS - 1);
    const within = sim.decide();
    assert.equal(ofType(within, 'claim').length, 0, 'no second claim within the lease');
    assert.deepEqual(ofType(within, 'arm').find((a) => a.deadline === 'lease'), lease, 'the same lease deadline again');

    sim.advance(1);
    const after = sim.decide();
    assert.deepEqual(ofType(after, 'claim'), [{ type: 'claim', alloc: id }], 'claimed again once the lease passed');
    assert.equal(sim.alloc('n1').SubmitClaimMs, sim.now);

    const submitted = sim.decide({ kind: 'submitted', alloc: id, engineJob: 'job-1' });
    assert.deepEqual(ofType(submitted, 'submitted'), [{ type: 'submitted', alloc: id, engineJob: 'job-1' }]);
    assert.equal(sim.alloc('n1').EngineJob, 'job-1');
    sim.advance(SUBMIT_LEASE_MS * 2);
    assert.equal(ofType(sim.decide(), 'claim').length, 0);
    assert.equal(ofType(sim.decide({ kind: 'submitted', alloc: id, engineJob: 'job-2' }), 'submitted').length, 0, 'a second submission is not taken');
    assert.equal(sim.alloc('n1').EngineJob, 'job-1');
  });
});

describe('nomad reconcile: determinism', () => {
  it('gives each (deployment, group, node) one stable allocation id', () => {
    const id = allocationId('d1', 'web', 'n1');
    assert.ok(isFullId(id));
    assert.equal(allocationId('d1', 'web', 'n1'), id);
    assert.equal(new Set([id, allocationId('d2', 'web', 'n1'), allocationId('d1', 'db', 'n1'), allocationId('d1', 'web', 'n2')]).size, 4);
    const sim = new Sim(specOf({ MaxParallel: 2 }));
    sim.step();
    assert.equal(sim.alloc('n2').ID, allocationId(sim.deployment.ID, 'web', 'n2'));
  });

  it('decides the same for the same input, without changing it', () => {
    const sim = new Sim(specOf({ Canary: 1, MaxParallel: 2 }));
    sim.step();
    sim.end('n1');
    const input = sim.input();
    const before = structuredClone(input);
    const a = reconcile(input);
    assert.deepEqual(reconcile(structuredClone(before)), a);
    assert.deepEqual(input, before, 'the input is not changed');
    assert.ok(a.length > 0);
  });

  it('does nothing on a terminal deployment but record run ends', () => {
    const sim = new Sim(specOf({ MaxParallel: 2 }));
    sim.step();
    sim.start('n2');
    sim.step();
    sim.end('n1', false);
    sim.step();
    assert.equal(sim.deployment.Status, DeploymentStatus.failed);
    sim.advance(3_600_000);
    assert.deepEqual(sim.step(), [], 'no deadline, claim or placement later');
    for (const command of [{ kind: 'resume' }, { kind: 'promote', groups: ['web'] }, { kind: 'fail' }, { kind: 'cancel' }] as Command[]) assert.deepEqual(sim.step(command), []);
    sim.end('n2');
    const ended = sim.step();
    assert.deepEqual(ended.map((a) => a.type), ['run-ended']);
    assert.equal(sim.alloc('n2').ClientStatus, 'complete');
    assert.equal(sim.alloc('n2').DeploymentStatus.Healthy, null, 'no health decided after the end');

    const done = new Sim(specOf({ MaxParallel: 4 }));
    done.step();
    done.finishAll();
    assert.equal(done.deployment.Status, DeploymentStatus.successful);
    done.advance(3_600_000);
    assert.deepEqual(done.step({ kind: 'fail' }), []);
  });
});
