// The Puppet orchestrator v1 task API end to end: real Redis, broker, orchestrator and agents
// over TLS; task files served by the orchestrator to the agents.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ECHO_ONLY_TOKEN, makeCodedir, startOrchestratorProcess, VIEWER_TOKEN, waitForConnected, waitForJobEnd, stopStack, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const RECONNECT_GRACE_S = 10;

describe('orchestrator: Puppet task API', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  const agents: AgentProcess[] = [];
  let scratch: string;

  before(async () => {
    pki = await makePki(['node1', 'node2']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    // A short reconnect grace, so that a node that never comes fails within the test.
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(), config: { 'node-reconnect-grace': RECONNECT_GRACE_S } });
    for (const name of ['node1', 'node2']) {
      agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`] }));
    }
    // The orchestrator learns of the agents from its inventory subscription.
    await waitForConnected(orch, 2);
    scratch = mkdtempSync(join(tmpdir(), 'baton-orch-scratch-'));
  });
  after(() => stopStack({ agents: agents, orch, broker, redis, pki }));

  const submit = (body: object, token?: string) => orch.api('/orchestrator/v1/command/task', { body, ...(token ? { token } : {}) });

  it('runs a task on nodes and reports job, nodes, events and report', async () => {
    const res = await submit({ environment: 'production', task: 'sample::echo', params: { message: 'hello' }, scope: { nodes: ['node1', 'node2'] }, description: 'say hello' });
    assert.equal(res.status, 202);
    const id = res.json.job.name;
    assert.equal(res.json.job.id, orch.url(`/orchestrator/v1/jobs/${id}`));
    const events = await waitForJobEnd(orch, id);
    assert.deepEqual(events.map((e) => e.type).filter((t) => t === 'node_running').length, 2);
    assert.deepEqual(events.map((e) => Number(e.id)), events.map((_, i) => i + 1), 'event ids 1, 2, 3…');
    assert.equal(events.at(-1)!.type, 'job_finished');

    const job = (await orch.api(`/orchestrator/v1/jobs/${id}`)).json;
    assert.equal(job.state, 'finished');
    assert.equal(job.type, 'task');
    assert.equal(job.owner.login, 'admin');
    assert.equal(job.description, 'say hello');
    assert.deepEqual(job.node_states, { finished: 2 });
    assert.equal(job.node_count, 2);
    assert.deepEqual(job.status.map((s: { state: string }) => s.state), ['new', 'running', 'finished']);
    assert.equal(job.options.task, 'sample::echo');

    const nodes = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json;
    assert.equal(nodes.items.length, 2);
    for (const n of nodes.items) {
      assert.equal(n.state, 'finished');
      assert.deepEqual(n.result, { _output: 'hello\n' });
      assert.equal(n.transaction_uuid, null, 'a task node has no Puppet transaction UUID (as PE)');
      assert.match(n.transaction_id, /^[0-9a-f]{8}-\d+-[0-9a-f]{16}$/);
    }
    const report = (await orch.api(`/orchestrator/v1/jobs/${id}/report`)).json;
    assert.deepEqual(report.report.map((r: { node: string }) => r.node), ['node1', 'node2']);
  });

  it('applies the task result rules: JSON results, and _error for a non-zero exit', async () => {
    const ok = (await submit({ task: 'sample::json', params: { name: 'world' }, scope: { nodes: ['node1'] } })).json.job.name;
    await waitForJobEnd(orch, ok);
    assert.deepEqual((await orch.api(`/orchestrator/v1/jobs/${ok}/nodes`)).json.items[0].result, { greeting: 'hello world', items: [] });
    const bad = (await submit({ task: 'sample::fail', scope: { nodes: ['node1'] } })).json.job.name;
    await waitForJobEnd(orch, bad);
    const node = (await orch.api(`/orchestrator/v1/jobs/${bad}/nodes`)).json.items[0];
    assert.equal(node.state, 'failed');
    assert.deepEqual(node.result._error, { kind: 'puppetlabs.tasks/task-error', msg: 'The task failed with exit code 3', details: { exit_code: 3 } });
    assert.equal((await orch.api(`/orchestrator/v1/jobs/${bad}`)).json.state, 'failed');
  });

  it('waits for a node that is away at dispatch, and runs it once it is back', async () => {
    await pki.issue('late');
    const brokerUris = [`wss://127.0.0.1:${broker.port}/pcp2/`];
    const masterUris = [`https://127.0.0.1:${orch.port}`];
    const first = await startAgentProcess({ pki, name: 'late', brokerUris, masterUris });
    agents.push(first);
    await waitForConnected(orch, 3);
    await first.stop('SIGKILL');
    for (;;) {
      const changed = orch.waitForNextLog((l) => l.msg === 'inventory changed');
      const items = (await orch.api('/orchestrator/v1/inventory')).json.items as { name: string; connected: boolean }[];
      if (!items.find((i) => i.name === 'late')?.connected) break;
      await changed;
    }
    const marker = join(scratch, 'late-runs');
    const id = (await submit({ task: 'sample::count', params: { file: marker }, scope: { nodes: ['late'] } })).json.job.name;
    await orch.waitForLog((l) => l.msg === 'node not connected; waiting for it before the run starts' && l.job === id);
    agents.push(await startAgentProcess({ pki, name: 'late', brokerUris, masterUris, dirs: first.dirs }));
    await waitForJobEnd(orch, id);
    const node = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items[0];
    assert.equal(node.state, 'finished', JSON.stringify(node));
    assert.equal(readFileSync(marker, 'utf8').split('\n').filter(Boolean).length, 1, 'it ran once');
  });

  it('fails a node that is not connected with a clear detail once the reconnect grace is over', async () => {
    const id = (await submit({ task: 'sample::echo', params: { message: 'x' }, scope: { nodes: ['node1', 'ghost'] } })).json.job.name;
    await waitForJobEnd(orch, id);
    const nodes = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items;
    const ghost = nodes.find((n: { name: string }) => n.name === 'ghost');
    assert.equal(ghost.state, 'failed');
    assert.equal(ghost.details.message, 'not connected');
    assert.match(ghost.result._error.msg, /node ghost is not connected/);
    assert.equal(nodes.find((n: { name: string }) => n.name === 'node1').state, 'finished');
  });

  it('ends a run that exceeds its timeout as failed with a timeout detail, and the agent kills it', async () => {
    const id = (await submit({ task: 'sample::sleep', params: { seconds: 600 }, scope: { nodes: ['node2'] }, timeout: 1 })).json.job.name;
    await waitForJobEnd(orch, id);
    const node = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items[0];
    assert.equal(node.state, 'failed');
    assert.equal(node.result._error.kind, 'puppetlabs.tasks/task-timeout');
    assert.match(node.result._error.msg, /timed out after 1 seconds/);
  });

  it('never shows sensitive parameters', async () => {
    const id = (await submit({ task: 'sample::secret', params: { password: 'hunter2-s3cret' }, scope: { nodes: ['node1'] } })).json.job.name;
    await waitForJobEnd(orch, id);
    const job = await orch.api(`/orchestrator/v1/jobs/${id}`);
    assert.equal(job.json.options.params.password, 'Sensitive [value redacted]');
    assert.deepEqual((await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items[0].result, { _output: 'length 14\n' });
    for (const text of [job.text, (await orch.api(`/orchestrator/v1/jobs/${id}/events`)).text, JSON.stringify(orch.logs)]) {
      assert.equal(text.includes('hunter2-s3cret'), false);
    }
  });

  it('limits runs in flight to the job concurrency', async () => {
    const gate = join(scratch, 'gate1');
    const id = (await submit({ task: 'sample::wait_for', params: { gate }, scope: { nodes: ['node1', 'node2'] }, concurrency: 1 })).json.job.name;
    await orch.waitForLog((l) => l.msg === 'node run started' && l.job === id);
    const states = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items.map((n: { state: string }) => n.state).sort();
    assert.deepEqual(states, ['new', 'running'], 'the second node waits for its turn');
    writeFileSync(gate, '');
    const events = await waitForJobEnd(orch, id);
    const order = events.filter((e) => e.type === 'node_running' || e.type === 'node_finished').map((e) => e.type);
    assert.deepEqual(order, ['node_running', 'node_finished', 'node_running', 'node_finished']);
  });

  it('serves task metadata and files; files only to agents with a certificate', async (ctx) => {
    const list = (await orch.api('/orchestrator/v1/tasks?environment=production')).json;
    assert.ok(list.items.some((t: { name: string }) => t.name === 'sample::echo'));
    const t = (await orch.api('/orchestrator/v1/tasks/sample/echo?environment=production')).json;
    assert.equal(t.name, 'sample::echo');
    assert.equal(t.files[0].uri.path, '/puppet/v3/file_content/tasks/sample/echo.sh');
    assert.equal(t.metadata.parameters.message.type, 'String[1]');
    // One connection per request, each from its own agent's session cache: the first is a full
    // handshake, the second resumes its TLS session. A resumed TLS 1.3 session made without a
    // certificate reads as `authorized` in Node (nodejs/node#35317): it must still get 403.
    const file = '/puppet/v3/file_content/tasks/sample/echo.sh?environment=production';
    const anonymous = new Agent({ keepAlive: false });
    const agentWithCert = new Agent({ keepAlive: false });
    ctx.after(() => { anonymous.destroy(); agentWithCert.destroy(); });
    const cert = { cert: readFileSync(pki.cert('node1')), key: readFileSync(pki.key('node1')) };
    for (const resumed of [false, true]) {
      const how = resumed ? 'resumed session' : 'full handshake';
      const noCert = await orch.api(file, { token: undefined, agent: anonymous });
      assert.equal(noCert.tlsSessionReused, resumed, how);
      assert.equal(noCert.status, 403, `${how}: ${noCert.text}`);
      const withCert = await orch.api(file, { token: undefined, agent: agentWithCert, ...cert });
      assert.equal(withCert.tlsSessionReused, resumed, how);
      assert.equal(withCert.status, 200, `${how}: ${withCert.text}`);
      assert.match(withCert.text, /PT_message/);
    }
  });

  it('answers inventory queries from its subscription', async () => {
    assert.deepEqual((await orch.api('/orchestrator/v1/inventory/node1')).json.connected, true);
    const items = (await orch.api('/orchestrator/v1/inventory', { body: { nodes: ['node2', 'ghost'] } })).json.items;
    assert.deepEqual(items.map((i: { name: string; connected: boolean }) => [i.name, i.connected]), [['node2', true], ['ghost', false]]);
    assert.match(items[0].broker, /^wss:\/\/127\.0\.0\.1:\d+\/pcp2\/$/);
  });

  it('lists jobs with pagination and a type filter', async () => {
    const all = (await orch.api('/orchestrator/v1/jobs?limit=2&offset=0&order=desc')).json;
    assert.equal(all.items.length, 2);
    assert.ok(all.pagination.total >= 6);
    assert.ok(Number(all.items[0].name) > Number(all.items[1].name));
    const tasks = (await orch.api('/orchestrator/v1/jobs?type=task&limit=100')).json;
    assert.ok(tasks.items.every((j: { type: string }) => j.type === 'task'));
  });

  it('refuses what it should, in the Puppet error format', async () => {
    const cases: [Promise<{ status: number; json: { kind: string; msg: string } }>, number, string, RegExp][] = [
      [orch.api('/orchestrator/v1/jobs', { token: undefined }), 401, 'puppetlabs.rbac/user-unauthenticated', /requires a token/],
      [orch.api('/orchestrator/v1/jobs', { token: 'no-such-token-000000000000' }), 401, 'puppetlabs.rbac/user-unauthenticated', /not valid/],
      [submit({ task: 'sample::echo', params: { message: 'x' }, scope: { nodes: ['node1'] } }, VIEWER_TOKEN), 403, 'puppetlabs.orchestrator/not-permitted', /lacks the permission jobs:run/],
      [submit({ task: 'sample::fail', scope: { nodes: ['node1'] } }, ECHO_ONLY_TOKEN), 403, 'puppetlabs.orchestrator/not-permitted', /tasks:run:sample::fail/],
      [orch.api('/orchestrator/v1/command/task', { rawBody: '{"task": ' }), 400, 'puppetlabs.orchestrator/validation-error', /not valid JSON/],
      [submit({ task: 'sample::echo', scope: { nodes: ['node1'] }, colour: 'red' }), 400, 'puppetlabs.orchestrator/validation-error', /unknown key 'colour'/],
      [submit({ task: 'sample::echo', params: { message: 'x' }, scope: { nodes: ['node1'], query: ['from', 'nodes'] } }), 400, 'puppetlabs.orchestrator/validation-error', /body\.scope must NOT have more than 1 properties/],
      [submit({ task: 'sample::echo', params: { message: 'x' }, scope: { nodes: [] } }), 400, 'puppetlabs.orchestrator/empty-target', /names no nodes/],
      [submit({ environment: 'nowhere', task: 'sample::echo', scope: { nodes: ['node1'] } }), 404, 'puppetlabs.orchestrator/unknown-environment', /unknown environment 'nowhere'/],
      [submit({ task: 'sample::nope', scope: { nodes: ['node1'] } }), 404, 'puppetlabs.orchestrator/unknown-task', /could not find a task named 'sample::nope'/],
      [submit({ task: 'sample::sleep', params: { seconds: 'soon' }, scope: { nodes: ['node1'] } }), 400, 'puppetlabs.orchestrator/validation-error', /parameter 'seconds' expects Integer\[0, 3600\], got String 'soon'/],
      [submit({ task: 'sample::fail', noop: true, scope: { nodes: ['node1'] } }), 400, 'puppetlabs.orchestrator/validation-error', /does not support noop/],
      [orch.api('/orchestrator/v1/command/stop', { body: { job: '999999' } }), 404, 'puppetlabs.orchestrator/unknown-job', /no job named 999999/],
      [orch.api('/orchestrator/v1/command/stop', { body: { job: 'abc' } }), 400, 'puppetlabs.orchestrator/validation-error', /body\.job/],
      [orch.api('/orchestrator/v1/jobs/1/events?start=x'), 400, 'puppetlabs.orchestrator/validation-error', /'start' must be an integer >= 1/],
      [orch.api('/orchestrator/v1/jobs/999999'), 404, 'puppetlabs.orchestrator/unknown-job', /no job named 999999/],
    ];
    for (const [p, status, kind, msg] of cases) {
      const res = await p;
      assert.equal(res.status, status, `${kind} ${JSON.stringify(res.json)}`);
      assert.equal(res.json.kind, kind);
      assert.match(res.json.msg, msg);
    }
  });

  it('stops a job: no new runs start, running ones finish, idempotent, and a finished job stays as it is', async () => {
    const gate = join(scratch, 'gate2');
    const id = (await submit({ task: 'sample::wait_for', params: { gate }, scope: { nodes: ['node1', 'node2'] }, concurrency: 1 })).json.job.name;
    await orch.waitForLog((l) => l.msg === 'job submitted' && l.job === id);
    const stop = await orch.api('/orchestrator/v1/command/stop', { body: { job: id } });
    assert.equal(stop.status, 202);
    assert.equal(stop.json.job.name, id);
    assert.equal(typeof stop.json.job.nodes.running, 'number');
    assert.equal((await orch.api('/orchestrator/v1/command/stop', { body: { job: Number(id) } })).status, 202, 'idempotent');
    writeFileSync(gate, '');
    const events = await waitForJobEnd(orch, id);
    assert.ok(events.some((e) => e.type === 'job_stopping'));
    assert.equal(events.at(-1)!.type, 'job_aborted');
    const job = (await orch.api(`/orchestrator/v1/jobs/${id}`)).json;
    assert.equal(job.state, 'stopped');
    assert.equal((job.node_states.skipped ?? 0) + (job.node_states.finished ?? 0), 2);
    assert.equal((await orch.api('/orchestrator/v1/command/stop', { body: { job: id } })).status, 202);
    assert.equal((await orch.api(`/orchestrator/v1/jobs/${id}`)).json.state, 'stopped');
  });

  it('stops running runs too with force (the agent kills them)', async () => {
    const gate = join(scratch, 'never-opened');
    const id = (await submit({ task: 'sample::wait_for', params: { gate }, scope: { nodes: ['node1'] } })).json.job.name;
    const started = await orch.waitForLog((l) => l.msg === 'node run started' && l.job === id);
    await agents[0]!.waitForLog((l) => l.msg === 'action started' && l.transaction_id === started.transaction_id);
    assert.equal((await orch.api('/orchestrator/v1/command/stop', { body: { job: id, force: true } })).status, 202);
    const events = await waitForJobEnd(orch, id);
    assert.equal(events.at(-1)!.type, 'job_aborted');
    const node = (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items[0];
    assert.notEqual(node.state, 'finished');
    assert.match(node.details.message, /stopped by request/);
  });

  it('keeps a finished job as it is when asked to stop it', async () => {
    const id = (await submit({ task: 'sample::echo', params: { message: 'x' }, scope: { nodes: ['node1'] } })).json.job.name;
    await waitForJobEnd(orch, id);
    const res = await orch.api('/orchestrator/v1/command/stop', { body: { job: id } });
    assert.equal(res.status, 202);
    assert.equal(res.json.job.nodes.finished, 1);
    assert.equal((await orch.api(`/orchestrator/v1/jobs/${id}`)).json.state, 'finished');
  });

  it('reports broker and Redis connectivity at /status/v1/services', async () => {
    const s = (await orch.api('/status/v1/services', { token: undefined })).json['orchestrator-service'];
    assert.equal(s.state, 'running');
    assert.equal(s.status.broker.connected, true);
    assert.equal(s.status.redis.connected, true);
    assert.match((await orch.api('/metrics', { token: undefined })).text, /baton_orchestrator_node_runs_total\{state="finished"\}/);
  });
  // Last: this second orchestrator shares the first one's certificate (one controller URI), so
  // the first one goes first: two live sessions for one URI replace each other, by design.
  it('limits runs in flight over all jobs to task-concurrency', async () => {
    await orch.stop();
    const gate = join(scratch, 'gate-global');
    const single = await startOrchestratorProcess({
      pki, brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], redisUrl: redis.url, codedir: makeCodedir(), keyPrefix: 'single', config: { 'task-concurrency': 1 },
    });
    try {
      await waitForConnected(single, 2);
      const id = (await single.api('/orchestrator/v1/command/task', { body: { task: 'sample::wait_for', params: { gate }, scope: { nodes: ['node1', 'node2'] } } })).json.job.name;
      await single.waitForLog((l) => l.msg === 'node run started' && l.job === id);
      const states = (await single.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items.map((n: { state: string }) => n.state).sort();
      assert.deepEqual(states, ['ready', 'running'], 'the second run waits for the worker');
      writeFileSync(gate, '');
      await waitForJobEnd(single, id);
      assert.equal((await single.api(`/orchestrator/v1/jobs/${id}`)).json.state, 'finished');
    } finally {
      await single.stop();
    }
  });

});
