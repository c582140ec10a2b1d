// POST /command/deploy end to end with the real Puppet agent (apply mode): real Redis, broker,
// orchestrator and agents. Scopes (whole environment, nodes, node group, PQL and AST queries,
// applications in order, re-runs of failed nodes), noop, concurrency, enforce_environment and
// every error kind of the seed.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentDirs, startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, waitForConnected, waitForJobEnd, stopStack, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { puppetSandbox, writeManifest, type PuppetSandbox } from '../helpers/puppet.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const NODES = ['db1', 'web1', 'web2'] as const;

/** Every node writes `<out>/<node>.<environment>`; a node with `<out>/broken-<node>` fails. */
function manifest(out: string, environment: string): string {
  return [
    '$n = $trusted[\'certname\']',
    `file { "${out}/\${n}.${environment}": content => "${environment}\\n" }`,
    `exec { "health-\${n}": command => "/bin/sh -c 'test ! -e ${out}/broken-\${n}'" }`,
  ].join('\n');
}

interface SpoolMeta { transaction_id: string; started_ms: number; completed_ms?: number }

describe('orchestrator: /command/deploy with real Puppet', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  let codedir: string;
  let out: string;
  const agents = new Map<string, AgentProcess>();
  const sandboxes = new Map<string, PuppetSandbox>();

  before(async () => {
    pki = await makePki([...NODES]);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    codedir = makeCodedir();
    out = mkdtempSync(join(tmpdir(), 'baton-deploy-out-'));
    for (const env of ['production', 'staging']) writeManifest(codedir, env, manifest(out, env));
    for (const env of ['empty', 'cyclic']) mkdirSync(join(codedir, 'environments', env, 'manifests'), { recursive: true });
    writeFileSync(join(codedir, 'environments', 'production', 'applications.json'), JSON.stringify({
      applications: {
        'Wordpress_app[demo]': {
          components: {
            'Wordpress_app::Db[demo]': { nodes: ['db1'] },
            'Wordpress_app::Web[demo]': { nodes: ['web1', 'web2'], requires: ['Wordpress_app::Db[demo]'] },
          },
        },
        'Wordpress_app[blog]': { components: { 'Wordpress_app::Web[blog]': { nodes: ['web1'] } } },
      },
    }));
    writeFileSync(join(codedir, 'environments', 'cyclic', 'applications.json'), JSON.stringify({
      applications: { 'Loop[x]': { components: { 'A[x]': { nodes: ['web1'], requires: ['B[x]'] }, 'B[x]': { nodes: ['db1'], requires: ['A[x]'] } } } },
    }));
    const classifier = join(out, '..', `classifier-${process.pid}.json`);
    writeFileSync(classifier, JSON.stringify({
      groups: [
        { name: 'webservers', rule: 'nodes[certname] { facts.role = "web" }' },
        { name: 'databases', rule: ['db1'] },
        { name: 'staging pinned', environment: 'staging', rule: { nodes: ['web2'] } },
      ],
    }));
    orch = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, config: { 'classifier-file': classifier } });
    // web1 and web2 report production (web2 is classified into staging); db1 reports staging.
    const own: Record<string, string> = { db1: 'staging', web1: 'production', web2: 'production' };
    for (const name of NODES) {
      const dirs = agentDirs();
      const sandbox = puppetSandbox({ root: join(dirs.root, 'puppet'), codedir, certname: name });
      sandboxes.set(name, sandbox);
      const facts = join(dirs.root, 'facts');
      mkdirSync(facts);
      writeFileSync(join(facts, 'role.json'), JSON.stringify({ role: name.startsWith('web') ? 'web' : 'db' }));
      agents.set(name, await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`], dirs, config: { ...sandbox.config, environment: own[name], 'facts-dir': facts } }));
    }
    await waitForConnected(orch, NODES.length);
  });

  after(() => stopStack({ agents: agents.values(), orch, broker, redis, pki }));

  const deploy = (body: object) => orch.api('/orchestrator/v1/command/deploy', { body });
  const task = (body: object) => orch.api('/orchestrator/v1/command/task', { body });

  async function run(body: object): Promise<{ id: string; job: Record<string, any>; nodes: Record<string, any>[] }> {
    const res = await deploy(body);
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const id = res.json.job.name as string;
    await waitForJobEnd(orch, id);
    return { id, job: (await orch.api(`/orchestrator/v1/jobs/${id}`)).json, nodes: (await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items };
  }

  /** The agents' own record of when each run of a job started and ended. */
  function runTimes(nodes: Record<string, any>[]): { node: string; start: number; end: number }[] {
    return nodes.filter((n) => n.transaction_id).map((n) => {
      const meta = JSON.parse(readFileSync(join(agents.get(n.name)!.dirs.spool, n.transaction_id, 'metadata.json'), 'utf8')) as SpoolMeta;
      return { node: n.name as string, start: meta.started_ms, end: meta.completed_ms! };
    });
  }

  const states = (nodes: Record<string, any>[]) => Object.fromEntries(nodes.map((n) => [n.name, n.state]));
  const clean = () => { for (const f of NODES.flatMap((n) => [`${n}.production`, `${n}.staging`])) rmSync(join(out, f), { force: true }); };

  it('noop changes nothing on disk; enforcing does, with Puppet results on each node', async () => {
    clean();
    const noop = await run({ environment: 'production', noop: true, scope: { nodes: ['web1'] } });
    assert.equal(noop.job.state, 'finished');
    assert.equal(noop.job.type, 'deploy');
    assert.equal(noop.job.options.noop, true);
    assert.equal(existsSync(join(out, 'web1.production')), false, 'noop wrote nothing');
    const n = noop.nodes[0]!;
    assert.equal(n.state, 'finished');
    assert.match(n.result.transaction_uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    assert.equal(n.result.environment, 'production');
    assert.equal(n.details.transaction_uuid, n.result.transaction_uuid);
    assert.equal(n.transaction_uuid, n.result.transaction_uuid, "the node's transaction_uuid is the Puppet run's, as in PE");
    assert.ok(n.details.metrics.resources, 'metrics in the node details');

    const enforce = await run({ environment: 'production', scope: { nodes: ['web1'] } });
    assert.equal(enforce.nodes[0]!.state, 'finished');
    assert.equal(enforce.nodes[0]!.result.status, 'changed');
    assert.equal(enforce.nodes[0]!.details.kind, 'changed');
    assert.ok(enforce.nodes[0]!.result.metrics.resources.changed >= 1);
    assert.equal(readFileSync(join(out, 'web1.production'), 'utf8'), 'production\n');
  });

  it('whole environment: the nodes classified into it or reporting it', async () => {
    clean();
    const staging = await run({ environment: 'staging', scope: { whole_environment: true } });
    assert.deepEqual(states(staging.nodes), { db1: 'finished', web2: 'finished' }, 'web2 by its group, db1 by its agent; web1 is production');
    assert.ok(existsSync(join(out, 'web2.staging')) && existsSync(join(out, 'db1.staging')));
    assert.equal((await deploy({ environment: 'staging' })).status, 202, 'no scope and no target: the whole environment');
  });

  it('node group (PQL rule) and PQL / AST queries as scopes of deploys and tasks', async () => {
    const group = await run({ environment: 'production', scope: { node_group: 'webservers' } });
    assert.deepEqual(states(group.nodes), { web1: 'finished', web2: 'finished' });
    const listed = await run({ environment: 'production', noop: true, scope: { node_group: 'databases' } });
    assert.deepEqual(states(listed.nodes), { db1: 'finished' });
    const pql = await run({ environment: 'production', noop: true, scope: { query: 'nodes[certname] { facts.role = "web" and certname ~ "2$" }' } });
    assert.deepEqual(states(pql.nodes), { web2: 'finished' });
    const inv = await orch.api(`/orchestrator/v1/inventory?query=${encodeURIComponent('nodes[certname] { facts.role = "web" }')}`);
    assert.deepEqual(inv.json.items.map((i: { name: string }) => i.name), ['web1', 'web2'], 'the inventory answers queries too');
    assert.equal(inv.json.items[1].environment, 'staging', 'with the environment its group gives');
    const withFacts = await orch.api(`/orchestrator/v1/inventory?facts=true&query=${encodeURIComponent('nodes[certname] { facts.role = "web" }')}`);
    assert.deepEqual(withFacts.json.items.map((i: { facts: { role?: string } }) => i.facts.role), ['web', 'web'], '?facts=true adds the facts the agents reported');
    assert.equal((await orch.api(`/orchestrator/v1/inventory?query=${encodeURIComponent('nodes { role = }')}`)).json.kind, 'puppetlabs.orchestrator/query-error');
    const ast = await task({ task: 'sample::echo', params: { message: 'hi' }, scope: { query: ['from', 'nodes', ['~', 'certname', '^web']] } });
    assert.equal(ast.status, 202);
    await waitForJobEnd(orch, ast.json.job.name);
    assert.deepEqual(states((await orch.api(`/orchestrator/v1/jobs/${ast.json.job.name}/nodes`)).json.items), { web1: 'finished', web2: 'finished' });
  });

  it('an application runs its components in order; a type deploys all its instances', async () => {
    const app = await run({ environment: 'production', noop: true, scope: { application: 'Wordpress_app[demo]' } });
    assert.deepEqual(states(app.nodes), { db1: 'finished', web1: 'finished', web2: 'finished' });
    const t = runTimes(app.nodes);
    const db = t.find((x) => x.node === 'db1')!;
    for (const web of t.filter((x) => x.node !== 'db1')) assert.ok(web.start >= db.end, `${web.node} started after db1 ended`);
    const all = await run({ environment: 'production', noop: true, target: 'Wordpress_app' });
    assert.deepEqual(Object.keys(states(all.nodes)), ['db1', 'web1', 'web2']);
  });

  it('a failed component skips what follows it; a re-run takes only the failed nodes', async () => {
    writeFileSync(join(out, 'broken-db1'), '');
    const first = await run({ environment: 'production', scope: { application: 'Wordpress_app[demo]' } });
    assert.equal(first.job.state, 'failed');
    assert.deepEqual(states(first.nodes), { db1: 'failed', web1: 'skipped', web2: 'skipped' });
    assert.equal(first.nodes[0]!.result.status, 'failed');
    rmSync(join(out, 'broken-db1'));
    const rerun = await run({ environment: 'production', scope: { job: { job: first.id, states: ['failed', 'errored'] } } });
    assert.deepEqual(states(rerun.nodes), { db1: 'finished' });
    const skipped = await run({ environment: 'production', noop: true, scope: { job: { job: first.id, states: ['skipped'] } } });
    assert.deepEqual(states(skipped.nodes), { web1: 'finished', web2: 'finished' });

    const failing = await task({ task: 'sample::fail', scope: { nodes: ['web1', 'db1'] } });
    await waitForJobEnd(orch, failing.json.job.name);
    const again = await task({ task: 'sample::echo', params: { message: 'again' }, scope: { job: { job: failing.json.job.name } } });
    assert.equal(again.status, 202);
    await waitForJobEnd(orch, again.json.job.name);
    assert.deepEqual(states((await orch.api(`/orchestrator/v1/jobs/${again.json.job.name}/nodes`)).json.items), { db1: 'finished', web1: 'finished' });
  });

  it('concurrency 1: never two runs at once', async () => {
    const job = await run({ environment: 'production', noop: true, concurrency: 1, scope: { nodes: [...NODES] } });
    assert.equal(job.job.options.concurrency, 1);
    const t = runTimes(job.nodes).sort((a, b) => a.start - b.start);
    assert.equal(t.length, 3);
    for (let i = 1; i < t.length; i++) assert.ok(t[i]!.start >= t[i - 1]!.end, `${t[i]!.node} started after ${t[i - 1]!.node} ended`);
  });

  it('enforce_environment: the job\'s environment, or each node\'s own', async () => {
    const enforced = await run({ environment: 'production', noop: true, scope: { nodes: [...NODES] } });
    assert.deepEqual(Object.fromEntries(enforced.nodes.map((n) => [n.name, n.result.environment])), { db1: 'production', web1: 'production', web2: 'production' });
    const own = await run({ environment: 'production', noop: true, enforce_environment: false, scope: { nodes: [...NODES] } });
    assert.equal(own.job.options.enforce_environment, false);
    assert.deepEqual(Object.fromEntries(own.nodes.map((n) => [n.name, n.result.environment])), { db1: 'staging', web1: 'production', web2: 'staging' });
  });

  it('a run that cannot start (agent disabled) errors the node', async () => {
    const lock = sandboxes.get('web1')!.disabledLockfile;
    writeFileSync(lock, JSON.stringify({ disabled_message: 'maintenance window' }));
    try {
      const job = await run({ environment: 'production', scope: { nodes: ['web1'] } });
      assert.equal(job.nodes[0]!.state, 'errored');
      assert.equal(job.nodes[0]!.result.error_type, 'agent_disabled');
      assert.match(job.nodes[0]!.details.message, /agent_disabled: maintenance window/);
    } finally {
      rmSync(lock);
    }
  });

  it('answers every error kind of the seed', async () => {
    const kind = async (body: object, status: number, k: string, msg?: RegExp) => {
      const res = await deploy(body);
      assert.equal(res.status, status, JSON.stringify(res.json));
      assert.equal(res.json.kind, `puppetlabs.orchestrator/${k}`);
      if (msg) assert.match(res.json.msg, msg);
    };
    await kind({ environment: 'nope' }, 404, 'unknown-environment', /nope/);
    await kind({ environment: 'empty', scope: { whole_environment: true } }, 400, 'empty-environment', /empty/);
    await kind({ environment: 'production', scope: { application: 'Wordpress_app[nope]' } }, 400, 'empty-target', /Wordpress_app\[nope\]/);
    await kind({ environment: 'production', scope: { nodes: [] } }, 400, 'empty-target');
    await kind({ environment: 'production', scope: { query: 'nodes[certname] { certname = "nobody" }' } }, 400, 'empty-target');
    await kind({ environment: 'production', scope: { node_group: 'nope' } }, 400, 'empty-target', /nope/);
    await kind({ environment: 'production', scope: { job: { job: '999999' } } }, 404, 'unknown-job');
    await kind({ environment: 'cyclic', scope: { application: 'Loop[x]' } }, 400, 'dependency-cycle', /A\[x\] -> B\[x\] -> A\[x\]/);
    await kind({ environment: 'cyclic', scope: { whole_environment: true } }, 400, 'dependency-cycle');
    await kind({ environment: 'production', scope: { query: 'nodes[certname] { certname = }' } }, 400, 'query-error', /column/);
    await kind({ environment: 'production', scope: { query: ['like', 'certname', 'x'] } }, 400, 'query-error', /like/);
    await kind({ environment: 'production', scope: { nodes: ['a'], whole_environment: true } }, 400, 'validation-error');
    await kind({ environment: 'production', bogus: 1 }, 400, 'validation-error', /bogus/);
    // Last: with Redis gone the inventory store cannot answer a query: 503, as every other route.
    await redis.stop();
    await kind({ environment: 'production', scope: { query: 'nodes[certname] { facts.role = "web" }' } }, 503, 'service-unavailable', /Redis/);
  });
});
