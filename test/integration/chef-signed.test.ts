// The Chef face as Chef tools use it: every request signed by Chef's own library (Ruby's
// mixlib-authentication), organizations kept apart, abort through the Chef face. Real Redis,
// broker, agents and orchestrator.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { chefSigningMissing, signChefRequests, writeRsaKeyPair, type ChefSignInput } from '../helpers/chef-sign.ts';
import { http, type HttpResponse } from '../helpers/http.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SseClient } from '../helpers/sse.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';

const WHITELIST = { 'echo hello': 'echo hello', 'sleep long': 'sleep 61' };
const ALPHA = '/organizations/alpha/pushy';
const BETA = '/organizations/beta/pushy';
const missing = skipUnlessInstalled(chefSigningMissing());

describe('Chef face: signed requests and organizations', { skip: missing ?? false }, () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  const agents: AgentProcess[] = [];
  const keys: Record<string, { privateKey: string; publicKey: string }> = {};

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-chef-keys-'));
    for (const who of ['alice', 'bob', 'mallory']) keys[who] = writeRsaKeyPair(dir, who);
    pki = await makePki(['a1', 'b1']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    orch = await startOrchestratorProcess({
      pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(),
      config: {
        'voting-timeout': 5,
        chef: {
          organizations: {
            alpha: { clients: { alice: keys.alice!.publicKey }, nodes: ['a*'] },
            beta: { clients: { bob: keys.bob!.publicKey }, nodes: ['b*'], permissions: { bob: ['jobs:view', 'inventory:view'] } },
          },
        },
      },
    });
    for (const name of ['a1', 'b1']) agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], config: { 'command-whitelist': WHITELIST } }));
    await waitForConnected(orch, 2);
  });

  after(() => stopStack({ agents, orch, broker, redis, pki }));

  /** Signs with mixlib-authentication as `client` (its own key unless `key` says), then sends. */
  async function signed(client: string, method: string, path: string, body?: unknown, o: Partial<ChefSignInput> & { key?: string; sendBody?: string; drop?: string } = {}): Promise<HttpResponse> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const [headers] = await signChefRequests([{ key_path: o.key ?? keys[client]!.privateKey, userid: client, method, path, body: text, version: o.version ?? '1.3', ...o }]);
    if (o.drop) delete headers![o.drop];
    const payload = o.sendBody ?? (body === undefined ? undefined : text);
    return http(orch.url(path), { ca: orch.ca, method, headers: { ...headers!, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(payload !== undefined ? { rawBody: payload } : {}) });
  }
  const complete = (id: string) => orch.waitForLog((l) => l.msg === 'command job complete' && l.job === id);
  const jobCount = async (base: string) => ((await orch.api(`${base}/jobs`)).json as unknown[]).length;

  it('creates a push job, follows its feed and reads it back, every request signed by mixlib-authentication', async () => {
    const created = await signed('alice', 'POST', `${ALPHA}/jobs`, { command: 'echo hello', nodes: ['a1'], capture_output: true });
    assert.equal(created.status, 201, created.text);
    const id = created.json.id as string;
    assert.equal(created.json.uri, `${ALPHA}/jobs/${id}`);

    const [feedHeaders] = await signChefRequests([{ key_path: keys.alice!.privateKey, userid: 'alice', method: 'GET', path: `${ALPHA}/jobs_status_feed/${id}`, body: '', version: '1.1' }]);
    const feed = new SseClient(orch.url(`${ALPHA}/jobs_status_feed/${id}`), { ca: orch.ca, headers: feedHeaders! });
    await feed.done;
    assert.equal(feed.status, 200);
    assert.deepEqual(feed.events.map((e) => e.event), ['start', 'quorum_vote', 'quorum_succeeded', 'run_start', 'run_complete', 'job_complete']);
    assert.equal(feed.events.at(-1)!.data.status, 'complete');

    for (const version of ['1.0', '1.1', '1.3'] as const) {
      const job = await signed('alice', 'GET', `${ALPHA}/jobs/${id}`, undefined, { version });
      assert.equal(job.status, 200, `${version}: ${job.text}`);
      assert.equal(job.json.status, 'complete');
      assert.deepEqual(job.json.nodes, { complete: ['a1'] });
    }
    const list = await signed('alice', 'GET', `${ALPHA}/jobs`);
    assert.ok((list.json as { id: string }[]).some((j) => j.id === id));
    const out = await signed('alice', 'GET', `${ALPHA}/jobs/${id}/output/a1/stdout`);
    assert.equal(out.text, 'hello\n');
    const states = await signed('alice', 'GET', `${ALPHA}/node_states`);
    assert.deepEqual((states.json as { node_name: string }[]).map((s) => s.node_name), ['a1']);
  });

  it('refuses a bad signature with 401 in Chef\'s error format, naming the reason, and creates nothing', async () => {
    const body = { command: 'echo hello', nodes: ['a1'] };
    const before = await jobCount(ALPHA);
    const past = new Date(Date.now() - 16 * 60_000).toISOString();
    const future = new Date(Date.now() + 16 * 60_000).toISOString();
    const cases: [string, () => Promise<HttpResponse>, RegExp][] = [
      ['wrong key', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { key: keys.mallory!.privateKey }), /signature/i],
      ['unknown client', () => signed('mallory', 'POST', `${ALPHA}/jobs`, body), /mallory/],
      ['client of another organization', () => signed('bob', 'POST', `${ALPHA}/jobs`, body), /bob/],
      ['body changed after signing', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { sendBody: JSON.stringify({ ...body, nodes: ['a1', 'a2'] }) }), /content.hash/i],
      ['timestamp 16 min old', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { timestamp: past }), /clock|skew|timestamp/i],
      ['timestamp 16 min ahead', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { timestamp: future }), /clock|skew|timestamp/i],
      ['no X-Ops-Timestamp', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { drop: 'X-Ops-Timestamp' }), /X-Ops-Timestamp/i],
      ['no X-Ops-Content-Hash', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { drop: 'X-Ops-Content-Hash' }), /X-Ops-Content-Hash/i],
      ['no X-Ops-Authorization-1', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { drop: 'X-Ops-Authorization-1' }), /X-Ops-Authorization/i],
      ['signed for another path', () => signed('alice', 'POST', `${ALPHA}/jobs`, body, { path: `${ALPHA}/jobs/1` }), /signature/i],
    ];
    for (const [what, send, reason] of cases) {
      const res = await send();
      assert.equal(res.status, 401, `${what}: ${res.text}`);
      assert.ok(Array.isArray(res.json?.error), `${what}: ${res.text}`);
      assert.match(res.json.error[0], reason, what);
    }
    const noAuth = await http(orch.url(`${ALPHA}/jobs`), { ca: orch.ca, body });
    assert.equal(noAuth.status, 401);
    assert.match(noAuth.json.error[0], /X-Ops/);
    assert.equal(await jobCount(ALPHA), before, 'nothing was created');
  });

  it('keeps organizations apart: jobs, node states, output and both feeds', async () => {
    const betaFeed = new SseClient(orch.url(`${BETA}/jobs_status_feed`), { ca: orch.ca, token: ADMIN_TOKEN });
    await betaFeed.open;
    const alphaJob = await orch.api(`${ALPHA}/jobs`, { body: { command: 'echo hello', nodes: ['a1'], capture_output: true } });
    assert.equal(alphaJob.status, 201, alphaJob.text);
    const alphaId = alphaJob.json.id as string;
    await complete(alphaId);
    const betaJob = await orch.api(`${BETA}/jobs`, { body: { command: 'echo hello', nodes: ['b1'] } });
    assert.equal(betaJob.status, 201, betaJob.text);
    const betaId = betaJob.json.id as string;
    await betaFeed.waitFor((e) => e.event === 'job_complete' && e.data.job === betaId);
    betaFeed.close();
    assert.ok(betaFeed.events.every((e) => e.data.job === betaId), `beta's feed shows only beta's job: ${JSON.stringify(betaFeed.events)}`);

    // Bob (beta, read-only) sees beta's job and nothing of alpha's.
    assert.equal((await signed('bob', 'GET', `${BETA}/jobs/${betaId}`)).status, 200);
    for (const path of [`/jobs/${alphaId}`, `/jobs/${alphaId}/output/a1/stdout`, `/node_states/a1`]) {
      const res = await signed('bob', 'GET', `${BETA}${path}`);
      assert.equal(res.status, 404, `${path}: ${res.text}`);
      assert.ok(Array.isArray(res.json.error));
    }
    const list = (await signed('bob', 'GET', `${BETA}/jobs`)).json as { id: string }[];
    assert.deepEqual(list.map((j) => j.id), [betaId]);
    assert.deepEqual(((await signed('bob', 'GET', `${BETA}/node_states`)).json as { node_name: string }[]).map((s) => s.node_name), ['b1']);
    const feed = new SseClient(orch.url(`${BETA}/jobs_status_feed/${alphaId}`), { ca: orch.ca, token: ADMIN_TOKEN });
    await feed.done;
    assert.equal(feed.status, 404);
    // Bob may not run jobs (his permissions say so); nobody runs a job on another organization's node.
    const refused = await signed('bob', 'POST', `${BETA}/jobs`, { command: 'echo hello', nodes: ['b1'] });
    assert.equal(refused.status, 403, refused.text);
    const foreign = await orch.api(`${ALPHA}/jobs`, { body: { command: 'echo hello', nodes: ['a1', 'b1'] } });
    assert.equal(foreign.status, 400);
    assert.match(foreign.json.error[0], /b1 is not in organization alpha/);
    // An organization that is not configured, or not one of Chef's names, is 404 and creates nothing; a control character is 400.
    for (const org of ['gamma', 'UPPER']) {
      const res = await orch.api(`/organizations/${org}/pushy/jobs`, { body: { command: 'echo hello', nodes: ['a1'] } });
      assert.equal(res.status, 404, `${org}: ${res.text}`);
      assert.match(res.json.error[0], /no organization/);
    }
    assert.equal((await orch.api('/organizations/%00/pushy/jobs', { body: { command: 'echo hello', nodes: ['a1'] } })).status, 400);
    assert.deepEqual(((await orch.api(`${BETA}/jobs`)).json as { id: string }[]).map((j) => j.id), [betaId]);
  });

  it('aborts a push job through the Chef face (PUT status abort)', async () => {
    const created = await signed('alice', 'POST', `${ALPHA}/jobs`, { command: 'sleep long', nodes: ['a1'] });
    assert.equal(created.status, 201, created.text);
    const id = created.json.id as string;
    await orch.waitForLog((l) => l.msg === 'node run started' && l.job === id);
    const bad = await signed('alice', 'PUT', `${ALPHA}/jobs/${id}`, { status: 'bogus' });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error[0], /status/);
    const aborted = await signed('alice', 'PUT', `${ALPHA}/jobs/${id}`, { status: 'abort' });
    assert.equal(aborted.status, 200, aborted.text);
    await complete(id);
    const job = await signed('alice', 'GET', `${ALPHA}/jobs/${id}`);
    assert.equal(job.json.status, 'aborted');
    assert.equal((await orch.api(`${BETA}/jobs/${id}`, { method: 'PUT', body: { status: 'abort' } })).status, 404, "another organization's job");
    assert.equal((await signed('bob', 'PUT', `${BETA}/jobs/${id}`, { status: 'abort' })).status, 403, 'bob may not stop jobs');
  });
});

if (missing) console.log(`# skipped: ${missing}`);
