// The job store against a real redis-server: atomic node transitions, counts, events, the job's
// end, per-job concurrency and stopping.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { JobStore, type NewJob } from '../../orchestrator/engine/store.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const job = (nodes: string[], concurrency = 0): NewJob => ({
  type: 'task', environment: 'production', task: 'sample::echo', params: { message: 'hi' }, sensitive: [],
  options: { concurrency, noop: false, timeout_s: 60 }, owner: 'admin', scope: { nodes }, nodes, action: { module: 'echo' },
});

describe('job store', () => {
  let redis: TestRedis;
  let client: Redis;
  let store: JobStore;
  let prefix = 0;

  before(async () => {
    redis = await startRedis();
    client = new Redis(redis.url);
  });
  after(async () => {
    client?.disconnect();
    await redis?.stop();
  });
  const fresh = () => (store = new JobStore(client, `t${++prefix}`));

  it('keeps one epoch per dataset and gives jobs increasing ids', async () => {
    fresh();
    const e = await store.epoch();
    assert.equal(await store.epoch(), e);
    const a = await store.createJob(job(['n1']));
    const b = await store.createJob(job(['n1']));
    assert.equal(Number(b.id), Number(a.id) + 1);
    assert.deepEqual((await store.jobIds({ limit: 10, offset: 0, order: 'desc' })).ids, [b.id, a.id]);
  });

  it('moves nodes only from allowed states, with events numbered 1, 2, 3… and the job ending after the last', async () => {
    fresh();
    const j = await store.createJob(job(['a', 'b']));
    assert.deepEqual((await store.refill(j.id, 0)).sort(), ['a', 'b']);
    const run = await store.transition(j.id, { name: 'a', state: 'running' }, ['ready'], { type: 'node_running' });
    assert.deepEqual(run, { eventId: 1, jobEnd: '' });
    assert.equal(await store.transition(j.id, { name: 'a', state: 'running' }, ['ready'], { type: 'node_running' }), null, 'not twice');
    await store.transition(j.id, { name: 'a', state: 'finished', result: { list: [] } }, ['running'], { type: 'node_finished' });
    assert.deepEqual((await store.getNode(j.id, 'a'))?.result, { list: [] }, 'empty arrays survive');
    const last = await store.transition(j.id, { name: 'b', state: 'failed' }, ['ready'], { type: 'node_failed', details: { detail: 'x' } });
    assert.deepEqual(last, { eventId: 3, jobEnd: 'failed' });
    assert.equal((await store.getJob(j.id))?.state, 'failed');
    assert.deepEqual(await store.counts(j.id), { finished: 1, failed: 1 });
    const events = await store.events(j.id, 0);
    assert.deepEqual(events.map((e) => [e.id, e.type]), [[1, 'node_running'], [2, 'node_finished'], [3, 'node_failed'], [4, 'job_finished']]);
    assert.deepEqual((await store.events(j.id, 3)).map((e) => e.id), [3, 4]);
    assert.deepEqual((await store.getNode(j.id, 'b'))?.latest_event_id, 3);
    assert.deepEqual((await store.history(j.id)).map((h) => h.state), ['new', 'running', 'failed']);
  });

  it('hands out nodes no faster than the job concurrency', async () => {
    fresh();
    const j = await store.createJob(job(['a', 'b', 'c', 'd'], 2));
    assert.deepEqual(await store.refill(j.id, 2), ['a', 'b']);
    assert.deepEqual(await store.refill(j.id, 2), [], 'two are in flight');
    await store.transition(j.id, { name: 'a', state: 'running' }, ['ready'], null);
    await store.transition(j.id, { name: 'a', state: 'finished' }, ['running'], { type: 'node_finished' });
    assert.deepEqual(await store.refill(j.id, 2), ['c']);
  });

  it('stops a job: idempotent, skipped nodes, then stopped', async () => {
    fresh();
    const j = await store.createJob(job(['a', 'b', 'c'], 1));
    await store.refill(j.id, 1);
    await store.transition(j.id, { name: 'a', state: 'running' }, ['ready'], { type: 'node_running' });
    assert.equal(await store.requestStop(j.id, 'admin'), true);
    assert.equal(await store.requestStop(j.id, 'admin'), false);
    for (const n of await store.drainPending(j.id)) await store.transition(j.id, { name: n, state: 'skipped' }, ['new'], { type: 'node_skipped' });
    assert.equal((await store.getJob(j.id))?.state, 'stopping');
    const end = await store.transition(j.id, { name: 'a', state: 'finished' }, ['running'], { type: 'node_finished' });
    assert.equal(end?.jobEnd, 'stopped');
    assert.deepEqual((await store.events(j.id, 0)).map((e) => e.type), ['node_running', 'job_stopping', 'node_skipped', 'node_skipped', 'node_finished', 'job_aborted']);
    assert.deepEqual(await store.activeJobIds(), []);
  });
});
