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
  stop(): Promise<void>;
}

export async function issueFleetCerts(pkiDir: string, names: string[]): Promise<void> {
  const PARALLEL = 16;
  for (let i = 0; i < names.length; i += PARALLEL) {
    await Promise.all(names.slice(i, i + PARALLEL).map((n) => issueCert(pkiDir, n, { force: true })));
  }
}

export async function startFleet(opts: { pkiDir: string; names: string[]; brokerUris: string[]; masterUris?: string[]; inMemoryTask?: boolean }): Promise<Fleet> {
  const baseDir = mkdtempSync(join(tmpdir(), 'baton-fleet-'));
  const spec = { brokerUris: opts.brokerUris, pkiDir: opts.pkiDir, names: opts.names, masterUris: opts.masterUris ?? [], baseDir, inMemoryTask: opts.inMemoryTask ?? false };
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
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
