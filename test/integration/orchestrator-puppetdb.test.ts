// The orchestrator in a real Puppet installation: PuppetDB (on its own PostgreSQL) answers the
// job scopes, with the facts and environments real `puppet agent` runs against a real Puppet
// server submitted; a deploy runs `puppet agent` on Baton's agents against that server and reads
// the run's report; PuppetDB refusing or stalling is answered with puppetdb-error in bounded time.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../lib/net.ts';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { writeManifest } from '../helpers/puppet.ts';
import { startPuppetdb, type TestPuppetdb } from '../helpers/puppetdb.ts';
import { puppetAgentNode, puppetStackMissing, startPuppetserver, type PuppetAgentNode, type TestPuppetserver } from '../helpers/puppetserver.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { pxpAgentSkip, pxpBrokerUri, startPxpAgent, type PxpAgentProcess } from '../helpers/pxp-agent.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';

const STACK_START_TIMEOUT_MS = 420_000;
const PUPPETDB_TIMEOUT_MS = 2_000;

const skip = skipUnlessInstalled(await puppetStackMissing());

interface NodeItem {
  name: string;
  state: string;
  transaction_uuid: string | null;
  result: { status?: string; transaction_uuid?: string; configuration_version?: string; environment?: string; metrics?: { resources?: Record<string, number> }; error_type?: string };
  details: Record<string, unknown>;
}

describe('orchestrator with PuppetDB and a Puppet server', { skip }, () => {
  let pki: TestPki;
  let codedir: string;
  let managed: string;
  let pg: TestPostgres | undefined;
  let pdb: TestPuppetdb | undefined;
  let server: TestPuppetserver | undefined;
  const nodes: PuppetAgentNode[] = [];
  let redis: TestRedis | undefined;
  let broker: BrokerProcess | undefined;
  let orch: OrchestratorProcess | undefined;
  const agents: AgentProcess[] = [];
  let pxpAgent: PxpAgentProcess | undefined;

  before(async () => {
    pki = await makePki(['node1', 'node2']);
    codedir = makeCodedir();
    managed = mkdtempSync(join(tmpdir(), 'baton-managed-'));
    for (const env of ['production', 'staging']) {
      writeManifest(codedir, env, `node default {\n  file { "${managed}/\${trusted['certname']}.${env}": content => "${env} from the Puppet server\\n" }\n}\n`);
    }
    const pdbPort = await freePort();
    const started = await Promise.allSettled([
      startPuppetserver({ pki, codedir, puppetdbUrl: `https://127.0.0.1:${pdbPort}` }).then((s) => (server = s)),
      (async () => {
        pg = await startPostgres();
        pdb = await startPuppetdb({ pki, postgres: pg, port: pdbPort });
      })(),
      (async () => {
        redis = await startRedis();
        broker = await startBrokerProcess({ pki, logLevel: 'info' });
      })(),
    ]);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    // Real runs: node1 in production, node2 in staging; their facts and reports go to PuppetDB.
    for (const [name, env] of [['node1', 'production'], ['node2', 'staging']] as const) {
      const node = await puppetAgentNode(pki, name, server!);
      nodes.push(node);
      const run = await node.run(['--environment', env]);
      assert.equal(run.code, 2, `${name}: ${run.stdout}\n${run.stderr}`);
    }
    await pdb!.waitFor<unknown[]>('inventory[certname] {}', (rows) => rows.length === 2);
    const brokerUri = `wss://127.0.0.1:${broker!.port}/pcp2/`;
    orch = await startOrchestratorProcess({
      pki,
      brokerUris: [brokerUri],
      redisUrl: redis!.url,
      codedir,
      config: { puppetdb: { url: pdb!.url }, 'puppetdb-timeout': PUPPETDB_TIMEOUT_MS },
    });
    // Baton's agents run `puppet agent` in the same private Puppet dirs, against the same server.
    for (const node of nodes) {
      agents.push(await startAgentProcess({ pki, name: node.certname, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${orch.port}`], config: { 'puppet-bin': 'puppet', 'puppet-settings': node.flags } }));
    }
    await waitForConnected(orch, 2);
  }, { timeout: STACK_START_TIMEOUT_MS });

  after(async () => {
    await pxpAgent?.stop();
    for (const a of agents) await a.stop();
    await orch?.stop();
    await broker?.stop();
    await redis?.stop();
    await Promise.allSettled([server?.stop(), pdb?.stop()]);
    await pg?.stop();
    for (const n of nodes) n.remove();
    pki?.remove();
    for (const d of [codedir, managed]) if (d) rmSync(d, { recursive: true, force: true });
  }, { timeout: 120_000 });

  const task = async (scope: object): Promise<{ status: number; json: { kind?: string; msg?: string; details?: Record<string, unknown>; job?: { name: string } } }> =>
    orch!.api('/orchestrator/v1/command/task', { body: { environment: 'production', task: 'sample::echo', params: { message: 'hi' }, scope } });
  const nodesOf = async (id: string): Promise<NodeItem[]> => (await orch!.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items as NodeItem[];

  it('sends a PQL or AST query scope to PuppetDB and targets the certnames it answers, with facts from real Puppet runs', async () => {
    const pql = await task({ query: 'inventory[certname] { facts.clientcert = "node1" and facts.kernel = "Linux" }' });
    assert.equal(pql.status, 202, JSON.stringify(pql.json));
    await waitForJobEnd(orch!, pql.json.job!.name);
    assert.deepEqual((await nodesOf(pql.json.job!.name)).map((n) => [n.name, n.state, n.transaction_uuid]), [['node1', 'finished', null]]);
    const ast = await task({ query: ['=', 'certname', 'node2'] });
    assert.equal(ast.status, 202, JSON.stringify(ast.json));
    await waitForJobEnd(orch!, ast.json.job!.name);
    assert.deepEqual((await nodesOf(ast.json.job!.name)).map((n) => n.name), ['node2']);
    const inv = await orch!.api(`/orchestrator/v1/inventory?query=${encodeURIComponent('nodes[certname] { report_environment = "staging" }')}`);
    assert.deepEqual((inv.json.items as { name: string; connected: boolean }[]).map((i) => [i.name, i.connected]), [['node2', true]]);
    const withFacts = await orch!.api('/orchestrator/v1/inventory?facts=true');
    const node1 = (withFacts.json.items as { name: string; facts: Record<string, unknown> }[]).find((i) => i.name === 'node1')!;
    assert.equal(node1.facts.clientcert, 'node1', "the facts PuppetDB has from node1's run");
  });

  it('deploys a whole environment as PuppetDB has it: puppet agent against the Puppet server, the report read into the node result', async () => {
    const res = await orch!.api('/orchestrator/v1/command/deploy', { body: { environment: 'staging' } });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const id = res.json.job.name as string;
    await waitForJobEnd(orch!, id);
    const [n, ...rest] = await nodesOf(id);
    assert.equal(rest.length, 0, 'only node2 is in staging in PuppetDB');
    assert.equal(n!.name, 'node2');
    assert.equal(n!.state, 'finished', JSON.stringify(n));
    assert.equal(n!.result.environment, 'staging');
    assert.match(n!.transaction_uuid!, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    assert.equal(n!.transaction_uuid, n!.result.transaction_uuid);
    assert.equal(readFileSync(join(managed, 'node2.staging'), 'utf8'), 'staging from the Puppet server\n');
    // The Puppet server sent that very run's report to PuppetDB.
    const reports = await pdb!.waitFor<{ transaction_uuid: string; environment: string; configuration_version: string }[]>(`reports[transaction_uuid, environment, configuration_version] { transaction_uuid = "${n!.transaction_uuid}" }`, (rows) => rows.length === 1);
    assert.equal(reports[0]!.environment, 'staging');
    // The catalog's version, as the Puppet server compiled it.
    assert.ok(n!.result.configuration_version, JSON.stringify(n!.result));
    assert.equal(n!.result.configuration_version, reports[0]!.configuration_version);
  });

  it("deploys through Puppet's pxp-agent and pxp-module-puppet against the Puppet server, with the run's report fields", { skip: pxpAgentSkip() }, async () => {
    // node3: a pxp-agent (PCP v1, its default) whose puppet runs in node3's private Puppet dirs.
    const node = await puppetAgentNode(pki, 'node3', server!);
    nodes.push(node);
    const puppetBin = join(node.root, 'puppet');
    writeFileSync(puppetBin, `#!/bin/sh\nexec /usr/bin/puppet "$@" ${node.flags.map((f) => `'${f}'`).join(' ')}\n`);
    chmodSync(puppetBin, 0o755);
    pxpAgent = await startPxpAgent({ pki, name: 'node3', brokerUris: [pxpBrokerUri(broker!.port, '1')], masterUris: [server!.url], puppetModule: { puppetBin } });
    await waitForConnected(orch!, 3);
    const res = await orch!.api('/orchestrator/v1/command/deploy', { body: { environment: 'production', scope: { nodes: ['node3'] } } });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const id = res.json.job.name as string;
    await waitForJobEnd(orch!, id);
    const [n] = await nodesOf(id);
    assert.equal(n!.state, 'finished', JSON.stringify(n));
    assert.equal(n!.result.status, 'changed');
    assert.equal(n!.result.environment, 'production');
    // pxp-module-puppet's own shape: the resource counts are the metrics.
    assert.ok(((n!.result.metrics as Record<string, number> | undefined)?.changed ?? 0) >= 1, JSON.stringify(n!.result.metrics));
    assert.match(n!.transaction_uuid!, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    assert.equal(readFileSync(join(managed, 'node3.production'), 'utf8'), 'production from the Puppet server\n');
    const reports = await pdb!.waitFor<{ certname: string; transaction_uuid: string }[]>(`reports[certname, transaction_uuid] { transaction_uuid = "${n!.transaction_uuid}" }`, (rows) => rows.length === 1);
    assert.equal(reports[0]!.certname, 'node3');
  });

  it('runs a noop deploy on the mixed fleet: pending changes reported, nothing changed, noop reports in PuppetDB', async () => {
    const names = pxpAgent ? ['node1', 'node3'] : ['node1'];
    for (const name of names) writeFileSync(join(managed, `${name}.production`), 'edited by hand\n');
    const res = await orch!.api('/orchestrator/v1/command/deploy', { body: { environment: 'production', noop: true, scope: { nodes: names } } });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const id = res.json.job.name as string;
    await waitForJobEnd(orch!, id);
    for (const n of await nodesOf(id)) {
      assert.equal(n.state, 'finished', JSON.stringify(n));
      assert.equal(n.result.status, 'unchanged', `${n.name}: a noop run changes nothing`);
      assert.equal(readFileSync(join(managed, `${n.name}.production`), 'utf8'), 'edited by hand\n');
      const reports = await pdb!.waitFor<{ noop: boolean; noop_pending: boolean }[]>(`reports[noop, noop_pending] { transaction_uuid = "${n.transaction_uuid}" }`, (rows) => rows.length === 1);
      assert.deepEqual(reports[0], { noop: true, noop_pending: true }, n.name);
    }
  });

  it('answers a query PuppetDB refuses with 400 puppetdb-error naming what PuppetDB said', async () => {
    const res = await task({ query: 'nodes[certname] { no_such_field = 1 }' });
    assert.equal(res.status, 400, JSON.stringify(res.json));
    assert.equal(res.json.kind, 'puppetlabs.orchestrator/puppetdb-error');
    assert.match(res.json.msg!, /PuppetDB answered 400/);
    assert.match(res.json.msg!, /no_such_field/);
  });

  it('answers 503 puppetdb-error within puppetdb-timeout when PuppetDB stalls mid-request, and nothing is created', async () => {
    const jobsBefore = (await orch!.api('/orchestrator/v1/jobs?limit=0')).json.items.length as number;
    const pid = pdb!.service.proc.pid!;
    process.kill(-pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const res = await task({ query: 'inventory[certname] { facts.kernel = "Linux" }' });
      const ms = Date.now() - t0;
      assert.equal(res.status, 503, JSON.stringify(res.json));
      assert.equal(res.json.kind, 'puppetlabs.orchestrator/puppetdb-error');
      assert.equal(res.json.details?.service, 'puppetdb');
      assert.equal(res.json.details?.reason, 'timeout');
      assert.ok(ms >= PUPPETDB_TIMEOUT_MS - 100 && ms < PUPPETDB_TIMEOUT_MS + 3_000, `answered in ${ms} ms (puppetdb-timeout ${PUPPETDB_TIMEOUT_MS} ms)`);
      // The status service says so too: its PuppetDB probe (bounded by puppetdb-timeout) failed.
      const status = await orch!.api('/status/v1/services');
      assert.equal(status.status, 503, status.text);
      const svc = status.json['orchestrator-service'] as { state: string; status: { dependencies: Record<string, { state: string; error?: string }> }; active_alerts: { name: string }[] };
      assert.equal(svc.state, 'error');
      assert.equal(svc.status.dependencies.puppetdb!.state, 'error', status.text);
      assert.ok(svc.active_alerts.some((a) => a.name === 'puppetdb'), status.text);
    } finally {
      process.kill(-pid, 'SIGCONT');
    }
    assert.equal((await orch!.api('/orchestrator/v1/jobs?limit=0')).json.items.length, jobsBefore, 'no job was created');
    // PuppetDB back: queries answer again.
    const again = await task({ query: ['=', 'certname', 'node1'] });
    assert.equal(again.status, 202, JSON.stringify(again.json));
    await waitForJobEnd(orch!, again.json.job!.name);
    const status = await orch!.api('/status/v1/services');
    assert.equal(status.status, 200, status.text);
    assert.equal(status.json['orchestrator-service'].status.dependencies.puppetdb.state, 'running', status.text);
  });
});
