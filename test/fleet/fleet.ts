// Starts a fleet process (see fleet-process.ts) with certificates for every name.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { issueCert } from '../../lib/pki.ts';

export interface Fleet {
  names: string[];
  proc: ChildProcess;
  /** Asks the fleet process how many of its agents are connected, and why attempts failed. */
  stats(): Promise<FleetStats>;
  stop(): Promise<void>;
}

export async function issueFleetCerts(pkiDir: string, names: string[]): Promise<void> {
  const PARALLEL = 16;
  for (let i = 0; i < names.length; i += PARALLEL) {
    await Promise.all(names.slice(i, i + PARALLEL).map((n) => issueCert(pkiDir, n, { force: true })));
  }
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
}

export interface FleetStats {
  connected: number;
  /** Failed connection attempts since the fleet was ready, by error code. */
  connectErrors: Record<string, number>;
}

export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  const baseDir = mkdtempSync(join(opts.parentDir ?? tmpdir(), 'baton-fleet-'));
  const spec = {
    brokerUris: opts.brokerUris,
    pkiDir: opts.pkiDir,
    names: opts.names,
    masterUris: opts.masterUris ?? [],
    baseDir,
    inMemoryTask: opts.inMemoryTask ?? false,
    ...(opts.reconnect ? { reconnect: opts.reconnect } : {}),
  };
  const proc = spawn(process.execPath, ['--import', 'tsx', new URL('./fleet-process.ts', import.meta.url).pathname, JSON.stringify(spec)], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
    proc.once('exit', (code) => reject(new Error(`fleet exited with ${String(code)}`)));
  });
  return {
    names: opts.names,
    proc,
    stats() {
      return new Promise<FleetStats>((resolve, reject) => {
        const onMessage = (m: { type?: string } & FleetStats) => {
          if (m?.type !== 'stats') return;
          proc.off('message', onMessage);
          resolve({ connected: m.connected, connectErrors: m.connectErrors });
        };
        if (!proc.connected) return reject(new Error('the fleet process is gone'));
        proc.on('message', onMessage);
        proc.send({ type: 'stats' });
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
