// The process's open-file limit, and how many of those files a server may spend on connections.
// Node has no getrlimit; on Linux the soft limit is in /proc/self/limits. A server that accepts
// connections up to the limit fails in the worst way: accept() and fd passing start failing, TLS,
// Redis and log files stop opening, and clients are left waiting. So a server keeps a reserve and
// refuses connections beyond its budget at once.
import { readFileSync } from 'node:fs';

/** Files kept free for everything that is not a client connection (Redis, logs, TLS reads, libuv). */
export const DEFAULT_RESERVED_FILES = 256;
/** With a small limit, at most this fraction of it is reserved. */
export const MAX_RESERVED_FILES_FRACTION = 0.25;

/** The soft "Max open files" limit in the text of /proc/<pid>/limits; undefined if unlimited or absent. */
export function parseOpenFileLimit(limitsText: string): number | undefined {
  const line = limitsText.split('\n').find((l) => l.startsWith('Max open files'));
  if (!line) return undefined;
  const soft = line.slice('Max open files'.length).trim().split(/\s+/)[0];
  const n = Number(soft);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** This process's soft open-file limit, or undefined where it cannot be read (not Linux) or is unlimited. */
export function openFileLimit(): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

/** How many client connections a process with `limit` open files may hold (0: no bound known). */
export function connectionBudget(limit: number | undefined, reservedFiles: number = DEFAULT_RESERVED_FILES): number {
  if (limit === undefined) return 0;
  const reserve = Math.min(reservedFiles, Math.floor(limit * MAX_RESERVED_FILES_FRACTION));
  return Math.max(1, limit - reserve);
}
