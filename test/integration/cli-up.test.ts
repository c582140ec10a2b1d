// `baton up` as a new user meets it: one command starts redis-server, a broker, the orchestrator
// and agents; the client commands run tasks, push commands and masterless Puppet runs (the sample
// manifest, real `puppet apply`) on them; Ctrl-C stops everything, so does a hangup, and a
// `baton up` killed outright leaves nothing behind.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAlive, processesMentioning, runCli, startUp, type UpFleet } from '../helpers/cli.ts';
import { puppetAvailable } from '../helpers/puppet.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';
import { chefSigningMissing, signChefRequests } from '../helpers/chef-sign.ts';
import { http } from '../helpers/http.ts';

const AGENTS = ['agent1.local', 'agent2.local'];
/** How long the programs may take to go once `baton up` is killed: their shutdown deadline, and then some. */
const GONE_WITHIN_MS = 20_000;
const NO_PUPPET = skipUnlessInstalled(puppetAvailable() ? false : 'puppet is not installed here (apt-get install puppet-agent; CI installs it)');

interface DeployNode {
  name: string;
  state: string;
  result: { status: string; environment: string; transaction_uuid: string; metrics: { resources: Record<string, number>; events: Record<string, number> } };
}

describe('baton up: a local fleet in one command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-up-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  let fleet: UpFleet;
  // The client commands find the CA in ./var/pki and the token in ~/.baton/token by themselves.
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env: { ...process.env, HOME: home, BATON_URL: fleet.apiUrl, BATON_TOKEN: '', BATON_CA: '' } });

  before(async () => {
    fleet = await startUp(['--agents', '2', '--broker-port', '0', '--orchestrator-port', '0', '--redis-port', '0'], dir, home);
  });
  after(async () => {
    if (fleet?.proc.exitCode === null) {
      fleet.proc.kill('SIGKILL');
      await fleet.exited;
      // redis-server rewrites its command line: it is known by its pid
      for (const pid of [...fleet.pids.filter(isAlive), ...processesMentioning(dir)]) process.kill(pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints what runs where and writes the admin token to ~/.baton/token with mode 0600', () => {
    const text = fleet.output.join('\n');
    for (const what of ['redis', 'broker', 'orchestrator', 'agent1.local', 'agent2.local', 'sample::echo', 'npx baton task run sample::echo']) assert.match(text, new RegExp(what.replaceAll('.', '\\.')));
    assert.equal(fleet.pids.length, 5, 'redis, broker, orchestrator and two agents, each with its pid');
    const token = join(home, '.baton', 'token');
    assert.equal(statSync(token).mode & 0o777, 0o600);
    assert.ok(readFileSync(token, 'utf8').trim().length >= 32);
  });

  it('runs sample::echo on both agents: a line per node, a summary, exit 0', async () => {
    const res = await cli('task', 'run', 'sample::echo', 'message=hi', '--nodes', AGENTS.join(','));
    assert.equal(res.code, 0, res.stderr);
    for (const a of AGENTS) assert.match(res.stdout, new RegExp(`${a.replace('.', '\\.')}\\s+finished\\s+hi`));
    assert.match(res.stdout, /Job completed\. 2\/2 nodes succeeded\. Duration: /);
  });

  it('exits 1 when the task fails on its nodes, saying why', async () => {
    const res = await cli('task', 'run', 'sample::fail', '--nodes', AGENTS.join(','));
    assert.equal(res.code, 1);
    assert.match(res.stdout, /agent1\.local\s+failed\s+The task failed with exit code 1/);
    assert.match(res.stdout, /Job failed\. 0\/2 nodes succeeded/);
  });

  it('exits 3 with the API\'s message for a task that does not exist', async () => {
    const res = await cli('task', 'run', 'sample::nope', '--nodes', AGENTS[0]!);
    assert.equal(res.code, 3);
    assert.match(res.stderr, /HTTP 404: puppetlabs\.orchestrator\/unknown-task/);
  });

  it('runs a whitelisted push command on both agents and keeps its output', async () => {
    const res = await cli('push', 'run', 'hostname', '--nodes', AGENTS.join(','), '--capture');
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Job completed\. 2\/2 nodes succeeded/);
    const id = /Started push job ([0-9]+)/.exec(res.stdout)![1]!;
    const output = await cli('push', 'output', id, 'agent2.local');
    assert.equal(output.code, 0, output.stderr);
    assert.equal(output.stdout, `${hostname()}\n`);
    const nodes = await cli('push', 'nodes', '--json');
    assert.deepEqual((JSON.parse(nodes.stdout) as { node_name: string; status: string }[]).map((n) => [n.node_name, n.status]).sort(), AGENTS.map((a) => [a, 'up']));
  });

  it("writes the Chef client key pair of organization 'baton' (0600), and a request signed with it by mixlib-authentication is accepted", { skip: skipUnlessInstalled(chefSigningMissing()) }, async () => {
    const key = join(dir, 'var', 'chef', 'baton-admin.pem');
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const path = '/organizations/baton/pushy/node_states';
    const [headers] = await signChefRequests([{ key_path: key, userid: 'baton-admin', method: 'GET', path, body: '', version: '1.3' }]);
    const res = await http(`${fleet.apiUrl}${path}`, { ca: readFileSync(join(dir, 'var', 'pki', 'certs', 'ca.pem')), headers: headers! });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((res.json as { node_name: string }[]).map((n) => n.node_name).sort(), AGENTS);
  });

  it('re-runs a failed job on its failed nodes and shows jobs and the inventory', async () => {
    const failed = await cli('task', 'run', 'sample::fail', '--nodes', AGENTS[0]!, '--no-wait');
    const id = /Started job ([0-9]+)/.exec(failed.stdout)![1]!;
    const watched = await cli('job', 'show', id, '--watch');
    assert.equal(watched.code, 1);
    const rerun = await cli('job', 'rerun', id, '--failed');
    assert.equal(rerun.code, 1);
    assert.match(rerun.stdout, /task sample::fail again .* on 1 node\b/);
    const inventory = await cli('inventory', '--query', 'certname ~ "agent2"', '--json');
    assert.deepEqual((JSON.parse(inventory.stdout) as { items: { name: string }[] }).items.map((i) => i.name), ['agent2.local']);
    const list = await cli('job', 'list', '--json');
    assert.ok((JSON.parse(list.stdout) as { items: unknown[] }).items.length >= 5);
  });

  /** What sample::motd writes in an agent's own Puppet vardir. */
  const motd = (agent: string) => join(dir, 'var', 'agents', agent, 'puppet', 'var', 'sample', 'motd');
  const deployNodes = async (id: string): Promise<DeployNode[]> => {
    const shown = await cli('job', 'show', id, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    return (JSON.parse(shown.stdout) as { nodes: DeployNode[] }).nodes.sort((a, b) => a.name.localeCompare(b.name));
  };

  it('runs Puppet masterlessly: `job run --environment production` exits 0, every node changed, the motd is in its own Puppet vardir', { skip: NO_PUPPET }, async () => {
    assert.match(fleet.output.join('\n'), /puppet\s+masterless: puppet apply of var\/code\/environments\/<env>\/manifests/);
    const res = await cli('job', 'run', '--environment', 'production');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    for (const a of AGENTS) assert.match(res.stdout, new RegExp(`${a.replace('.', '\\.')}\\s+finished\\s+changed, [1-9][0-9]* changed, 0 failed`));
    assert.match(res.stdout, /Job completed\. 2\/2 nodes succeeded/);
    const id = /Started job ([0-9]+)/.exec(res.stdout)![1]!;
    const nodes = await deployNodes(id);
    assert.deepEqual(nodes.map((n) => [n.name, n.state, n.result.status, n.result.environment]), AGENTS.map((a) => [a, 'finished', 'changed', 'production']));
    for (const n of nodes) {
      assert.match(n.result.transaction_uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'the Puppet run\'s own transaction UUID');
      assert.ok(n.result.metrics.resources.changed! >= 2, `the motd's directory and file changed on ${n.name}: ${JSON.stringify(n.result.metrics.resources)}`);
      assert.equal(n.result.metrics.resources.failed, 0);
    }
    for (const a of AGENTS) assert.equal(readFileSync(motd(a), 'utf8'), `Managed by Baton: ${a}, environment production\n`);
  });

  it('--noop on a changed motd reports the pending changes and changes nothing (with --debug, --trace and --evaltrace)', { skip: NO_PUPPET }, async () => {
    writeFileSync(motd(AGENTS[0]!), 'edited by hand\n');
    rmSync(motd(AGENTS[1]!));
    const res = await cli('job', 'run', '--environment', 'production', '--noop', '--debug', '--trace', '--evaltrace');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /Job completed\. 2\/2 nodes succeeded/);
    assert.equal(res.stdout.match(/unchanged, 0 changed, 0 failed, [0-9]+ pending \(noop\)/g)?.length, 2, `each node's line shows its pending changes: ${res.stdout}`);
    const nodes = await deployNodes(/Started job ([0-9]+)/.exec(res.stdout)![1]!);
    for (const n of nodes) {
      assert.equal(n.state, 'finished');
      assert.equal(n.result.status, 'unchanged', 'a noop run changes nothing');
      assert.equal(n.result.metrics.resources.changed, 0);
      assert.ok(n.result.metrics.resources.out_of_sync! >= 2, `the motd and the notice are pending on ${n.name}: ${JSON.stringify(n.result.metrics.resources)}`);
      assert.ok(n.result.metrics.events.noop! >= 2);
    }
    assert.equal(readFileSync(motd(AGENTS[0]!), 'utf8'), 'edited by hand\n');
    assert.equal(existsSync(motd(AGENTS[1]!)), false);
  });

  it('runs the sample plan: sample::check on both agents, then a noop Puppet run on those that passed; baton plan show tells each step', { skip: NO_PUPPET }, async () => {
    mkdirSync(dirname(motd(AGENTS[0]!)), { recursive: true });
    writeFileSync(motd(AGENTS[0]!), 'edited by hand\n');
    const listed = await cli('plans');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^sample::check_and_preview$/m);
    const res = await cli('plan', 'run', 'sample::check_and_preview', `targets=${JSON.stringify(AGENTS)}`, 'min_free_mb=0');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /▶ step check task: job [0-9]+/);
    assert.match(res.stdout, /✔ step check \(task sample::check\): success — 2 ok, 0 failed/);
    assert.match(res.stdout, /✔ step preview \(puppet_run noop\): success — 2 ok, 0 failed/);
    assert.match(res.stdout, /Plan job [0-9]+ success\. 2 steps of 2 succeeded/);
    const id = /Started plan job ([0-9]+)/.exec(res.stdout)![1]!;
    const shown = await cli('plan', 'show', id, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    const job = JSON.parse(shown.stdout) as { state: string; result: { ready: string[]; not_ready: string[] }; steps: { name: string; state: string; jobs: { name: string }[] }[] };
    assert.equal(job.state, 'success');
    assert.deepEqual(job.result, { ready: AGENTS, not_ready: [] });
    const preview = job.steps.find((s) => s.name === 'preview')!;
    const nodes = await deployNodes(preview.jobs[0]!.name);
    assert.deepEqual(nodes.map((n) => [n.name, n.state]), AGENTS.map((a) => [a, 'finished']));
    for (const n of nodes) assert.equal(n.result.metrics.resources.changed, 0, 'a noop run changes nothing');
    assert.equal(readFileSync(motd(AGENTS[0]!), 'utf8'), 'edited by hand\n', 'the preview left the edited motd as it was');
  });

  it('applies the manifests of the environment the job names, and keeps Puppet out of ~/.puppetlabs', { skip: NO_PUPPET }, async () => {
    const manifests = join(dir, 'var', 'code', 'environments', 'staging', 'manifests');
    mkdirSync(manifests, { recursive: true });
    writeFileSync(join(manifests, 'site.pp'), 'file { "${settings::vardir}/staging": content => "${environment}\\n" }\n');
    const res = await cli('job', 'run', '--environment', 'staging', '--nodes', AGENTS[0]!);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const [node] = await deployNodes(/Started job ([0-9]+)/.exec(res.stdout)![1]!);
    assert.equal(node!.result.environment, 'staging');
    assert.equal(readFileSync(join(dir, 'var', 'agents', AGENTS[0]!, 'puppet', 'var', 'staging'), 'utf8'), 'staging\n');
    assert.equal(existsSync(join(home, '.puppetlabs')), false);
  });

  it('stops everything on SIGINT: exit 0, no process left, Redis data kept', async () => {
    fleet.proc.kill('SIGINT');
    assert.equal(await fleet.exited, 0, fleet.stderr);
    assert.deepEqual(fleet.pids.filter(isAlive), [], 'every process it printed has ended');
    assert.deepEqual(processesMentioning(dir), [], 'no process mentions the fleet directory');
    const redisDir = join(dir, 'var', 'redis');
    assert.ok(existsSync(join(redisDir, 'appendonlydir')) && readdirSync(join(redisDir, 'appendonlydir')).length > 0, 'the append-only file is kept');
    assert.match(fleet.output.join('\n'), /Stopped\. Redis data is kept in var\/redis\./);
  });
});

describe('baton up when its terminal goes away, or when it is killed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-up-hup-'));
  const home = join(dir, 'home');
  mkdirSync(join(home, '.baton'), { recursive: true });
  const args = ['--agents', '1', '--broker-port', '0', '--orchestrator-port', '0', '--redis-port', '0'];
  const fleets: UpFleet[] = [];
  after(async () => {
    for (const f of fleets) if (f.proc.exitCode === null && f.proc.signalCode === null) f.proc.kill('SIGKILL');
    for (const pid of [...fleets.flatMap((f) => f.pids.filter(isAlive)), ...processesMentioning(dir)]) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  /** Pids of watchdogs that guard `pid` (cli/up/watchdog.mjs <pid> ...). */
  const watchdogsOf = (pid: number) => processesMentioning(`watchdog.mjs\0${pid}\0`);

  it('makes an admin token file that others could read 0600, saying so once; SIGHUP stops everything (exit 0)', async () => {
    const token = join(home, '.baton', 'token');
    writeFileSync(token, 'an-admin-token-made-by-hand-0123\n');
    chmodSync(token, 0o644);
    const fleet = await startUp(args, dir, home);
    fleets.push(fleet);
    assert.equal(statSync(token).mode & 0o777, 0o600);
    assert.equal(fleet.stderr.match(/token had mode 0644 \(others could read the admin token\); made it 0600/g)?.length, 1, fleet.stderr);
    const redisPid = fleet.pids[0]!;
    assert.equal(watchdogsOf(redisPid).length, 1, 'redis-server has a watchdog');
    fleet.proc.kill('SIGHUP');
    assert.equal(await fleet.exited, 0, fleet.stderr);
    assert.deepEqual(fleet.pids.filter(isAlive), [], 'every process it printed has ended');
    assert.deepEqual(processesMentioning(dir), [], 'no process mentions the fleet directory');
    assert.deepEqual(watchdogsOf(redisPid), [], 'the watchdog went with redis-server');
  });

  it('with --puppet agent, the agents keep `puppet agent` and the machine\'s Puppet settings; an unknown mode exits 2', async () => {
    const bad = await runCli(['up', ...args, '--puppet', 'server'], { cwd: dir, env: { ...process.env, HOME: home } });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--puppet must be one of apply, agent, got 'server'/);
    const fleet = await startUp([...args, '--puppet', 'agent'], dir, home);
    fleets.push(fleet);
    assert.match(fleet.output.join('\n'), /puppet\s+puppet agent, with this machine's Puppet settings/);
    const config = JSON.parse(readFileSync(join(dir, 'var', 'agents', 'agent1.local', 'agent.json'), 'utf8')) as Record<string, unknown>;
    for (const key of ['puppet-bin', 'puppet-command', 'puppet-settings']) assert.equal(config[key], undefined, `${key} is the agent's default`);
    fleet.proc.kill('SIGINT');
    assert.equal(await fleet.exited, 0, fleet.stderr);
  });

  it('killed (SIGKILL), it leaves nothing running: the programs notice by themselves, redis-server is stopped by its watchdog', async () => {
    const fleet = await startUp(args, dir, home);
    fleets.push(fleet);
    assert.doesNotMatch(fleet.stderr, /had mode/, 'the token file is 0600 already');
    const redisPid = fleet.pids[0]!;
    fleet.proc.kill('SIGKILL');
    await fleet.exited;
    // No event tells this process that an unrelated one ended: look, a bounded number of times.
    const deadline = Date.now() + GONE_WITHIN_MS;
    const left = () => [...fleet.pids.filter(isAlive), ...watchdogsOf(redisPid)];
    while (left().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(left(), [], 'no process outlived baton up');
    assert.deepEqual(processesMentioning(dir), []);
  });
});

describe('baton up --brokers 2: two brokers as one fabric', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-up-fabric-'));
  const home = join(dir, 'home');
  mkdirSync(home);
  let fleet: UpFleet;
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env: { ...process.env, HOME: home, BATON_URL: fleet.apiUrl, BATON_TOKEN: '', BATON_CA: '' } });

  before(async () => {
    fleet = await startUp(['--agents', '2', '--brokers', '2', '--broker-port', '0', '--orchestrator-port', '0', '--redis-port', '0'], dir, home);
  });
  after(async () => {
    if (fleet?.proc.exitCode === null) {
      fleet.proc.kill('SIGINT');
      await fleet.exited;
    }
    for (const pid of [...(fleet?.pids ?? []).filter(isAlive), ...processesMentioning(dir)]) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts both brokers, spreads the agents over them, and runs a task on every agent', async () => {
    const text = fleet.output.join('\n');
    assert.match(text, /broker-1\s+wss:\/\/127\.0\.0\.1:\d+\/pcp2\/<client type>\s+\(fabric\)/);
    assert.match(text, /broker-2\s+wss:\/\/127\.0\.0\.1:\d+\/pcp2\/<client type>\s+\(fabric\)/);
    assert.equal(fleet.pids.length, 6, 'redis, two brokers, orchestrator and two agents');
    const configs = AGENTS.map((a) => JSON.parse(readFileSync(join(dir, 'var', 'agents', a, 'agent.json'), 'utf8'))['broker-ws-uris'] as string[]);
    assert.notEqual(configs[0]![0], configs[1]![0], 'each agent starts on another broker');
    assert.deepEqual([...configs[0]!].sort(), [...configs[1]!].sort(), 'and may fail over to the other');
    const res = await cli('task', 'run', 'sample::echo', 'message=fabric', '--nodes', AGENTS.join(','));
    assert.equal(res.code, 0, res.stderr);
    for (const a of AGENTS) assert.match(res.stdout, new RegExp(`${a.replace('.', '\\.')}\\s+finished\\s+fabric`));
  });
});
