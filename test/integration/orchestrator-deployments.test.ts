// The Nomad face end to end: progressive deployments of task runs over real agents (real Redis,
// broker, orchestrator). Rolling updates, canaries, promotion, pause, failure, automatic revert,
// progress deadline, manual health, cancellation, blocking queries and the API's refusals.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, waitForConnected, stopStack, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const NODES = ['d1', 'd2', 'd3', 'd4'];
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('orchestrator: Nomad-style deployments', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  const agents = new Map<string, AgentProcess>();
  let scratch: string;

  before(async () => {
    pki = await makePki(NODES);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    const codedir = makeCodedir();
    const tasks = join(codedir, 'environments', 'production', 'modules', 'sample', 'tasks');
    writeFileSync(join(tasks, 'fail_if.sh'), '#!/bin/sh\nif [ -e "$PT_flag" ]; then echo "flag is up" >&2; exit 1; fi\necho "ok $PT_tag"\n');
    chmodSync(join(tasks, 'fail_if.sh'), 0o755);
    writeFileSync(join(tasks, 'fail_if.json'), JSON.stringify({ parameters: { flag: { type: 'String' }, tag: { type: 'String' } } }));
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir });
    for (const name of NODES) agents.set(name, await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`] }));
    await waitForConnected(orch, NODES.length);
    scratch = mkdtempSync(join(tmpdir(), 'baton-nomad-'));
  });

  after(() => stopStack({ agents: agents.values(), orch, broker, redis, pki }));

  const register = async (job: Json) => {
    const res = await orch.api('/v1/jobs', { method: 'PUT', body: { Job: job } });
    assert.equal(res.status, 200, res.text);
    return res.json;
  };
  const get = async (path: string) => {
    const res = await orch.api(path);
    assert.equal(res.status, 200, `${path}: ${res.text}`);
    assert.match(String(res.headers['x-nomad-index']), /^\d+$/);
    return res;
  };
  const post = (path: string, body: Json = {}) => orch.api(path, { body });
  const group = (over: Json = {}, update: Json = {}) => ({
    Name: 'web',
    Scope: { nodes: NODES },
    Task: { task: 'sample::echo', params: { message: 'v1' } },
    ...over,
    Update: { MinHealthyTime: '100ms', ...update },
  });

  /** Follows a deployment with blocking queries until `pred` holds. */
  async function until(id: string, pred: (d: Json) => boolean): Promise<Json> {
    let index = 0;
    for (;;) {
      const res = await get(`/v1/deployment/${id}?index=${index}&wait=20s`);
      if (pred(res.json)) return res.json;
      index = Number(res.headers['x-nomad-index']);
    }
  }

  /** The latest deployment of a job at `version` (a revert registers it in the background). */
  async function deploymentOf(job: string, version: number): Promise<Json> {
    let index = 0;
    for (;;) {
      const res = await get(`/v1/job/${job}/deployment?index=${index}&wait=20s`);
      if (res.json && res.json.JobVersion === version) return res.json;
      index = Number(res.headers['x-nomad-index']);
    }
  }

  const allocs = async (id: string): Promise<Json[]> => (await get(`/v1/deployment/allocations/${id}`)).json;

  /** Waits until no run of the deployment is still going (so that none overlaps the next test). */
  async function settle(id: string): Promise<void> {
    let index = 0;
    for (;;) {
      const res = await get(`/v1/deployment/allocations/${id}?index=${index}&wait=20s`);
      if ((res.json as Json[]).every((a) => a.ClientStatus === 'complete' || a.ClientStatus === 'failed')) return;
      index = Number(res.headers['x-nomad-index']);
    }
  }

  /** When each allocation's run started and ended, as its agent recorded it. */
  async function runTimes(id: string): Promise<{ start: number; end: number }[]> {
    const out = [];
    for (const a of await allocs(id)) {
      const engineJob = (await orch.api('/orchestrator/v1/jobs?type=deployment&limit=0')).json.items.find((j: Json) => j.description === `${a.Name} of deployment ${id}`);
      const node = (await orch.api(`/orchestrator/v1/jobs/${engineJob.name}/nodes`)).json.items[0];
      const meta = JSON.parse(readFileSync(join(agents.get(a.NodeID)!.dirs.spool, node.transaction_id, 'metadata.json'), 'utf8'));
      out.push({ start: meta.started_ms as number, end: meta.completed_ms as number });
    }
    return out;
  }

  it('rolls out with at most MaxParallel runs at once, then marks the version stable', async () => {
    const res = await register({ ID: 'roll', TaskGroups: [group({ Task: { task: 'sample::sleep', params: { seconds: 1 } } }, { MaxParallel: 2 })] });
    assert.match(res.EvalID, /^[0-9a-f-]{36}$/);
    const d0 = (await get('/v1/job/roll/deployment')).json;
    const d = await until(d0.ID, (x) => x.Status !== 'running');
    assert.equal(d.Status, 'successful');
    assert.equal(d.StatusDescription, 'Deployment completed successfully');
    assert.deepEqual({ ...d.TaskGroups.web, RequireProgressBy: null }, { ...d.TaskGroups.web, DesiredTotal: 4, PlacedAllocs: 4, HealthyAllocs: 4, UnhealthyAllocs: 0, DesiredCanaries: 0, RequireProgressBy: null });
    const times = await runTimes(d.ID);
    for (const t of times) assert.ok(times.filter((o) => o.start < t.end && t.start < o.end).length <= 2, 'never more than 2 in flight');
    assert.ok(times.some((t) => times.filter((o) => o.start < t.end && t.start < o.end).length === 2), 'two did run together');
    for (const a of await allocs(d.ID)) {
      assert.equal(a.ClientStatus, 'complete');
      assert.equal(a.DeploymentStatus.Healthy, true);
      assert.deepEqual(a.TaskStates['sample::sleep'].Events.map((e: Json) => e.Type), ['Received', 'Started', 'Terminated', 'Alloc Healthy']);
    }
    const job = (await get('/v1/job/roll')).json;
    assert.equal(job.Version, 0);
    assert.equal(job.Stable, true);
    const again = await register({ ID: 'roll', TaskGroups: [group({ Task: { task: 'sample::sleep', params: { seconds: 1 } } }, { MaxParallel: 2 })] });
    assert.equal(again.JobModifyIndex, res.JobModifyIndex, 'the same spec makes no new version');
    assert.equal((await get('/v1/job/roll/versions')).json.Versions.length, 1);
  });

  it('canary first, then a manual promotion; promotion is refused while canaries are unhealthy', async () => {
    await register({ ID: 'canary', TaskGroups: [group({}, { Canary: 1, MaxParallel: 3, HealthCheck: 'manual' })] });
    const d0 = (await get('/v1/job/canary/deployment')).json;
    await until(d0.ID, () => true);
    let list = await allocs(d0.ID);
    for (;;) {
      if (list.length === 1 && list[0]!.ClientStatus === 'complete') break;
      const r = await get(`/v1/deployment/allocations/${d0.ID}?index=${(await get(`/v1/deployment/${d0.ID}`)).headers['x-nomad-index']}&wait=20s`);
      list = r.json;
    }
    assert.equal(list[0]!.DeploymentStatus.Canary, true);
    assert.equal(list[0]!.NodeID, 'd1');
    const early = await post(`/v1/deployment/promote/${d0.ID}`, { All: true });
    assert.equal(early.status, 400);
    assert.equal(early.text, 'Task group "web" has 0/1 healthy allocations');
    const health = await post(`/v1/deployment/allocation-health/${d0.ID}`, { HealthyAllocationIDs: [list[0]!.ID] });
    assert.equal(health.status, 200, health.text);
    const waiting = await until(d0.ID, (x) => x.StatusDescription === 'Deployment is running but requires manual promotion');
    assert.equal(waiting.TaskGroups.web.PlacedAllocs, 1, 'nothing else placed before promotion');
    const promoted = await post(`/v1/deployment/promote/${d0.ID}`, { DeploymentID: d0.ID, Groups: ['web'] });
    assert.equal(promoted.status, 200, promoted.text);
    assert.equal(typeof promoted.json.DeploymentModifyIndex, 'number');
    // Manual health: the rest are healthy only when marked so.
    let rest: Json[] = [];
    for (;;) {
      rest = (await allocs(d0.ID)).filter((a) => !a.DeploymentStatus.Canary && a.ClientStatus === 'complete' && a.DeploymentStatus.Healthy === null);
      if (rest.length === 3) break;
      await until(d0.ID, (x) => x.ModifyIndex > waiting.ModifyIndex);
      const idx = (await get(`/v1/deployment/${d0.ID}`)).headers['x-nomad-index'];
      await get(`/v1/deployment/allocations/${d0.ID}?index=${idx}&wait=5s`);
    }
    assert.equal((await get(`/v1/deployment/${d0.ID}`)).json.Status, 'running');
    await post(`/v1/deployment/allocation-health/${d0.ID}`, { HealthyAllocationIDs: rest.map((a) => a.ID) });
    assert.equal((await until(d0.ID, (x) => x.Status !== 'running')).Status, 'successful');
  });

  it('auto promotes once the canaries are healthy', async () => {
    await register({ ID: 'auto-promote', TaskGroups: [group({}, { Canary: 2, AutoPromote: true, MaxParallel: 2 })] });
    const d = await until((await get('/v1/job/auto-promote/deployment')).json.ID, (x) => x.Status !== 'running');
    assert.equal(d.Status, 'successful');
    assert.equal(d.TaskGroups.web.Promoted, true);
    assert.equal(d.TaskGroups.web.PlacedCanaries.length, 2);
    assert.equal((await allocs(d.ID)).filter((a) => a.DeploymentStatus.Canary).length, 2);
  });

  it('pause holds placements; resume goes on', async () => {
    const gate = join(scratch, 'gate-pause');
    await register({ ID: 'pause', TaskGroups: [group({ Task: { task: 'sample::wait_for', params: { gate } } }, { MaxParallel: 1 })] });
    const d0 = (await get('/v1/job/pause/deployment')).json;
    const paused = await post(`/v1/deployment/pause/${d0.ID}`, { DeploymentID: d0.ID, Pause: true });
    assert.equal(paused.status, 200, paused.text);
    assert.equal((await get(`/v1/deployment/${d0.ID}`)).json.Status, 'paused');
    assert.equal((await get(`/v1/deployment/${d0.ID}`)).json.StatusDescription, 'Deployment is paused');
    writeFileSync(gate, '');
    const first = await until(d0.ID, (x) => x.TaskGroups.web.HealthyAllocs === 1);
    assert.equal(first.Status, 'paused');
    assert.equal(first.TaskGroups.web.PlacedAllocs, 1, 'no placement while paused');
    const resumed = await post(`/v1/deployment/pause/${d0.ID}`, { Pause: false });
    assert.equal(resumed.status, 200);
    assert.equal((await until(d0.ID, (x) => x.Status !== 'running')).Status, 'successful');
  });

  it('failing by hand rolls back to the last stable version', async () => {
    await register({ ID: 'manual-fail', TaskGroups: [group({}, { AutoRevert: true, MaxParallel: 4 })] });
    await until((await get('/v1/job/manual-fail/deployment')).json.ID, (x) => x.Status === 'successful');
    const gate = join(scratch, 'gate-fail');
    await register({ ID: 'manual-fail', TaskGroups: [group({ Task: { task: 'sample::wait_for', params: { gate } } }, { AutoRevert: true, MaxParallel: 4 })] });
    const d1 = (await get('/v1/job/manual-fail/deployment')).json;
    assert.equal(d1.JobVersion, 1);
    const res = await post(`/v1/deployment/fail/${d1.ID}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.RevertedJobVersion, 0);
    const failed = (await get(`/v1/deployment/${d1.ID}`)).json;
    assert.equal(failed.Status, 'failed');
    assert.equal(failed.StatusDescription, 'Deployment marked as failed - rolling back to job version 0');
    writeFileSync(gate, '');
    await settle(d1.ID);
    const d2 = await deploymentOf('manual-fail', 2);
    assert.equal((await until(d2.ID, (x) => x.Status !== 'running')).Status, 'successful');
    const versions = (await get('/v1/job/manual-fail/versions')).json.Versions;
    assert.deepEqual(versions.map((v: Json) => [v.Version, v.Stable]), [[2, true], [1, false], [0, true]]);
    assert.deepEqual(versions[0].TaskGroups[0].Task, versions[2].TaskGroups[0].Task);
    const again = await post(`/v1/deployment/pause/${d1.ID}`, { Pause: true });
    assert.equal(again.status, 400);
    assert.equal(again.text, "can't pause terminal deployment");
  });

  it('a failing task reverts automatically; a revert to the same spec is not taken', async () => {
    const flag = join(scratch, 'flag');
    const spec = (tag: string) => ({ ID: 'flaky', TaskGroups: [group({ Task: { task: 'sample::fail_if', params: { flag, tag } } }, { AutoRevert: true, MaxParallel: 4 })] });
    await register(spec('a'));
    await until((await get('/v1/job/flaky/deployment')).json.ID, (x) => x.Status === 'successful');
    writeFileSync(flag, '');
    await register(spec('b'));
    const d1 = await until((await deploymentOf('flaky', 1)).ID, (x) => x.Status !== 'running');
    assert.equal(d1.Status, 'failed');
    assert.equal(d1.StatusDescription, 'Failed due to unhealthy allocations - rolling back to job version 0');
    const failedAlloc = (await allocs(d1.ID)).find((a) => a.DeploymentStatus.Healthy === false)!;
    assert.equal(failedAlloc.ClientStatus, 'failed');
    // The revert (version 2, version 0's spec) fails too while the flag is up: no loop.
    const d2 = await until((await deploymentOf('flaky', 2)).ID, (x) => x.Status !== 'running');
    assert.equal(d2.Status, 'failed');
    assert.equal(d2.StatusDescription, 'Failed due to unhealthy allocations - not rolling back to stable job version 0 as current job has same specification');
    assert.equal((await get('/v1/job/flaky/versions')).json.Versions.length, 3);
  });

  it('fails when no allocation becomes healthy within the progress deadline', async () => {
    const gate = join(scratch, 'gate-progress');
    await register({ ID: 'stuck', TaskGroups: [group({ Task: { task: 'sample::wait_for', params: { gate } } }, { ProgressDeadline: '1s', HealthyDeadline: '1m' })] });
    const d = await until((await get('/v1/job/stuck/deployment')).json.ID, (x) => x.Status !== 'running');
    writeFileSync(gate, '');
    await settle(d.ID);
    assert.equal(d.Status, 'failed');
    assert.equal(d.StatusDescription, 'Failed due to progress deadline');
  });

  it('a newer version cancels the deployment of an older one', async () => {
    const gate = join(scratch, 'gate-cancel');
    await register({ ID: 'cancel', TaskGroups: [group({ Task: { task: 'sample::wait_for', params: { gate } } })] });
    const old = (await get('/v1/job/cancel/deployment')).json;
    await register({ ID: 'cancel', TaskGroups: [group({}, { MaxParallel: 4 })] });
    const cancelled = (await get(`/v1/deployment/${old.ID}`)).json;
    assert.equal(cancelled.Status, 'cancelled');
    assert.equal(cancelled.StatusDescription, 'Cancelled due to newer version of job');
    await settle(old.ID);
    const replaced = (await allocs(old.ID))[0]!;
    assert.equal(replaced.DesiredStatus, 'stop', 'the older run is replaced (stopped)');
    assert.equal(replaced.ClientStatus, 'failed');
    const next = await until((await deploymentOf('cancel', 1)).ID, (x) => x.Status !== 'running');
    assert.equal(next.Status, 'successful', JSON.stringify(next));
  });

  it('blocking queries return early on a change, and after `wait` otherwise', async () => {
    const gate = join(scratch, 'gate-blocking');
    await register({ ID: 'blocking', TaskGroups: [group({ Task: { task: 'sample::wait_for', params: { gate } } })] });
    const d = (await get('/v1/job/blocking/deployment')).json;
    // Quiet first: the one allocation's run has started, and nothing else moves until the gate.
    let idx = 0;
    while (!((await allocs(d.ID))[0]?.ClientStatus === 'running')) idx = Number((await get(`/v1/deployment/allocations/${d.ID}?index=${idx}&wait=20s`)).headers['x-nomad-index']);
    const now = await get(`/v1/deployment/${d.ID}`);
    const index = Number(now.headers['x-nomad-index']);
    const quiet = Date.now();
    const unchanged = await get(`/v1/deployment/${d.ID}?index=${index}&wait=300ms`);
    assert.ok(Date.now() - quiet >= 300, 'waited');
    assert.equal(Number(unchanged.headers['x-nomad-index']), index);
    const pending = get(`/v1/deployment/${d.ID}?index=${index}&wait=60s`);
    await post(`/v1/deployment/pause/${d.ID}`, { Pause: true });
    const changed = await pending;
    assert.ok(Number(changed.headers['x-nomad-index']) > index);
    assert.equal(changed.json.Status, 'paused');
    await post(`/v1/deployment/fail/${d.ID}`);
    writeFileSync(gate, '');
    await settle(d.ID);
  });

  it('refuses what it should, as Nomad does', async () => {
    const list = (await get('/v1/deployments')).json as Json[];
    const some = list[0]!.ID as string;
    assert.equal((await get(`/v1/deployments?prefix=${some.slice(0, 4)}`)).json.every((x: Json) => x.ID.startsWith(some.slice(0, 4))), true);
    const odd = await orch.api(`/v1/deployments?prefix=${some.slice(0, 3)}`);
    assert.equal(odd.status, 400);
    assert.match(String(odd.headers['x-nomad-index']), /^\d+$/, 'X-Nomad-Index on errors too');
    assert.match(odd.text, /even number of hexadecimal characters/);
    const short = await orch.api(`/v1/deployment/${some.slice(0, 8)}`);
    assert.equal(short.status, 400);
    assert.match(short.text, /full UUID/);
    assert.equal((await orch.api('/v1/deployment/00000000-0000-0000-0000-000000000000')).status, 404);
    const noTask = await orch.api('/v1/jobs', { method: 'PUT', body: { Job: { ID: 'bad', TaskGroups: [{ Name: 'web', Scope: { nodes: ['d1'] } }] } } });
    assert.equal(noTask.status, 400);
    assert.match(noTask.text, /exactly one of Task or Puppet/);
    const unknownTask = await orch.api('/v1/jobs', { method: 'PUT', body: { Job: { ID: 'bad', TaskGroups: [group({ Task: { task: 'sample::nope' } })] } } });
    assert.equal(unknownTask.status, 400);
    assert.match(unknownTask.text, /sample::nope/);
    const badBody = await orch.api('/v1/jobs', { method: 'PUT', body: { Job: { ID: 'bad' } } });
    assert.equal(badBody.status, 400);
    assert.equal((await orch.api('/v1/job/nope')).status, 404);
  });
});
