// Runs the `baton` command as a user does: client commands to completion, and `baton up` as a
// long-running child whose banner says where everything runs.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { BATON_BIN } from './broker.ts'; // importing it builds dist/ when the sources are newer

export { BATON_BIN };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `baton ...args` to its end; never throws for a non-zero exit. */
export function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BATON_BIN, ...args], { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
  });
}

export interface UpFleet {
  proc: ChildProcess;
  /** Everything it printed on stdout so far. */
  output: string[];
  stderr: string;
  apiUrl: string;
  pids: number[];
  exited: Promise<number | null>;
}

/** Starts `baton up` in `cwd` with HOME=`home`, and resolves once it prints "Baton is up". */
export async function startUp(args: string[], cwd: string, home: string): Promise<UpFleet> {
  const proc = spawn(process.execPath, [BATON_BIN, 'up', ...args], { cwd, env: { ...process.env, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
  const fleet: UpFleet = { proc, output: [], stderr: '', apiUrl: '', pids: [], exited: once(proc, 'exit').then(([code]) => code as number | null) };
  proc.stderr!.on('data', (d: Buffer) => (fleet.stderr += d.toString()));
  const up = new Promise<void>((resolve) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      fleet.output.push(line);
      if (line === 'Ctrl-C stops everything.') resolve(); // the banner's last line
    });
  });
  await Promise.race([up, fleet.exited.then((code) => Promise.reject(new Error(`baton up exited (${String(code)}) before it was up:\n${fleet.stderr}`)))]);
  const text = fleet.output.join('\n');
  fleet.apiUrl = /orchestrator\s+(https:\/\/\S+)/.exec(text)![1]!;
  fleet.pids = [...text.matchAll(/\(pid ([0-9]+)\)/g)].map((m) => Number(m[1]));
  return fleet;
}

/** Pids of processes whose command line mentions `text` (like `pgrep -f`). */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // it ended meanwhile
    }
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
