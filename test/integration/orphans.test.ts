// Services never outlive the process that started them: when a harness dies (SIGKILL, no
// cleanup), its broker and agent notice the closed IPC channel and exit, even though their
// stdout is now a pipe nobody reads (their last log lines cannot be written), and the watchdog of
// its private redis-server stops that too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { isAlive } from '../../pxp-agent/process-runner.ts';

const run = promisify(execFile);
const FIXTURE = new URL('../fixtures/orphaning-parent.ts', import.meta.url).pathname;
/** How long the services may take to go: their shutdown deadline, and then some. */
const GONE_WITHIN_MS = 20_000;


describe('orphaned services', () => {
  it('exit when the harness that started them is killed (broker, agent, redis-server)', async () => {
    const out = await run(process.execPath, ['--import', 'tsx', FIXTURE]).then((r) => r.stdout, (err: { stdout: string }) => err.stdout);
    const { pids } = JSON.parse(out.trim().split('\n').at(-1)!) as { pids: number[] };
    assert.equal(pids.length, 3);
    // No event tells this process that an unrelated one ended: look, a bounded number of times.
    const deadline = Date.now() + GONE_WITHIN_MS;
    while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const left = pids.filter(isAlive);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    assert.deepEqual(left, [], 'no service outlived its harness');
  });
});
