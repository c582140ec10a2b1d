// The three faces as fastify plugins under their prefixes: each answers unknown routes, refused
// bodies and missing credentials in its own format; authentication covers every face; a
// permission is checked before the body is validated; body validation goes through the route
// schemas (precompiled validators) with the messages naming the problem.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, stopStack, VIEWER_TOKEN, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const PUPPET = '/orchestrator/v1';
const PUSHY = '/organizations/test/pushy';
const NOMAD = '/v1';

describe('orchestrator HTTP: faces as plugins', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;

  before(async () => {
    pki = await makePki([]);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    orch = await startOrchestratorProcess({ pki, brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], redisUrl: redis.url, codedir: makeCodedir() });
  });

  after(() => stopStack({ agents: [], orch, broker, redis, pki }));

  it('answers an unknown route of each face in that face\'s format', async () => {
    const puppet = await orch.api(`${PUPPET}/no-such-route`);
    assert.equal(puppet.status, 404);
    assert.equal(puppet.json.kind, 'puppetlabs.orchestrator/not-found');
    assert.match(puppet.json.msg, /no route GET \/orchestrator\/v1\/no-such-route/);

    const chef = await orch.api(`${PUSHY}/no-such-route`);
    assert.equal(chef.status, 404);
    assert.deepEqual(Object.keys(chef.json), ['error']);
    assert.match(chef.json.error[0], /no route GET/);

    const nomad = await orch.api(`${NOMAD}/no-such-route`);
    assert.equal(nomad.status, 404);
    assert.match(String(nomad.headers['content-type']), /^text\/plain/);
    assert.match(nomad.text, /no route GET \/v1\/no-such-route/);
    assert.match(String(nomad.headers['x-nomad-index']), /^[0-9]+$/, 'X-Nomad-Index on the face\'s not-found answers too');

    const outside = await orch.api('/nowhere');
    assert.equal(outside.status, 404);
    assert.equal(outside.json.kind, 'puppetlabs.orchestrator/not-found');
  });

  it('requires credentials on every face, its routes and its unknown routes alike', async () => {
    for (const path of [`${PUPPET}/jobs`, `${PUPPET}/no-such-route`, `${PUSHY}/jobs`, `${PUSHY}/no-such-route`, `${NOMAD}/jobs`, `${NOMAD}/no-such-route`]) {
      const res = await orch.api(path, { token: undefined });
      assert.equal(res.status, 401, path);
      if (path.startsWith(PUPPET)) assert.equal(res.json.kind, 'puppetlabs.rbac/user-unauthenticated', path);
      else if (path.startsWith(PUSHY)) assert.match(res.json.error[0], /requires a token in the X-Authentication header or a Chef signature/, path);
      else assert.match(res.text, /requires a token in the X-Authentication header/, path);
    }
    const open = await orch.api('/status/v1/services', { token: undefined });
    assert.equal(open.status, 200);
  });

  it('validates bodies by the route schemas, naming the problem, in each face\'s format', async () => {
    const puppet = await orch.api(`${PUPPET}/command/task`, { body: { scope: { nodes: ['n1'] } } });
    assert.equal(puppet.status, 400);
    assert.equal(puppet.json.kind, 'puppetlabs.orchestrator/validation-error');
    assert.match(puppet.json.msg, /body must have required property 'task'/);

    const deploy = await orch.api(`${PUPPET}/command/deploy`, { body: { environment: 7 } });
    assert.equal(deploy.status, 400);
    assert.match(deploy.json.msg, /body\.environment must be string/);

    const inventory = await orch.api(`${PUPPET}/inventory`, { body: { nodes: 'n1' } });
    assert.equal(inventory.status, 400);
    assert.match(inventory.json.msg, /body\.nodes must be array/);

    const chef = await orch.api(`${PUSHY}/jobs`, { body: { command: 1, nodes: ['n1'] } });
    assert.equal(chef.status, 400);
    assert.match(chef.json.error[0], /^body\.command must be string/);

    const abort = await orch.api(`${PUSHY}/jobs/1`, { method: 'PUT', body: { status: 'go' } });
    assert.equal(abort.status, 400);
    assert.match(abort.json.error[0], /^body\.status must be equal to constant/);

    const nomad = await orch.api(`${NOMAD}/jobs`, { method: 'PUT', body: { Spec: {} } });
    assert.equal(nomad.status, 400);
    assert.match(String(nomad.headers['content-type']), /^text\/plain/);
    assert.match(nomad.text, /body must have required property 'Job'/);
    assert.match(String(nomad.headers['x-nomad-index']), /^[0-9]+$/);

    const missing = await orch.api(`${PUPPET}/command/stop`, { method: 'POST' });
    assert.equal(missing.status, 400);
    assert.match(missing.json.msg, /^body must be object/);
  });

  it('refuses JSON that does not parse in each face\'s format, keeping the connection', async () => {
    const puppet = await orch.api(`${PUPPET}/command/task`, { rawBody: '{"task": ' });
    assert.equal(puppet.status, 400);
    assert.match(puppet.json.msg, /not valid JSON/);
    assert.notEqual(puppet.headers.connection, 'close');
    const chef = await orch.api(`${PUSHY}/jobs`, { rawBody: '[' });
    assert.equal(chef.status, 400);
    assert.match(chef.json.error[0], /not valid JSON/);
    const nomad = await orch.api(`${NOMAD}/jobs`, { method: 'PUT', rawBody: '{' });
    assert.equal(nomad.status, 400);
    assert.match(nomad.text, /not valid JSON/);
  });

  it('checks the permission (and the Chef organization) before the body', async () => {
    const puppet = await orch.api(`${PUPPET}/command/task`, { token: VIEWER_TOKEN, body: {} });
    assert.equal(puppet.status, 403);
    assert.match(puppet.json.msg, /lacks the permission jobs:run/);
    const chef = await orch.api(`${PUSHY}/jobs`, { token: VIEWER_TOKEN, body: {} });
    assert.equal(chef.status, 403);
    const nomad = await orch.api(`${NOMAD}/jobs`, { method: 'PUT', token: VIEWER_TOKEN, body: {} });
    assert.equal(nomad.status, 403);
    const org = await orch.api('/organizations/No_Such/pushy/jobs', { body: {} });
    assert.equal(org.status, 404);
    assert.match(org.json.error[0], /no organization "No_Such"/);
  });
});
