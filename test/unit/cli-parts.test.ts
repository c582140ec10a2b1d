// Parts of the `baton` command on their own: exit codes from node states, the supervisor of
// `baton up` stopping a child that is still starting, and the admin token file's mode.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pushExitCode } from '../../cli/commands/push.ts';
import { ExitCode } from '../../cli/errors.ts';
import { jobExitCode, type JobJson } from '../../cli/follow.ts';
import { ensureToken } from '../../cli/up/fleet-files.ts';
import { Supervisor } from '../../cli/up/supervisor.ts';
import { isAlive } from '../helpers/cli.ts';

const job = (state: string, node_states: Record<string, number>, node_count = 2) => ({ state, node_states, node_count }) as JobJson;

describe('exit codes from node states', () => {
  it('a job: 0 only when every node finished; 1 for a failed, errored or skipped node, or a failed job; 4 when the user stopped it', () => {
    assert.equal(jobExitCode(job('finished', { finished: 2 })), ExitCode.ok);
    assert.equal(jobExitCode(job('finished', { finished: 1, skipped: 1 })), ExitCode.failure);
    assert.equal(jobExitCode(job('failed', { finished: 2 })), ExitCode.failure);
    assert.equal(jobExitCode(job('running', { running: 1, errored: 1 })), ExitCode.failure);
    assert.equal(jobExitCode(job('running', { running: 1, finished: 1 })), ExitCode.ok);
    assert.equal(jobExitCode(job('stopped', { finished: 1, failed: 1 })), ExitCode.failure);
    assert.equal(jobExitCode(job('stopped', { finished: 1 }), true), ExitCode.detached);
  });

  it('a push job: 0 only when it completed on every node; 1 for a crashed, failed, nacked… node, or a job that did not complete', () => {
    assert.equal(pushExitCode({ status: 'complete', nodes: { complete: ['a', 'b'] } }), ExitCode.ok);
    for (const bad of ['crashed', 'failed', 'nacked', 'unavailable', 'timed_out', 'aborted', 'was_ready']) {
      assert.equal(pushExitCode({ status: 'complete', nodes: { complete: ['a'], [bad]: ['b'] } }), ExitCode.failure, bad);
    }
    assert.equal(pushExitCode({ status: 'quorum_failed', nodes: { nacked: ['a'] } }), ExitCode.failure);
    assert.equal(pushExitCode({ status: 'timed_out', nodes: { complete: ['a'] } }), ExitCode.failure);
    assert.equal(pushExitCode({ status: 'running', nodes: { running: ['a'], complete: ['b'] } }), ExitCode.ok);
    assert.equal(pushExitCode({ status: 'running', nodes: { running: ['a'], crashed: ['b'] } }), ExitCode.failure);
    assert.equal(pushExitCode({ status: 'aborted', nodes: { aborted: ['a'] } }, true), ExitCode.detached);
  });
});

describe('the supervisor of baton up', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-supervisor-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stops a child that is still starting when everything stops', async () => {
    const sup = new Supervisor(join(dir, 'logs'), () => assert.fail('not an unexpected exit'));
    const starting = sup.start({ name: 'slow', command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], ipc: false, ready: () => false });
    const [child] = sup.children;
    assert.ok(child, 'known from the moment it is spawned');
    await sup.stopAll();
    await assert.rejects(starting, /slow exited \(SIGTERM\) before it was ready/);
    assert.equal(isAlive(child.pid), false);
  });

  it('forgets a program that cannot start, and still stops', async () => {
    const sup = new Supervisor(join(dir, 'logs'), () => assert.fail('not an unexpected exit'));
    await assert.rejects(sup.start({ name: 'nope', command: join(dir, 'no-such-program'), args: [], ipc: false, ready: () => true }), { code: 'ENOENT' });
    assert.deepEqual(sup.children, []);
    await sup.stopAll();
  });
});

describe('the admin token file (~/.baton/token)', () => {
  const home = mkdtempSync(join(tmpdir(), 'baton-home-'));
  const savedHome = process.env.HOME;
  before(() => {
    process.env.HOME = home; // os.homedir() follows HOME
  });
  after(() => {
    process.env.HOME = savedHome;
    rmSync(home, { recursive: true, force: true });
  });
  const file = join(home, '.baton', 'token');

  it('is made once with mode 0600', () => {
    const made = ensureToken();
    assert.equal(made.file, file);
    assert.equal(made.tightenedFrom, undefined);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(ensureToken(), made);
  });

  it('is reused, and made 0600 (once) when others could read it', () => {
    mkdirSync(join(home, '.baton'), { recursive: true });
    writeFileSync(file, 'a-token-that-was-there-before\n');
    chmodSync(file, 0o644);
    const reused = ensureToken();
    assert.equal(reused.token, 'a-token-that-was-there-before');
    assert.equal(reused.tightenedFrom, 0o644);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(ensureToken().tightenedFrom, undefined, 'said once');
    assert.equal(readFileSync(file, 'utf8'), 'a-token-that-was-there-before\n');
  });
});
