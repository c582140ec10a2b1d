// Loaded into the benchmark's broker only (with --expose-gc): SIGUSR2 runs a full garbage
// collection and logs the process's memory, so that idle-session memory is read without the
// garbage of the connect phase.
process.on('SIGUSR2', () => {
  globalThis.gc?.();
  process.stdout.write(`${JSON.stringify({ msg: 'gc done', memory: process.memoryUsage() })}\n`);
});
