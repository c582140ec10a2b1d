// Starts a fleet of real agents (see fleet-process.ts) in as many child processes as it takes to
// keep each process under its open-file limit: every agent holds a TLS session and a few spool
// files, so a process runs at most `agentsPerProcess` agents (FLEET_AGENTS_PER_PROCESS by default).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { splitEvenly } from './fleet-certs.ts';

export { issueFleetCerts } from './fleet-certs.ts';

/** Agents per fleet process: about 1 fd per TLS session plus a few for spool files, well under 20,000 open files. */
export const FLEET_AGENTS_PER_PROCESS = 8_000;

export interface Fleet {
  names: string[];
  /** The first fleet process (the only one for fleets up to `agentsPerProcess`). */
  proc: ChildProcess;
  /** Every fleet process, `proc` first. */
  procs: ChildProcess[];
  /** Asks every fleet process how many of its agents are connected, and why attempts failed; summed. */
  stats(): Promise<FleetStats>;
  /** Stops every fleet process and removes the agents' spools and caches. */
  stop(): Promise<void>;
}

export interface FleetOptions {
  pkiDir: string;
  names: string[];
  brokerUris: string[];
  masterUris?: string[];
  inMemoryTask?: boolean;
  /** Agents' reconnection delays (ms); `'default'` keeps the product's defaults. Absent: 100/1000 ms. */
  reconnect?: { initialMs: number; maxMs: number } | 'default';
  /** Where the agents' spools and caches go (default the system's temporary directory). */
  parentDir?: string;
  /** At most this many agents in one process (default FLEET_AGENTS_PER_PROCESS). */
  agentsPerProcess?: number;
}

export interface FleetStats {
  connected: number;
  /** Failed connection attempts since the fleet was ready, by error code. */
  connectErrors: Record<string, number>;
}

function exited(proc: ChildProcess): boolean {
  return proc.exitCode !== null || proc.signalCode !== null;
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (exited(proc)) return;
  const gone = once(proc, 'exit');
  proc.kill('SIGTERM');
  await gone;
}

/** Spawns one fleet process; its spec goes in a file (argv is limited to 128 KiB per argument). */
function spawnFleetProcess(spec: Record<string, unknown>, specFile: string): { proc: ChildProcess; ready: Promise<void> } {
  writeFileSync(specFile, JSON.stringify(spec));
  const proc = spawn(process.execPath, ['--import', 'tsx', new URL('./fleet-process.ts', import.meta.url).pathname, `@${specFile}`], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
    proc.once('exit', (code, signal) => reject(new Error(`fleet process ${String(proc.pid)} exited with ${String(code ?? signal)}`)));
  });
  return { proc, ready };
}

function statsOf(proc: ChildProcess): Promise<FleetStats> {
  return new Promise<FleetStats>((resolve, reject) => {
    const onMessage = (m: { type?: string } & FleetStats) => {
      if (m?.type !== 'stats') return;
      proc.off('message', onMessage);
      resolve({ connected: m.connected, connectErrors: m.connectErrors });
    };
    if (!proc.connected) return reject(new Error(`the fleet process ${String(proc.pid)} is gone`));
    proc.on('message', onMessage);
    proc.send({ type: 'stats' });
  });
}

export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  const perProcess = opts.agentsPerProcess ?? FLEET_AGENTS_PER_PROCESS;
  if (!(perProcess >= 1)) throw new RangeError(`agentsPerProcess must be at least 1, not ${perProcess}`);
  const baseDir = mkdtempSync(join(opts.parentDir ?? tmpdir(), 'baton-fleet-'));
  const shares = splitEvenly(opts.names, Math.max(1, Math.ceil(opts.names.length / perProcess)));
  const started = shares.map((names, i) =>
    spawnFleetProcess(
      {
        brokerUris: opts.brokerUris,
        pkiDir: opts.pkiDir,
        names,
        masterUris: opts.masterUris ?? [],
        baseDir,
        inMemoryTask: opts.inMemoryTask ?? false,
        ...(opts.reconnect ? { reconnect: opts.reconnect } : {}),
      },
      join(baseDir, `fleet-spec-${i}.json`),
    ),
  );
  const procs = started.map((s) => s.proc);
  const stop = async () => {
    await Promise.all(procs.map(stopProc));
    rmSync(baseDir, { recursive: true, force: true });
  };
  try {
    await Promise.all(started.map((s) => s.ready));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    names: opts.names,
    proc: procs[0]!,
    procs,
    async stats() {
      const all = await Promise.all(procs.map(statsOf));
      const connectErrors: Record<string, number> = {};
      for (const s of all) for (const [code, n] of Object.entries(s.connectErrors)) connectErrors[code] = (connectErrors[code] ?? 0) + n;
      return { connected: all.reduce((sum, s) => sum + s.connected, 0), connectErrors };
    },
    stop,
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat. */
function procCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime in ticks; USER_HZ is 100 on Linux
}

/** CPU time (ms) used so far by all of a fleet's processes together. */
export function fleetCpuMs(fleet: Pick<Fleet, 'procs'>): number {
  return fleet.procs.reduce((sum, p) => sum + procCpuMs(p.pid!), 0);
}
