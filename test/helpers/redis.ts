// A private redis-server per test file, on a free port, with nothing persisted.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from '../../lib/net.ts';
import { createInterface } from 'node:readline';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestRedis {
  port: number;
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
  /** Starts it again on the same port (and, when persistent, with the same data). */
  restart(): Promise<void>;
}

export interface RedisOptions {
  /** Keep data on disk (append-only file), so that a restart keeps it. */
  persistent?: boolean;
}

const START_ATTEMPTS = 5;
const WATCHDOG = new URL('./watchdog.mjs', import.meta.url).pathname;

export async function startRedis(opts: RedisOptions = {}): Promise<TestRedis> {
  let lastError: Error | undefined;
  const dir = opts.persistent ? mkdtempSync(join(tmpdir(), 'baton-redis-')) : null;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    try {
      return await startOn(port, dir);
    } catch (err) {
      lastError = err as Error; // the port was taken in between; try another
    }
  }
  throw lastError ?? new Error('redis-server did not start');
}

async function startOn(port: number, dir: string | null): Promise<TestRedis> {
  const storage = dir ? ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''] : ['--save', '', '--appendonly', 'no'];
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', ...storage, '--daemonize', 'no', '--loglevel', 'notice'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
  // If this test process dies without stopping it, the watchdog does (it ends with redis-server).
  spawn(process.execPath, [WATCHDOG, String(process.pid), String(proc.pid)], { stdio: 'ignore', detached: true }).unref();
  const self: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc,
    async stop() {
      if (self.proc.exitCode !== null || self.proc.signalCode !== null) return;
      const exited = once(self.proc, 'exit');
      self.proc.kill('SIGTERM');
      await exited;
    },
    async restart() {
      await self.stop();
      const again = await startOn(port, dir);
      self.proc = again.proc;
    },
  };
  return self;
}
