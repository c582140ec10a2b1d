// Two orchestrators on one Redis and one broker, each with its own controller identity: what is
// submitted through one is watched through the other (Puppet job events, the Chef job feed, a
// Nomad blocking query woken by a change made through the first).
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SseClient } from '../helpers/sse.ts';

const NODES = ['t1', 't2'];
/** A blocking query's wait: far longer than a woken answer takes, so that an answer by timeout shows. */
const LONG_WAIT_S = 90;

describe('two orchestrators on one Redis', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let a: OrchestratorProcess;
  let b: OrchestratorProcess;
  const agents: AgentProcess[] = [];

  before(async () => {
    pki = await makePki(NODES);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, config: { 'controller-cns': ['orch-*'] } });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    const codedir = makeCodedir();
    const common = { pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, keyPrefix: `two${process.pid}` };
    a = await startOrchestratorProcess({ ...common, name: 'orch-a' });
    b = await startOrchestratorProcess({ ...common, name: 'orch-b' });
    for (const name of NODES) agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${a.port}`], config: { 'command-whitelist': { 'echo hello': 'echo hello' } } }));
    await waitForConnected(a, NODES.length);
    await waitForConnected(b, NODES.length);
  });

  after(async () => {
    await b?.stop();
    await stopStack({ agents, orch: a, broker, redis, pki });
  });

  it('a task job submitted through A is followed through B to its end, with its events', async () => {
    const res = await a.api('/orchestrator/v1/command/task', { body: { task: 'sample::echo', params: { message: 'hi' }, scope: { nodes: NODES } } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.job.name as string;
    // Read through B; whichever engine ran the last node says the job ended.
    const events: { type: string; details: Record<string, unknown> }[] = [];
    let start = 1;
    for (;;) {
      const ended = Promise.race([a, b].map((o) => o.waitForNextLog((l) => l.msg === 'job ended' && l.job === id)));
      const page = (await b.api(`/orchestrator/v1/jobs/${id}/events?start=${start}`)).json;
      events.push(...page.items);
      start = Number(page['next-events'].event);
      if (events.some((e) => e.type === 'job_finished')) break;
      await ended;
    }
    assert.deepEqual(events.filter((e) => e.type === 'node_finished').map((e) => e.details.node).sort(), NODES);
    const job = (await b.api(`/orchestrator/v1/jobs/${id}`)).json;
    assert.equal(job.state, 'finished');
  });

  it('a Chef push job submitted through A is followed on its feed through B', async () => {
    const res = await a.api('/organizations/ops/pushy/jobs', { body: { command: 'echo hello', nodes: NODES } });
    assert.equal(res.status, 201, res.text);
    const feed = new SseClient(b.url(`/organizations/ops/pushy/jobs_status_feed/${res.json.id}`), { ca: b.ca, token: ADMIN_TOKEN });
    await feed.done;
    assert.equal(feed.events.at(-1)?.event, 'job_complete');
    assert.equal(feed.events.at(-1)?.data.status, 'complete');
  });

  it('a Nomad blocking query on B wakes on a change made through A', async () => {
    const first = await b.api('/v1/jobs');
    const index = Number(first.headers['x-nomad-index']);
    const t0 = performance.now();
    const waiting = b.api(`/v1/jobs?index=${index}&wait=${LONG_WAIT_S}s`);
    // B's query is under way (its HTTP request is sent) before A changes anything.
    await b.waitForLog((l) => l.msg === 'blocking query waits' && l.index === index);
    const reg = await a.api('/v1/jobs', { method: 'PUT', body: { Job: { ID: 'web', TaskGroups: [{ Name: 'web', Scope: { nodes: NODES }, Task: { task: 'sample::echo', params: { message: 'v1' } }, Update: { MinHealthyTime: '100ms' } }] } } });
    assert.equal(reg.status, 200, reg.text);
    const woken = await waiting;
    const tookS = (performance.now() - t0) / 1000;
    assert.ok(Number(woken.headers['x-nomad-index']) > index);
    assert.ok((woken.json as { ID: string }[]).some((j) => j.ID === 'web'));
    assert.ok(tookS < LONG_WAIT_S / 2, `woken by the change, not by the end of the wait (${tookS.toFixed(1)} s)`);
  });
});
