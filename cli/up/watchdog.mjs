// Stops the redis-server of `baton up` once `baton up` is gone, however it ended (SIGKILL
// included): redis-server cannot notice that by itself, and it runs in its own process group, so
// no signal of the terminal reaches it. `baton up` starts this file (plain JavaScript, shipped
// beside the bundle and found from the package root) with an IPC channel:
//
//   node cli/up/watchdog.mjs <redis pid> <program name>
//
// The channel closes when `baton up` ends. If `baton up` stopped redis-server itself, it has
// killed this watchdog first; otherwise the watchdog sends redis-server SIGTERM (it saves its data
// and exits), then SIGKILL after STOP_TIMEOUT_MS. The program name guards against a recycled pid.
import { readFileSync } from 'node:fs';

const STOP_TIMEOUT_MS = 15_000;
const CHECK_INTERVAL_MS = 100;

const target = Number(process.argv[2]);
const program = process.argv[3] ?? 'redis-server';
if (!Number.isInteger(target) || target <= 0 || !process.connected) {
  process.stderr.write('usage: node watchdog.mjs <pid> <program name>, with an IPC channel to its owner\n');
  process.exit(2);
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Whether `pid` still runs `program` (where /proc tells; elsewhere, assume so). */
function runsProgram(pid) {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(program);
  } catch {
    return true; // no /proc here: trust the pid
  }
}

function kill(signal) {
  try {
    process.kill(target, signal);
  } catch {
    // already gone
  }
}

// Messages keep the channel (and so this process) alive; none are expected.
process.on('message', () => undefined);
process.on('disconnect', () => {
  if (!runsProgram(target)) process.exit(0);
  kill('SIGTERM');
  // Nothing tells an unrelated process that another ended: look, a bounded number of times.
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  const timer = setInterval(() => {
    if (!alive(target)) {
      clearInterval(timer);
      process.exit(0);
    }
    if (Date.now() > deadline) {
      kill('SIGKILL');
      clearInterval(timer);
      process.exit(0);
    }
  }, CHECK_INTERVAL_MS);
});
