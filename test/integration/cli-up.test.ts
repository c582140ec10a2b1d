// `baton up` as a new user meets it: one command starts redis-server, a broker, the orchestrator
// and agents; the client commands run tasks and push commands on them; Ctrl-C stops everything.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAlive, processesMentioning, runCli, startUp, type UpFleet } from '../helpers/cli.ts';

const AGENTS = ['agent1.local', 'agent2.local'];

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
      for (const pid of processesMentioning(dir)) process.kill(pid, 'SIGKILL');
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
