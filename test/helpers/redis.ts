// A private redis-server per test file, on a free port, with nothing persisted unless asked. The
// chaos suite also asks for append-only persistence in a fixed data directory, the server's pid,
// signals (SIGKILL, SIGSTOP/SIGCONT) and a restart on the same port and data.
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../../lib/net.ts';
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type AppendFsync = 'always' | 'everysec' | 'no';

export interface TestRedis {
  port: number;
  url: string;
  proc: ChildProcess;
  /** The data directory of a persistent server (null when nothing is persisted). */
  readonly dir: string | null;
  /** The pid of the redis-server running now. */
  readonly pid: number;
  /** Whether it is stopped by SIGSTOP (see pause). */
  readonly paused: boolean;
  /** SIGTERM (after SIGCONT if paused), and waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (and, when persistent, with the same data). */
  restart(): Promise<void>;
  /** Sends `signal`; for a signal that ends the process (SIGKILL, SIGTERM, ...), waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: the server stops answering while its connections stay open. */
  pause(): void;
  /** SIGCONT after pause. */
  resume(): void;
}

export interface RedisOptions {
  /** Keep data on disk (append-only file), so that a restart keeps it. */
  persistent?: boolean;
  /** `appendfsync` of a persistent server; default `always`. */
  appendfsync?: AppendFsync;
  /** Data directory of a persistent server (created if missing); default a fresh temporary one. Implies persistent. */
  dir?: string;
}

const START_ATTEMPTS = 5;
/** `baton up`'s own watchdog: it stops redis-server when the process holding its channel is gone. */
const WATCHDOG = new URL('../../cli/up/watchdog.mjs', import.meta.url).pathname;
/** Signals after which the process is gone (the others, SIGSTOP and SIGCONT, leave it running). */
const NON_ENDING_SIGNALS: readonly NodeJS.Signals[] = ['SIGSTOP', 'SIGCONT', 'SIGTSTP', 'SIGWINCH', 'SIGCHLD', 'SIGURG'];

interface Storage {
  dir: string;
  appendfsync: AppendFsync;
}

export async function startRedis(opts: RedisOptions = {}): Promise<TestRedis> {
  let lastError: Error | undefined;
  let storage: Storage | null = null;
  if (opts.persistent || opts.dir !== undefined) {
    const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'baton-redis-'));
    mkdirSync(dir, { recursive: true });
    storage = { dir, appendfsync: opts.appendfsync ?? 'always' };
  }
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    try {
      return handle(port, storage, await startOn(port, storage));
    } catch (err) {
      lastError = err as Error; // the port was taken in between; try another
    }
  }
  throw lastError ?? new Error('redis-server did not start');
}

/** Starts redis-server on `port` and resolves once it accepts connections. */
async function startOn(port: number, storage: Storage | null): Promise<ChildProcess> {
  const args = storage
    ? ['--dir', storage.dir, '--appendonly', 'yes', '--appendfsync', storage.appendfsync, '--save', '']
    : ['--save', '', '--appendonly', 'no'];
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', ...args, '--daemonize', 'no', '--loglevel', 'notice'], {
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

const gone = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;
const exitOf = (p: ChildProcess) => new Promise<void>((resolve) => p.once('exit', () => resolve()));

function handle(port: number, storage: Storage | null, first: ChildProcess): TestRedis {
  let watchdog = watch(first);
  let paused = false;
  let exited = exitOf(first);
  const self: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: first,
    dir: storage?.dir ?? null,
    get pid() {
      return self.proc.pid!;
    },
    get paused() {
      return paused;
    },
    async stop() {
      if (!gone(self.proc)) {
        if (paused) self.resume(); // a stopped process would hold SIGTERM until it runs again
        self.proc.kill('SIGTERM');
        await exited;
      }
      watchdog.kill();
    },
    async restart() {
      await self.stop();
      self.proc = await startOn(port, storage);
      exited = exitOf(self.proc);
      paused = false;
      watchdog = watch(self.proc);
    },
    async kill(signal) {
      if (gone(self.proc)) return;
      if (NON_ENDING_SIGNALS.includes(signal)) {
        self.proc.kill(signal);
        if (signal === 'SIGSTOP' || signal === 'SIGTSTP') paused = true;
        if (signal === 'SIGCONT') paused = false;
        return;
      }
      if (paused && signal !== 'SIGKILL') self.resume();
      self.proc.kill(signal);
      await exited;
      paused = false;
      watchdog.kill(); // its redis-server is gone; restart() starts another watchdog
    },
    pause() {
      if (gone(self.proc) || paused) return;
      self.proc.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      if (gone(self.proc) || !paused) return;
      self.proc.kill('SIGCONT');
      paused = false;
    },
  };
  return self;
}
