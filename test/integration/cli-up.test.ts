// `baton up` as a new user meets it: one command starts redis-server, a broker, the orchestrator
// and agents; the client commands run tasks and push commands on them; Ctrl-C stops everything,
// so does a hangup, and a `baton up` killed outright leaves nothing behind.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAlive, processesMentioning, runCli, startUp, type UpFleet } from '../helpers/cli.ts';

const AGENTS = ['agent1.local', 'agent2.local'];
/** How long the programs may take to go once `baton up` is killed: their shutdown deadline, and then some. */
const GONE_WITHIN_MS = 20_000;

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
