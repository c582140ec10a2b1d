// A private redis-server per test file, on a free port, with nothing persisted.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from '../../lib/net.ts';
import { createInterface } from 'node:readline';

export interface TestRedis {
  port: number;
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

const START_ATTEMPTS = 5;

export async function startRedis(): Promise<TestRedis> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    try {
      return await startOn(port);
    } catch (err) {
      lastError = err as Error; // the port was taken in between; try another
    }
  }
  throw lastError ?? new Error('redis-server did not start');
}

async function startOn(port: number): Promise<TestRedis> {
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'notice'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      output.push(line);
      if (line.includes('Ready to accept connections')) resolve();
    });
    proc.once('error', (err) =>
      reject(
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? new Error('redis-server is not installed (Debian: apt-get install redis-server)')
          : err,
      ),
    );
    proc.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}: ${output.join('\n')}`)));
  });
  await ready;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
