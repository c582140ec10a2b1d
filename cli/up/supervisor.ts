// A small process supervisor for `baton up`: starts children one by one, each ready when its output
// shows a given line; logs each child to a file; stops them in reverse order (SIGTERM, then SIGKILL
// after STOP_TIMEOUT_MS); reports a child that exits while it should run. A child is known from
// the moment it is spawned, so that stopping while one is still starting stops it too. Children
// run in their own process groups, so that a terminal's Ctrl-C reaches only `baton up`, which
// stops them in order.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectPath } from '../../lib/paths.ts';
import { CliError, CliErrorCode } from '../errors.ts';

/** How long a child may take to become ready. */
export const READY_TIMEOUT_MS = 60_000;
/** How long a child may take to stop after SIGTERM before it is killed. */
export const STOP_TIMEOUT_MS = 15_000;
const TAIL_LINES = 15;

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  /** Baton programs get an IPC channel: they stop by themselves if `baton up` dies. */
  ipc: boolean;
  /** Returns something (e.g. the parsed log line) when `line` says the child is ready. */
  ready(line: string): unknown;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * A program without an IPC channel (redis-server) cannot notice that `baton up` died: a watchdog
   * (watchdog.mjs) stops it then. It ends when the child does.
   */
  watchdog?: boolean;
  /** How long it may take to become ready; READY_TIMEOUT_MS by default (a JVM needs longer). */
  readyTimeoutMs?: number;
}

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  tail: string[];
  watchdog?: ChildProcess;
}

/** The watchdog script, plain JavaScript shipped beside this file (found from the package root, for the bundle too). */
export const WATCHDOG_SCRIPT = (): string => projectPath('cli', 'up', 'watchdog.mjs');

/** Starts a watchdog that stops `child` when this process ends without stopping it. */
function startWatchdog(child: Child, command: string): ChildProcess {
  const w = spawn(process.execPath, [WATCHDOG_SCRIPT(), String(child.pid), basename(command)], { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  w.on('error', () => undefined); // it could not start: the pidfile cleanup of the next `baton up` remains
  w.unref();
  w.channel?.unref();
  return w;
}

export class Supervisor {
  readonly children: Child[] = [];
  stopping = false;
  private logs: WriteStream[] = [];

  constructor(
    private readonly logDir: string,
    /** Called once when a child exits while everything should run. */
    private readonly onUnexpectedExit: (child: Child, code: number | null, signal: NodeJS.Signals | null) => void,
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  /** Starts a child and resolves with it and its ready value once it is ready. */
  async start(spec: ChildSpec): Promise<{ child: Child; ready: unknown }> {
    if (this.stopping) throw new CliError(CliErrorCode.childFailed, `not starting ${spec.name}: stopping`);
    const logFile = join(this.logDir, `${spec.name}.log`);
    const log = createWriteStream(logFile, { flags: 'a' });
    this.logs.push(log);
    const proc = spawn(spec.command, spec.args, {
      stdio: ['ignore', 'pipe', 'pipe', ...(spec.ipc ? (['ipc'] as const) : [])],
      detached: true,
      env: spec.env ?? process.env,
      cwd: spec.cwd,
    });
    const tail: string[] = [];
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    };
    // 'exit' never comes for a process that could not be started: then 'error' ends it.
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
      proc.once('error', () => {
        if (proc.pid === undefined) resolve({ code: null, signal: null });
      });
    });
    // Known from now on: a stopAll() while it is still starting stops it too.
    const child: Child = { name: spec.name, proc, pid: proc.pid ?? 0, logFile, exited, tail };
    this.children.push(child);
    const err = await once(proc, 'spawn').then(() => null, (e: Error) => e);
    if (err) {
      this.children.splice(this.children.indexOf(child), 1);
      throw err; // ENOENT and the like: the caller names the program
    }
    if (spec.watchdog) {
      const w = startWatchdog(child, spec.command);
      child.watchdog = w;
      // Its job ends with the child's: stopped (by stopAll) or exited by itself.
      void exited.then(() => w.kill());
    }
    proc.stderr!.on('data', (d: Buffer) => {
      log.write(d);
      for (const l of d.toString('utf8').split('\n')) if (l.trim()) keep(l);
    });
    let markReady: (v: unknown) => void = () => undefined;
    const ready = new Promise<unknown>((resolve) => (markReady = resolve));
    let isReady = false;
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      log.write(`${line}\n`);
      keep(line);
      if (isReady) return;
      const value = spec.ready(line);
      if (value) {
        isReady = true;
        markReady(value);
      }
    });
    void exited.then(({ code, signal }) => {
      if (!this.stopping && isReady) this.onUnexpectedExit(child, code, signal);
    });
    let timer: NodeJS.Timeout | undefined;
    const readyTimeoutMs = spec.readyTimeoutMs ?? READY_TIMEOUT_MS;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.failure(child, `was not ready after ${readyTimeoutMs / 1000} s`)), readyTimeoutMs);
    });
    const died = exited.then(({ code, signal }) => {
      throw this.failure(child, `exited (${signal ?? `code ${String(code)}`}) before it was ready`);
    });
    try {
      const value = await Promise.race([ready, died, timedOut]);
      return { child, ready: value };
    } finally {
      clearTimeout(timer);
      died.catch(() => undefined);
    }
  }

  failure(child: Child, what: string): CliError {
    const tail = child.tail.length > 0 ? `\n  ${child.tail.join('\n  ')}` : '';
    return new CliError(CliErrorCode.childFailed, `${child.name} ${what}; its log is ${child.logFile}${tail}`);
  }

  /** Stops every child, the last started first. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const child of [...this.children].reverse()) await stopChild(child);
    await Promise.all(this.logs.map((l) => new Promise((resolve) => l.end(resolve))));
  }
}

async function stopChild(child: Child): Promise<void> {
  const { proc } = child;
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await child.exited;
  clearTimeout(timer);
}
