// `puppet run` through a real broker and a real agent running real Puppet (`puppet apply` in a
// sandbox): noop and enforcing runs, environments, failures, the flag whitelist, a disabled or
// busy Puppet, and `status query` of a finished run.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { agentDirs, startAgentProcess, startController, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import {
  disablePuppet,
  enablePuppet,
  puppetAvailable,
  puppetSandbox,
  runPuppet,
  writeManifest,
  type PuppetRunResults,
  type PuppetSandbox,
} from '../helpers/puppet.ts';
import { errorOf, resultsOf, statusQuery } from '../helpers/tasks.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';

const AGENT = 'pcp://node1/agent';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('agent: puppet run', { skip: skipUnlessInstalled(!puppetAvailable() && 'puppet is not installed (apt-get install puppet-agent; CI installs it)') }, () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let agent: AgentProcess;
  let ctl: PcpClient;
  let sandbox: PuppetSandbox;
  let managed: string;

  before(async () => {
    sandbox = puppetSandbox();
    managed = join(sandbox.root, 'managed.txt');
    writeManifest(sandbox.codedir, 'production', `file { '${managed}': content => "managed by baton\\n" }\n`);
    pki = await makePki(['orchestrator', 'node1']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    agent = await startNode1();
    ctl = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
  });
  after(async () => {
    await ctl?.stop();
    await agent?.stop();
    await broker?.stop();
    pki?.remove();
    sandbox?.remove();
  });

  const dirs = agentDirs();
  const startNode1 = () => startAgentProcess({ pki, name: 'node1', brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], dirs, config: sandbox.config });

  async function puppet(flags: string[], extra: { job?: string; env?: string[] } = {}): Promise<{ transactionId: string; results: PuppetRunResults }> {
    const run = await runPuppet(ctl, AGENT, { flags, ...extra });
    return { transactionId: run.transactionId, results: resultsOf(await run.outcome) as unknown as PuppetRunResults };
  }

  const reportMtime = () => (existsSync(sandbox.lastRunReport) ? statSync(sandbox.lastRunReport).mtimeMs : 0);

  it('a noop run reports unchanged with the pending change in its metrics, and changes nothing', async () => {
    const { transactionId, results } = await puppet(['--noop']);
    assert.equal(results.status, 'unchanged', JSON.stringify(results));
    assert.equal(results.kind, 'unchanged');
    assert.equal(results.exitcode, 0);
    assert.equal(results.version, 1);
    assert.equal(results.error_type, undefined);
    assert.equal(results.environment, 'production');
    assert.match(results.transaction_uuid, UUID);
    const metrics = results.metrics as { resources: Record<string, number>; events: Record<string, number> };
    assert.equal(metrics.resources.changed, 0);
    assert.equal(metrics.resources.out_of_sync, 1);
    assert.equal(metrics.events.noop, 1);
    assert.equal(existsSync(managed), false, 'noop wrote nothing');
    assert.equal((await statusQuery(ctl, AGENT, transactionId)).status, 'success');
  });

  it('an enforcing run reports changed, with metrics, and the file is there', async () => {
    // job is puppet agent's --job-id; `puppet apply` has no such option, so it is left out.
    const { results } = await puppet([], { job: '42' });
    assert.equal(results.status, 'changed', JSON.stringify(results));
    assert.equal(results.kind, 'changed');
    assert.equal(results.exitcode, 0);
    assert.equal(results.environment, 'production');
    assert.match(results.transaction_uuid, UUID);
    assert.match(results.time, /^\d{4}-\d\d-\d\dT/);
    const metrics = results.metrics as { resources: Record<string, number>; time: Record<string, number>; changes: Record<string, number>; events: Record<string, number> };
    assert.ok(metrics.resources.changed! >= 1);
    assert.ok(metrics.changes.total! >= 1);
    assert.ok(metrics.events.success! >= 1);
    assert.equal(typeof metrics.time.total, 'number');
    assert.equal(readFileSync(managed, 'utf8'), 'managed by baton\n');
  });

  it('--environment staging runs staging\'s manifest, with the request\'s env variables', async () => {
    const out = join(sandbox.root, 'staging.txt');
    writeManifest(sandbox.codedir, 'staging', `file { '${out}': content => "note=\${facts['baton_note']}\\n" }\n`);
    const { results } = await puppet(['--environment', 'staging'], { env: ['FACTER_baton_note=hello'] });
    assert.equal(results.environment, 'staging', JSON.stringify(results));
    assert.equal(results.status, 'changed');
    assert.equal(readFileSync(out, 'utf8'), 'note=hello\n');
    const again = await puppet(['--environment=staging'], { env: ['FACTER_baton_note=hello'] });
    assert.equal(again.results.environment, 'staging');
    assert.equal(again.results.status, 'unchanged');
  });

  it('a failing resource makes the run failed and the transaction a failure', async () => {
    writeManifest(sandbox.codedir, 'broken', "exec { 'fails': command => '/bin/false' }\n");
    const { transactionId, results } = await puppet(['--environment', 'broken']);
    assert.equal(results.status, 'failed', JSON.stringify(results));
    assert.equal(results.kind, 'failed');
    assert.equal((results.metrics as { resources: Record<string, number> }).resources.failed, 1);
    const status = await statusQuery(ctl, AGENT, transactionId);
    assert.equal(status.status, 'failure');
  });

  const refused: [string, string[], RegExp][] = [
    ['a flag outside the whitelist', ['--server', 'evil.example.com'], /flag '--server' is not permitted/],
    ['a flag the command sets itself', ['--onetime'], /flag '--onetime' is not permitted/],
    ['a flag=value outside the whitelist', ['--exec=/bin/sh'], /flag '--exec' is not permitted/],
    ['a value where none is expected', ['--noop', 'yes'], /'yes' is not a flag/],
    ['a value for a flag that takes none', ['--noop=true'], /flag '--noop' takes no value/],
    ['a missing value', ['--tags'], /flag '--tags' needs a value/],
    ['a value that is a flag', ['--environment', '--noop'], /flag '--environment' needs a value, not '--noop'/],
    ['a bad environment name', ['--environment', 'Prod-1'], /flag '--environment' needs an environment name/],
  ];
  for (const [what, flags, expected] of refused) {
    it(`refuses ${what} with an rpc error naming it, and runs nothing`, async () => {
      const before = reportMtime();
      const run = await runPuppet(ctl, AGENT, { flags });
      assert.match(errorOf(await run.outcome), expected);
      assert.equal(reportMtime(), before, 'no report was written');
      assert.equal(agent.logs.some((l) => l.msg === 'starting a Puppet run' && l.transaction_id === run.transactionId), false);
      assert.equal((await statusQuery(ctl, AGENT, run.transactionId)).status, 'failure');
    });
  }

  it('refuses an env that would reach into Ruby (RUBYOPT) before anything runs', async () => {
    const before = reportMtime();
    const run = await runPuppet(ctl, AGENT, { flags: [], env: ['RUBYOPT=-r/tmp/evil'] });
    assert.match(errorOf(await run.outcome), /env refused: RUBYOPT is protected/);
    assert.equal(reportMtime(), before, 'no report was written');
  });

  it('a disabled Puppet ends the run at once with error_type agent_disabled and its message', async () => {
    disablePuppet(sandbox, 'maintenance window');
    try {
      const before = reportMtime();
      const { transactionId, results } = await puppet([]);
      assert.equal(results.error_type, 'agent_disabled');
      assert.equal(results.error, 'maintenance window');
      assert.equal(results.exitcode, -1);
      assert.equal(results.status, 'unknown');
      assert.equal(reportMtime(), before, 'puppet did not run');
      assert.equal((await statusQuery(ctl, AGENT, transactionId)).status, 'failure');
    } finally {
      enablePuppet(sandbox);
    }
  });

  it('a catalog run lock held by a live process ends the run with agent_already_running', async () => {
    writeFileSync(sandbox.runLockfile, String(process.pid));
    try {
      const { results } = await puppet([]);
      assert.equal(results.error_type, 'agent_already_running');
      assert.match(results.error!, new RegExp(`pid ${process.pid}`));
    } finally {
      rmSync(sandbox.runLockfile, { force: true });
    }
  });

  it('status query of a finished run returns the results as JSON on stdout, and the exit code', async () => {
    const { transactionId, results } = await puppet(['--noop']);
    const status = await statusQuery(ctl, AGENT, transactionId);
    assert.equal(status.transaction_id, transactionId);
    assert.equal(status.status, 'success');
    assert.deepEqual(JSON.parse(String(status.stdout)), results);
    assert.equal(status.exitcode, results.exitcode);
    assert.equal(typeof status.stderr, 'string');
  });

  it('a run that outlives an agent restart gets its Puppet results from the restarted agent', async () => {
    const gate = join(sandbox.root, 'gate');
    writeManifest(sandbox.codedir, 'slow', `exec { 'wait for the gate': command => 'while [ ! -f ${gate} ]; do sleep 0.05; done', provider => shell }\n`);
    const run = await runPuppet(ctl, AGENT, { flags: ['--environment', 'slow'] });
    await agent.waitForLog((l) => l.msg === 'action started' && l.transaction_id === run.transactionId);
    await agent.stop('SIGKILL');
    agent = await startNode1();
    await agent.waitForLog((l) => l.msg === 're-attached to an action that outlived the agent');
    writeFileSync(gate, '');
    const results = resultsOf(await run.outcome) as unknown as PuppetRunResults;
    assert.equal(results.status, 'changed', JSON.stringify(results));
    assert.equal(results.environment, 'slow');
    assert.match(results.transaction_uuid, UUID);
    const status = await statusQuery(ctl, AGENT, run.transactionId);
    assert.equal(status.status, 'success');
    assert.deepEqual(JSON.parse(String(status.stdout)), results);
  });
});
