// Runs a cleanup once on SIGINT or SIGTERM, then exits. A process started by a supervisor
// with an IPC channel (`baton up`, test harnesses) also stops when that channel closes, so
// that it never outlives the process that started it.

/** A cleanup that has not finished by then (a peer gone for good, say) is cut short: exit 1. */
export const SHUTDOWN_DEADLINE_MS = 15_000;

export function onShutdown(cleanup: () => Promise<void>, deadlineMs = SHUTDOWN_DEADLINE_MS): void {
  let stopping = false;
  let orphaned = false;
  const exit = (code: number) => {
    // With its parent gone, stdout is a pipe nobody reads: flushing logs into it at exit can spin
    // forever (EPIPE, retried), so the process ends without that last flush.
    if (orphaned) process.kill(process.pid, 'SIGKILL');
    process.exit(code);
  };
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => {
      if (!orphaned) process.stderr.write(`shutdown did not finish within ${deadlineMs} ms; exiting anyway\n`);
      exit(1);
    }, deadlineMs).unref();
    cleanup().then(
      () => exit(0),
      (err: unknown) => {
        if (!orphaned) process.stderr.write(`error during shutdown: ${(err as Error).message}\n`);
        exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (process.connected) {
    process.on('disconnect', () => {
      orphaned = true;
      stop();
    });
  }
}
