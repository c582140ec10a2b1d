// Pure parts of the Nomad face: durations, spec defaults and comparison, ids and prefixes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonical, deploymentJson, durationToMs, isFullId, isValidPrefix, normalizeSpec, sameSpec, specJson, type Deployment } from '../../orchestrator/nomad/model.ts';

describe('nomad model', () => {
  it('reads durations as Nomad sends them (nanoseconds) and as text', () => {
    assert.equal(durationToMs(10_000_000_000, 0), 10_000);
    assert.equal(durationToMs('10s', 0), 10_000);
    assert.equal(durationToMs('5m', 0), 300_000);
    assert.equal(durationToMs('250ms', 0), 250);
    assert.equal(durationToMs('1.5h', 0), 5_400_000);
    assert.equal(durationToMs(undefined, 42), 42);
  });

  it('fills the update policy defaults, so equal intentions compare equal', () => {
    const a = normalizeSpec({ ID: 'web', TaskGroups: [{ Name: 'g', Scope: { nodes: ['n1'] }, Task: { task: 'x::y' } }] });
    assert.deepEqual(a.TaskGroups[0]!.Update, { MaxParallel: 1, Canary: 0, AutoPromote: false, AutoRevert: false, MinHealthyTimeMs: 10_000, HealthyDeadlineMs: 300_000, ProgressDeadlineMs: 600_000, HealthCheck: 'task_states' });
    const b = normalizeSpec({ ID: 'web', TaskGroups: [{ Name: 'g', Scope: { nodes: ['n1'] }, Task: { task: 'x::y', params: {} }, Update: { MaxParallel: 1, MinHealthyTime: 10_000_000_000 } }] });
    assert.ok(sameSpec(a, b));
    const c = normalizeSpec({ ID: 'web', TaskGroups: [{ Name: 'g', Scope: { nodes: ['n1'] }, Task: { task: 'x::y', params: { v: 2 } } }] });
    assert.ok(!sameSpec(a, c));
    assert.equal(canonical({ b: 1, a: [2, { d: 1, c: 0 }] }), '{"a":[2,{"c":0,"d":1}],"b":1}');
  });

  it('shows durations back in nanoseconds and hides its own bookkeeping', () => {
    const s = normalizeSpec({ ID: 'web', TaskGroups: [{ Name: 'g', Scope: { nodes: ['n1'] }, Puppet: { environment: 'production' }, Update: { MinHealthyTime: '1s' } }] });
    assert.equal((specJson(s).TaskGroups as { Update: { MinHealthyTime: number } }[])[0]!.Update.MinHealthyTime, 1_000_000_000);
    const d = { ID: 'x', StartMs: 1, LastProgressMs: 2, TaskGroups: { g: { Nodes: ['n1'], DesiredTotal: 1 } } } as unknown as Deployment;
    assert.deepEqual(deploymentJson(d), { ID: 'x', TaskGroups: { g: { DesiredTotal: 1 } } });
  });

  it('knows full ids and valid prefixes', () => {
    assert.ok(isFullId('70638f62-5c19-193e-30d6-f9d6e689ab8e'));
    assert.ok(!isFullId('70638f62'));
    assert.ok(isValidPrefix(''));
    assert.ok(isValidPrefix('7063'));
    assert.ok(!isValidPrefix('706'));
    assert.ok(!isValidPrefix('zz'));
  });
});
