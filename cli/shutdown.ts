// Runs a cleanup once on SIGINT or SIGTERM, then exits. A process started by a supervisor
// with an IPC channel (`baton up`, test harnesses) also stops when that channel closes, so
// that it never outlives the process that started it.

export function onShutdown(cleanup: () => Promise<void>): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    cleanup().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (process.connected) process.on('disconnect', stop);
}
