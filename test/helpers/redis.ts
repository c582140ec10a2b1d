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
/** `baton up`'s own watchdog: it stops redis-server when the process holding its channel is gone. */
const WATCHDOG = new URL('../../cli/up/watchdog.mjs', import.meta.url).pathname;

export async function startRedis(opts: RedisOptions = {}): Promise<TestRedis> {
  let lastError: Error | undefined;
  const dir = opts.persistent ? mkdtempSync(join(tmpdir(), 'baton-redis-')) : null;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    try {
      return handle(port, dir, await startOn(port, dir));
    } catch (err) {
      lastError = err as Error; // the port was taken in between; try another
    }
  }
  throw lastError ?? new Error('redis-server did not start');
}

/** Starts redis-server on `port` and resolves once it accepts connections. */
async function startOn(port: number, dir: string | null): Promise<ChildProcess> {
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
  return proc;
}

/**
 * `baton up`'s own watchdog, for one redis-server: it stops it if this test process dies without
 * doing so. Its channel is not counted as work, so the test process still ends on its own.
 */
function watch(proc: ChildProcess): ChildProcess {
  const watchdog = spawn(process.execPath, [WATCHDOG, String(proc.pid), 'redis-server'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  watchdog.unref();
  watchdog.channel?.unref();
  return watchdog;
}

function handle(port: number, dir: string | null, first: ChildProcess): TestRedis {
  let watchdog = watch(first);
  const self: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: first,
    async stop() {
      if (self.proc.exitCode !== null || self.proc.signalCode !== null) return;
      const exited = once(self.proc, 'exit');
      self.proc.kill('SIGTERM');
      await exited;
      watchdog.kill();
    },
    async restart() {
      await self.stop();
      self.proc = await startOn(port, dir);
      watchdog = watch(self.proc);
    },
  };
  return self;
}
