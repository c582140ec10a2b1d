// Certificates for a fleet: one key and certificate per name, signed by the CA in pkiDir.
// Issuing is CPU-bound (lib/pki.ts reads and imports the CA key for every certificate), so large
// fleets issue in several child processes, one per core.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCert } from '../../lib/pki.ts';

/** Certificates issued concurrently within one process. */
export const FLEET_CERTS_IN_FLIGHT = 16;
/** Below this many names per process, starting another process costs more than it saves. */
export const FLEET_CERTS_MIN_PER_PROCESS = 500;

/** Issues in this process, FLEET_CERTS_IN_FLIGHT at a time. */
export async function issueCertsHere(pkiDir: string, names: string[]): Promise<void> {
  for (let i = 0; i < names.length; i += FLEET_CERTS_IN_FLIGHT) {
    await Promise.all(names.slice(i, i + FLEET_CERTS_IN_FLIGHT).map((n) => issueCert(pkiDir, n, { force: true })));
  }
}

/** Splits `items` into `parts` slices of (nearly) equal length, in order. */
export function splitEvenly<T>(items: T[], parts: number): T[][] {
  const per = Math.ceil(items.length / parts);
  return Array.from({ length: parts }, (_, i) => items.slice(i * per, (i + 1) * per)).filter((c) => c.length > 0);
}

export interface IssueFleetCertsOptions {
  /** Child processes to issue in (default: one per core, fewer for small fleets). */
  processes?: number;
}

export async function issueFleetCerts(pkiDir: string, names: string[], opts: IssueFleetCertsOptions = {}): Promise<void> {
  const processes = opts.processes ?? Math.min(availableParallelism(), Math.floor(names.length / FLEET_CERTS_MIN_PER_PROCESS));
  if (processes <= 1) return issueCertsHere(pkiDir, names);
  const scratch = mkdtempSync(join(tmpdir(), 'baton-fleet-certs-'));
  try {
    await Promise.all(
      splitEvenly(names, processes).map(async (share, i) => {
        const file = join(scratch, `names-${i}.json`);
        writeFileSync(file, JSON.stringify(share));
        const proc = spawn(process.execPath, ['--import', 'tsx', new URL('./fleet-certs-process.ts', import.meta.url).pathname, pkiDir, file], {
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        const [code, signal] = (await once(proc, 'exit')) as [number | null, string | null];
        if (code !== 0) throw new Error(`issuing ${share.length} fleet certificates failed: exit ${String(code ?? signal)}`);
      }),
    );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
