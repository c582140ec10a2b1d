// `facts get`: what the host is (hostname, os, kernel, processors, memory, uptime, environment),
// plus `facter --json` when facter is installed and JSON files from `facts-dir`.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { arch, cpus, freemem, hostname, release, totalmem, type, uptime } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { emptyParamsSchema } from '../../schemas/pxp.ts';
import { compile } from '../../protocol/validate.ts';
import type { Logger } from '../../lib/log.ts';
import type { PxpModule } from './types.ts';

const run = promisify(execFile);
export const FACTER_TIMEOUT_MS = 60_000;

function osRelease(): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync('/etc/os-release', 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
    }
    return out;
  } catch {
    return {};
  }
}

/** Facter's os.family: the family the distribution belongs to (Debian for Ubuntu too). */
const FAMILIES: Record<string, string> = { debian: 'Debian', ubuntu: 'Debian', rhel: 'RedHat', fedora: 'RedHat', centos: 'RedHat', suse: 'Suse', arch: 'Archlinux', alpine: 'Alpine', gentoo: 'Gentoo' };

export function osFamily(os: Record<string, string>): string {
  for (const id of [...(os.ID_LIKE ?? '').split(' '), os.ID ?? '']) if (FAMILIES[id]) return FAMILIES[id];
  return os.ID ? os.ID.charAt(0).toUpperCase() + os.ID.slice(1) : type();
}

async function facter(log: Logger): Promise<Record<string, unknown>> {
  try {
    const { stdout } = await run('facter', ['--json'], { timeout: FACTER_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ err: (err as Error).message }, 'facter failed');
    return {};
  }
}

function factsDir(dir: string | undefined, log: Logger): Record<string, unknown> {
  if (!dir) return {};
  const out: Record<string, unknown> = {};
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      const value = JSON.parse(readFileSync(join(dir, name), 'utf8')) as unknown;
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) Object.assign(out, value);
      else log.warn({ file: name }, 'facts file does not hold a JSON object; ignored');
    } catch (err) {
      log.warn({ file: name, err: (err as Error).message }, 'facts file is not valid JSON; ignored');
    }
  }
  return out;
}

export function createFactsModule(opts: { environment: string; factsDir?: string | undefined }): PxpModule {
  return {
    name: 'facts',
    actions: {
      get: {
        kind: 'instant',
        validate: compile(emptyParamsSchema),
        async run(_params, ctx) {
          const os = osRelease();
          const processors = cpus();
          const fromFacter = await facter(ctx.log);
          const facterOs = (fromFacter.os ?? {}) as Record<string, unknown>;
          return {
            ...fromFacter,
            hostname: hostname(),
            os: {
              ...facterOs,
              family: facterOs.family ?? osFamily(os),
              name: facterOs.name ?? os.NAME?.split(' ')[0] ?? type(),
              release: facterOs.release ?? { full: os.VERSION_ID ?? release() },
              pretty_name: os.PRETTY_NAME,
              architecture: facterOs.architecture ?? arch(),
            },
            kernel: { name: type(), release: release() },
            processors: { count: processors.length, models: [...new Set(processors.map((p) => p.model))] },
            memory: { total_bytes: totalmem(), available_bytes: freemem() },
            uptime_seconds: Math.round(uptime()),
            environment: opts.environment,
            ...factsDir(opts.factsDir, ctx.log),
          };
        },
      },
    },
  };
}
