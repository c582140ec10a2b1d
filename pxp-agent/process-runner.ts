// Runs an action as a child process in its own process group, through a tiny /bin/sh wrapper
// that records the exit code in the spool even when the agent is no longer there to see it.
// Arguments are passed as an argv list: nothing is ever interpolated into a shell command line.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync, fstatSync, readSync } from 'node:fs';
import type { TransactionFiles } from './spool.ts';

/** The agent's environment without Baton's own settings, which are none of an action's business. */
export function agentEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith('BATON_')) out[k] = v;
  return out;
}

export interface ProcessSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Written to the process's stdin (then unlinked from the spool). */
  input?: string;
  cwd?: string;
  timeoutS?: number;
  /**
   * Run as this user and group (an agent running as root). Such a process cannot write to the
   * spool, so its wrapper records the exit code through a descriptor the agent opened for it.
   */
  uid?: number;
  gid?: number;
}

// $1 is the exit code file; the rest is the command and its arguments, run as "$@".
const WRAPPER = 'out=$1; shift; "$@"; code=$?; printf "%s\\n" "$code" > "$out.tmp" && mv -f "$out.tmp" "$out"';
export const WRAPPER_NAME = 'baton-action';
// The same for a process of another user: descriptor 3 is the exit code file (closed for the
// command); $1 still names it, which is how a re-attaching agent recognises the wrapper.
const WRAPPER_FD3 = 'out=$1; shift; "$@" 3>&-; code=$?; printf "%s\\n" "$code" >&3';

export function startProcess(spec: ProcessSpec, files: TransactionFiles): ChildProcess {
  let stdin: number | 'ignore' = 'ignore';
  if (spec.input !== undefined) {
    writeFileSync(files.input, spec.input, { mode: 0o600 });
    stdin = openSync(files.input, 'r');
    unlinkSync(files.input); // the open descriptor is all the process needs; nothing sensitive stays on disk
  }
  const out = openSync(files.stdout, 'a', 0o600);
  const err = openSync(files.stderr, 'a', 0o600);
  const asUser = spec.uid !== undefined || spec.gid !== undefined;
  const code = asUser ? openSync(files.exitcode, 'w', 0o600) : null;
  try {
    return spawn('/bin/sh', ['-c', asUser ? WRAPPER_FD3 : WRAPPER, WRAPPER_NAME, files.exitcode, spec.command, ...spec.args], {
      detached: true,
      stdio: code === null ? [stdin, out, err] : [stdin, out, err, code],
      env: spec.env,
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
      ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
    });
  } finally {
    if (typeof stdin === 'number') closeSync(stdin);
    closeSync(out);
    closeSync(err);
    if (code !== null) closeSync(code);
  }
}

/** Signals a whole process group; a group that is gone already is fine. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** `/proc/<pid>/stat`: state and process group (Linux), or null when there is no such process. */
function procStat(pid: number | string): { state: string; pgrp: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, pgrp: Number(fields[2]) };
  } catch {
    return null;
  }
}

/** Whether a process is running; a zombie (dead, not yet reaped) is not. */
export function isAlive(pid: number): boolean {
  if (process.platform === 'linux') {
    const st = procStat(pid);
    return st !== null && st.state !== 'Z' && st.state !== 'X';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether any process of a process group still runs. */
export function groupAlive(pgid: number): boolean {
  if (process.platform !== 'linux') {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) > 57) continue; // not a pid
    const st = procStat(name);
    if (st && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X') return true;
  }
  return false;
}

/** Resolves once no process of the group runs any more, or after `maxMs`. */
export async function waitGroupGone(pgid: number, maxMs: number, pollMs = 20): Promise<boolean> {
  const deadline = Date.now() + maxMs;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return true;
}

/** Whether `pid` is still the wrapper of this transaction (and not a reused pid). */
export function isWrapperOf(pid: number, files: TransactionFiles): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(files.exitcode);
  } catch {
    return process.platform !== 'linux' && isAlive(pid);
  }
}

/**
 * The wrapper process of a transaction found by its command line (Linux `/proc`), for an agent
 * that died after starting it but before it recorded the pid; null when there is none.
 */
export function findWrapper(files: TransactionFiles): number | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    const pid = Number(e);
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      if (cmd.includes(WRAPPER_NAME) && cmd.includes(files.exitcode)) return pid;
    } catch {
      // gone, or not ours to read
    }
  }
  return null;
}

/**
 * Whether a transaction whose pid was never recorded shows no sign of having run: no exit code,
 * empty output, and output files made since this machine booted (a reboot would also explain a
 * missing process). Anything else counts as having run, so that it never runs twice.
 */
export function nothingRan(files: TransactionFiles): boolean {
  if (readExitcode(files) !== null) return false;
  const bootMs = bootTimeMs();
  for (const f of [files.stdout, files.stderr]) {
    try {
      const st = statSync(f);
      if (st.size > 0 || bootMs === null || st.mtimeMs < bootMs) return false;
    } catch {
      // not made: nothing written there
    }
  }
  return true;
}

/** When this machine booted (Linux `/proc/stat` btime), or null when unknown. */
function bootTimeMs(): number | null {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'));
    return m ? Number(m[1]) * 1000 : null;
  } catch {
    return null;
  }
}

export function readExitcode(files: TransactionFiles): number | null {
  try {
    const n = Number.parseInt(readFileSync(files.exitcode, 'utf8').trim(), 10);
    return Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
}

/** Reads at most `maxBytes` of a file as UTF-8 (invalid sequences become U+FFFD). */
export function readCapped(path: string, maxBytes: number): { text: string; truncated: boolean; bytes: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { text: '', truncated: false, bytes: 0 };
  }
  try {
    const size = fstatSync(fd).size;
    const n = Math.min(size, maxBytes);
    const buf = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const got = readSync(fd, buf, off, n - off, off);
      if (got === 0) break;
      off += got;
    }
    return { text: buf.subarray(0, off).toString('utf8'), truncated: size > maxBytes, bytes: size };
  } finally {
    closeSync(fd);
  }
}
