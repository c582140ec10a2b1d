// `baton up --puppetserver`: `baton up` also starts a real Puppet server (Debian's puppetserver)
// with its dev CA, and the agents run `puppet agent` against it: `baton job run --environment
// production` applies the catalog the server compiled from var/code on both agents, `--noop`
// changes nothing, and Ctrl-C stops the JVM with the rest. Without the package, `baton up
// --puppetserver` names it and exits 2.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { puppetserverAvailable, puppetserverStatus } from '../../lib/puppetserver.ts';
import { isAlive, processesMentioning, runCli, startUp, type UpFleet } from '../helpers/cli.ts';
import { puppetAvailable } from '../helpers/puppet.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';

const AGENTS = ['agent1.local', 'agent2.local'];
/** A cold JVM on 2 shared cores takes 35 to 90 s; the rest of `baton up` starts meanwhile. */
const UP_TIMEOUT_MS = 240_000;
const SKIP = skipUnlessInstalled(
  !puppetserverAvailable()
    ? 'puppetserver is not installed here (apt-get install puppetserver; CI installs it)'
    : !puppetAvailable()
      ? 'puppet is not installed here (apt-get install puppet-agent; CI installs it)'
      : false,
);
const UP_ARGS = ['--agents', '2', '--broker-port', '0', '--orchestrator-port', '0', '--redis-port', '0'];

interface DeployNode {
  name: string;
  state: string;
  result: { status: string; environment: string; transaction_uuid: string; metrics: { resources: Record<string, number>; events: Record<string, number> } };
}

describe('baton up --puppetserver: the agents run puppet agent against a real Puppet server', { skip: SKIP }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-up-ps-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  let fleet: UpFleet | undefined;
  let serverUrl: string;
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env: { ...process.env, HOME: home, BATON_URL: fleet!.apiUrl, BATON_TOKEN: '', BATON_CA: '' } });
  const motd = (agent: string) => join(dir, 'var', 'agents', agent, 'puppet', 'var', 'sample', 'motd');
  const deployNodes = async (id: string): Promise<DeployNode[]> => {
    const shown = await cli('job', 'show', id, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    return (JSON.parse(shown.stdout) as { nodes: DeployNode[] }).nodes.sort((a, b) => a.name.localeCompare(b.name));
  };

  before(async () => {
    fleet = await startUp([...UP_ARGS, '--puppetserver', '--puppetserver-port', '0'], dir, home);
  }, { timeout: UP_TIMEOUT_MS });
  after(async () => {
    if (fleet && fleet.proc.exitCode === null && fleet.proc.signalCode === null) {
      fleet.proc.kill('SIGKILL');
      await fleet.exited;
    }
    // The JVM and redis-server: known by their pids, or by the fleet directory in their command lines.
    for (const pid of [...(fleet?.pids.filter(isAlive) ?? []), ...processesMentioning(dir)]) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }, { timeout: 60_000 });

  it('prints the Puppet server with its pid; it answers with the dev CA and a certificate for 127.0.0.1', async () => {
    const text = fleet!.output.join('\n');
    const m = /puppetserver\s+(https:\/\/127\.0\.0\.1:([0-9]+))\s+dirs: var\/puppetserver\s+\(pid [0-9]+\)/.exec(text);
    assert.ok(m, text);
    serverUrl = m[1]!;
    assert.notEqual(Number(m[2]), 8140, 'port 0 picked a free port');
    assert.match(text, /puppet\s+puppet agent against the Puppet server, catalogs compiled from var\/code\/environments\/<env>/);
    assert.equal(fleet!.pids.length, 6, 'redis, broker, orchestrator, two agents and the Puppet server');
    const status = await puppetserverStatus(serverUrl, readFileSync(join(dir, 'var', 'pki', 'certs', 'ca.pem')));
    assert.deepEqual(status, { status: 200, text: 'running' });
    const agentConfig = JSON.parse(readFileSync(join(dir, 'var', 'agents', AGENTS[0]!, 'agent.json'), 'utf8')) as { 'puppet-command': string[]; 'puppet-settings': string[] };
    assert.equal(agentConfig['puppet-command'][0], 'agent');
    assert.ok(agentConfig['puppet-settings'].join(' ').includes(`--server 127.0.0.1 --serverport ${m[2]}`), agentConfig['puppet-settings'].join(' '));
  });

  it('`job run --environment production` exits 0: both nodes apply the catalog the server compiled, in their own Puppet dirs', async () => {
    const res = await cli('job', 'run', '--environment', 'production');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    for (const a of AGENTS) assert.match(res.stdout, new RegExp(`${a.replace('.', '\\.')}\\s+finished\\s+changed, [1-9][0-9]* changed, 0 failed`));
    assert.match(res.stdout, /Job completed\. 2\/2 nodes succeeded/);
    const nodes = await deployNodes(/Started job ([0-9]+)/.exec(res.stdout)![1]!);
    assert.deepEqual(nodes.map((n) => [n.name, n.state, n.result.status, n.result.environment]), AGENTS.map((a) => [a, 'finished', 'changed', 'production']));
    for (const n of nodes) {
      assert.match(n.result.transaction_uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.ok(n.result.metrics.resources.changed! >= 2, `the motd's directory and file changed on ${n.name}: ${JSON.stringify(n.result.metrics.resources)}`);
      assert.equal(n.result.metrics.resources.failed, 0);
    }
    for (const a of AGENTS) {
      // $trusted['authenticated'] is 'remote' only in a catalog compiled by a Puppet server for a verified client.
      assert.match(readFileSync(motd(a), 'utf8'), new RegExp(`^Managed by Baton: ${a.replace('.', '\\.')}, environment production\\nCompiled by the Puppet server \\S+ \\(Puppet [0-9.]+\\)\\n$`));
      // The server stored each agent's report (reports = store).
      assert.ok(readdirSync(join(dir, 'var', 'puppetserver', 'var', 'reports', a)).some((f) => f.endsWith('.yaml')), `the server has ${a}'s report`);
    }
  });

  it('`--noop` reports pending changes and changes nothing', async () => {
    writeFileSync(motd(AGENTS[0]!), 'edited by hand\n');
    rmSync(motd(AGENTS[1]!));
    const res = await cli('job', 'run', '--environment', 'production', '--noop');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /Job completed\. 2\/2 nodes succeeded/);
    const nodes = await deployNodes(/Started job ([0-9]+)/.exec(res.stdout)![1]!);
    for (const n of nodes) {
      assert.equal(n.state, 'finished');
      assert.equal(n.result.status, 'unchanged', 'a noop run changes nothing');
      assert.equal(n.result.metrics.resources.changed, 0);
      assert.ok(n.result.metrics.resources.out_of_sync! >= 1, `the motd is pending on ${n.name}: ${JSON.stringify(n.result.metrics.resources)}`);
    }
    assert.equal(readFileSync(motd(AGENTS[0]!), 'utf8'), 'edited by hand\n');
    assert.equal(existsSync(motd(AGENTS[1]!)), false);
  });

  it('stops everything, the Puppet server too, on SIGINT: exit 0, no process left', async () => {
    fleet!.proc.kill('SIGINT');
    assert.equal(await fleet!.exited, 0, fleet!.stderr);
    assert.deepEqual(fleet!.pids.filter(isAlive), [], 'every process it printed has ended');
    assert.deepEqual(processesMentioning(dir), [], 'no process mentions the fleet directory');
  });
});

describe('baton up --puppetserver: usage errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-up-ps-usage-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  after(() => rmSync(dir, { recursive: true, force: true }));
  const up = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['up', ...UP_ARGS, ...args], { cwd: dir, env: { ...process.env, HOME: home, ...env } });

  it('without the puppetserver package it names the package and exits 2, having started nothing', async () => {
    const res = await up(['--puppetserver'], { BATON_PUPPETSERVER_JAR: join(dir, 'no-such', 'puppetserver.jar') });
    assert.equal(res.code, 2, res.stderr);
    assert.match(res.stderr, /the Puppet server is not installed .*install the Debian package puppetserver \(apt-get install puppetserver\)/);
    assert.equal(existsSync(join(dir, 'var', 'redis')), false, 'no redis-server was started');
  });

  it('--puppetserver with --puppet exits 2', async () => {
    const res = await up(['--puppetserver', '--puppet', 'agent']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--puppetserver and --puppet exclude each other/);
  });
});
