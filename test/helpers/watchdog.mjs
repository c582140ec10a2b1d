// Kills a helper process (say, a test's redis-server) once the test process that started it is
// gone: redis-server cannot notice that itself. Usage: node watchdog.mjs <owner pid> <target pid>.
// Nothing tells an unrelated process that another ended, so it looks twice a second.
const [owner, target] = process.argv.slice(2).map(Number);
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const timer = setInterval(() => {
  if (!alive(target)) return process.exit(0);
  if (alive(owner)) return;
  try {
    process.kill(target, 'SIGKILL');
  } catch {
    // already gone
  }
  clearInterval(timer);
}, 500);
