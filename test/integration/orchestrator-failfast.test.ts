// Fail fast, never late: with Redis stalled (SIGSTOP, its connections left open) a submission
// answers 503 within redis-timeout, and what Redis runs of it once it resumes creates nothing;
// an Idempotency-Key gives one job however often (and however concurrently) it is sent.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ECHO_ONLY_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const REDIS_TIMEOUT_MS = 1000;
/** What a 503 may take beyond redis-timeout on this (shared, 2-core) machine. */
const ANSWER_MARGIN_MS = 1000;
const PUSHY = '/organizations/test/pushy';
const WHITELIST = { '/^mark (.+)$/': 'echo run >> "$1"' };

describe('orchestrator: fail fast, never late', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  let agent: AgentProcess;
  let scratch: string;

  before(async () => {
    pki = await makePki(['f1']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(), config: { 'redis-timeout': REDIS_TIMEOUT_MS, 'voting-timeout': 5 } });
    agent = await startAgentProcess({ pki, name: 'f1', brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`], config: { 'command-whitelist': WHITELIST } });
    await waitForConnected(orch, 1);
    scratch = mkdtempSync(join(tmpdir(), 'baton-failfast-'));
  });
  after(async () => {
    if (redis?.paused) redis.resume();
    await stopStack({ agents: agent ? [agent] : [], orch, broker, redis, pki });
  });

  /** Redis frozen for the duration of `fn` (resumed even if it throws). */
  async function stalled<T>(fn: () => Promise<T>): Promise<T> {
    redis.pause();
    try {
      return await fn();
    } finally {
      redis.resume();
    }
  }

  const marker = (name: string) => join(scratch, name);
  const runs = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);
  const countTask = (file: string, headers: Record<string, string> = {}) =>
    orch.api('/orchestrator/v1/command/task', { body: { task: 'sample::count', params: { file }, scope: { nodes: ['f1'] } }, headers });
  const jobTotal = async () => {
    const res = await orch.api('/orchestrator/v1/jobs?limit=1');
    assert.equal(res.status, 200, res.text);
    return res.json.pagination.total as number;
  };
  /** A job submitted and finished after Redis resumed: the engine's connection (FIFO) has run whatever the stall left in it. */
  async function settled(): Promise<void> {
    const res = await countTask(marker(`settle-${Date.now()}`));
    assert.equal(res.status, 202, res.text);
    await waitForJobEnd(orch, res.json.job.name);
  }

  async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
    const t0 = Date.now();
    const value = await fn();
    return { value, ms: Date.now() - t0 };
  }

  it('answers a task submitted while Redis is stalled with 503 within redis-timeout, and never creates or runs it later', async () => {
    await settled(); // the creation script is loaded, so what the stall holds is the creation itself
    const before = await jobTotal();
    const ghost = marker('ghost-task');
    const { value: res, ms } = await stalled(() => timed(() => countTask(ghost)));
    assert.equal(res.status, 503, res.text);
    assert.equal(res.json.kind, 'puppetlabs.orchestrator/service-unavailable');
    assert.equal(res.json.details.service, 'redis');
    assert.equal(res.headers['retry-after'], '1');
    assert.ok(ms < REDIS_TIMEOUT_MS + ANSWER_MARGIN_MS, `answered after ${ms} ms`);

    await settled();
    assert.equal(await jobTotal(), before + 1, 'only the job submitted after the stall exists');
    assert.equal(runs(ghost), 0, 'the stalled submission never ran');
  });

  it('answers a Chef job submitted while Redis is stalled with 503 in its own format, and never creates it later', async () => {
    const before = await jobTotal();
    const ghost = marker('ghost-chef');
    const { value: res, ms } = await stalled(() => timed(() => orch.api(`${PUSHY}/jobs`, { body: { command: `mark ${ghost}`, nodes: ['f1'] } })));
    assert.equal(res.status, 503, res.text);
    assert.ok(Array.isArray(res.json.error) && /Redis/.test(res.json.error[0]), res.text);
    assert.ok(ms < REDIS_TIMEOUT_MS + ANSWER_MARGIN_MS, `answered after ${ms} ms`);

    await settled();
    assert.equal(await jobTotal(), before + 1);
    assert.equal(runs(ghost), 0);
  });

  it('answers the Nomad face with a plain-text 503 while Redis is stalled', async () => {
    const spec = { ID: 'stalled', TaskGroups: [{ Name: 'web', Scope: { nodes: ['f1'] }, Task: { task: 'sample::echo', params: { message: 'x' } } }] };
    const { value: res, ms } = await stalled(() => timed(() => orch.api('/v1/jobs', { body: { Job: spec } })));
    assert.equal(res.status, 503, res.text);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.text, /Redis/);
    assert.ok(ms < REDIS_TIMEOUT_MS + ANSWER_MARGIN_MS, `answered after ${ms} ms`);
    await settled();
    assert.equal((await orch.api('/v1/job/stalled')).status, 404, 'no version of the job was registered');
  });

  it('reports Redis unhealthy in /status/v1/services while it is stalled, within redis-timeout', async () => {
    const { value: res, ms } = await stalled(() => timed(() => orch.api('/status/v1/services', { token: undefined })));
    const s = res.json['orchestrator-service'];
    assert.equal(s.state, 'error');
    assert.equal(s.status.redis.connected, false);
    assert.ok(s.active_alerts.some((a: { name: string }) => a.name === 'redis'));
    assert.ok(ms < REDIS_TIMEOUT_MS + ANSWER_MARGIN_MS, `answered after ${ms} ms`);
    const back = (await orch.api('/status/v1/services', { token: undefined })).json['orchestrator-service'];
    assert.equal(back.status.redis.connected, true);
  });

  it('lets a client retry a stalled submission with the same Idempotency-Key: one job, one run', async () => {
    const before = await jobTotal();
    const file = marker('retried');
    const key = { 'Idempotency-Key': 'retry-after-stall-1' };
    const first = await stalled(() => countTask(file, key));
    assert.equal(first.status, 503, first.text);
    await settled(); // the reservation Redis ran late reserved nothing
    const retry = await countTask(file, key);
    assert.equal(retry.status, 202, retry.text);
    await waitForJobEnd(orch, retry.json.job.name);
    const again = await countTask(file, key);
    assert.equal(again.status, 202);
    assert.equal(again.text, retry.text);
    assert.equal(await jobTotal(), before + 2, 'the settling job and the one retried');
    assert.equal(runs(file), 1);
  });

  it('gives the first Puppet task job again for the same Idempotency-Key, and refuses the key for another body', async () => {
    const before = await jobTotal();
    const file = marker('idem-task');
    const key = { 'Idempotency-Key': '"task-key-1"' };
    const first = await countTask(file, key);
    assert.equal(first.status, 202, first.text);
    const second = await countTask(file, key);
    assert.equal(second.status, 202, second.text);
    assert.equal(second.text, first.text);
    assert.equal(second.headers['idempotent-replayed'], 'true');
    await waitForJobEnd(orch, first.json.job.name);
    assert.equal(await jobTotal(), before + 1);
    assert.equal(runs(file), 1);

    const other = await countTask(marker('idem-task-other'), key);
    assert.equal(other.status, 422, other.text);
    assert.equal(other.json.kind, 'puppetlabs.orchestrator/idempotency-key-reused');
    // The same key from another caller is another key.
    const theirs = await orch.api('/orchestrator/v1/command/task', { token: ECHO_ONLY_TOKEN, body: { task: 'sample::echo', params: { message: 'hi' }, scope: { nodes: ['f1'] } }, headers: key });
    assert.equal(theirs.status, 202, theirs.text);
    assert.notEqual(theirs.json.job.name, first.json.job.name);
    await waitForJobEnd(orch, theirs.json.job.name);
    const bad = await countTask(file, { 'Idempotency-Key': 'x'.repeat(256) });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.kind, 'puppetlabs.orchestrator/invalid-idempotency-key');
    assert.match(bad.json.msg, /Idempotency-Key/);
    assert.equal((await countTask(file, { 'Idempotency-Key': 'tab\there' })).status, 400);
    assert.equal(await jobTotal(), before + 2);
  });

  it('creates one Puppet task job for concurrent requests with the same Idempotency-Key', async () => {
    const before = await jobTotal();
    const file = marker('idem-concurrent');
    const key = { 'Idempotency-Key': 'task-concurrent-1' };
    const answers = await Promise.all(Array.from({ length: 6 }, () => countTask(file, key)));
    for (const a of answers) assert.ok(a.status === 202 || a.status === 409, `${a.status} ${a.text}`);
    const ok = answers.filter((a) => a.status === 202);
    assert.ok(ok.length >= 1);
    assert.equal(new Set(ok.map((a) => a.json.job.name)).size, 1);
    const busy = answers.find((a) => a.status === 409);
    if (busy) assert.equal(busy.json.kind, 'puppetlabs.orchestrator/idempotency-key-in-use');
    await waitForJobEnd(orch, ok[0]!.json.job.name);
    assert.equal(await jobTotal(), before + 1);
    assert.equal(runs(file), 1);
  });

  it('gives the first Chef job again for the same Idempotency-Key, concurrently too', async () => {
    const before = await jobTotal();
    const file = marker('idem-chef');
    const post = (key: string) => orch.api(`${PUSHY}/jobs`, { body: { command: `mark ${file}`, nodes: ['f1'] }, headers: { 'Idempotency-Key': key } });
    const first = await post('chef-key-1');
    assert.equal(first.status, 201, first.text);
    const second = await post('chef-key-1');
    assert.equal(second.status, 201);
    assert.equal(second.text, first.text);
    assert.equal(second.headers.location, first.headers.location);
    const together = await Promise.all([post('chef-key-2'), post('chef-key-2'), post('chef-key-2')]);
    for (const a of together) assert.ok(a.status === 201 || a.status === 409, `${a.status} ${a.text}`);
    assert.equal(new Set(together.filter((a) => a.status === 201).map((a) => a.json.id)).size, 1);
    const busy = together.find((a) => a.status === 409);
    if (busy) assert.ok(Array.isArray(busy.json.error), busy.text);
    const reused = await orch.api(`${PUSHY}/jobs`, { body: { command: 'mark elsewhere', nodes: ['f1'] }, headers: { 'Idempotency-Key': 'chef-key-1' } });
    assert.equal(reused.status, 422);
    assert.ok(Array.isArray(reused.json.error), reused.text);
    assert.equal(await jobTotal(), before + 2);
  });

  it('registers a Nomad job once for the same Idempotency-Key, concurrently too', async () => {
    const spec = (id: string) => ({ ID: id, TaskGroups: [{ Name: 'web', Scope: { nodes: ['f1'] }, Task: { task: 'sample::echo', params: { message: id } }, Update: { MinHealthyTime: '100ms' } }] });
    const register = (id: string, key: string, message?: string) => {
      const s = spec(id);
      if (message) s.TaskGroups[0]!.Task.params.message = message;
      return orch.api('/v1/jobs', { body: { Job: s }, headers: { 'Idempotency-Key': key } });
    };
    const first = await register('idem-web', 'nomad-key-1');
    assert.equal(first.status, 200, first.text);
    const second = await register('idem-web', 'nomad-key-1');
    assert.equal(second.status, 200);
    assert.equal(second.text, first.text);
    assert.equal(second.headers['x-nomad-index'], first.headers['x-nomad-index']);
    assert.equal((await orch.api('/v1/job/idem-web/deployments')).json.length, 1);
    const reused = await register('idem-web', 'nomad-key-1', 'changed');
    assert.equal(reused.status, 422, reused.text);
    assert.match(String(reused.headers['content-type']), /^text\/plain/);

    const together = await Promise.all([register('idem-api', 'nomad-key-2'), register('idem-api', 'nomad-key-2'), register('idem-api', 'nomad-key-2')]);
    for (const a of together) assert.ok(a.status === 200 || a.status === 409, `${a.status} ${a.text}`);
    assert.equal(new Set(together.filter((a) => a.status === 200).map((a) => a.text)).size, 1);
    const versions = (await orch.api('/v1/job/idem-api/versions')).json.Versions;
    assert.equal(versions.length, 1);
    assert.equal((await orch.api('/v1/job/idem-api/deployments')).json.length, 1);
  });
});
