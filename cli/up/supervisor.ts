// A small process supervisor for `baton up`: starts children one by one, each ready when its output
// shows a given line; logs each child to a file; stops them in reverse order (SIGTERM, then SIGKILL
// after STOP_TIMEOUT_MS); reports a child that exits while it should run. Children run in their
// own process groups, so that a terminal's Ctrl-C reaches only `baton up`, which stops them in order.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
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
}

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  tail: string[];
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
    });
    const spawnError = once(proc, 'spawn').then(() => null, (err: Error) => err);
    const err = await spawnError;
    if (err) throw err; // ENOENT and the like: the caller names the program
    const tail: string[] = [];
    const keep = (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
    };
    const exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    const child: Child = { name: spec.name, proc, pid: proc.pid!, logFile, exited, tail };
    this.children.push(child);
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
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.failure(child, `was not ready after ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
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
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await child.exited;
  clearTimeout(timer);
}
