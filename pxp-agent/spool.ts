// The spool: one directory per transaction under `spool-dir`, holding metadata.json and the
// action's stdout, stderr and exitcode. Metadata is replaced atomically (write, fsync, rename),
// and output files are written by the action's own process, so that a crash of the agent at any
// moment leaves every transaction readable.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export type TransactionStatus = 'running' | 'success' | 'failure' | 'unknown';

export interface TransactionMetadata {
  transaction_id: string;
  request_id: string;
  requester: string;
  module: string;
  action: string;
  blocking: boolean;
  notify_outcome: boolean;
  /** `process` actions run as a child process; `instant` ones answer from inside the agent. */
  kind: 'process' | 'instant';
  status: TransactionStatus;
  started_at: string;
  started_ms: number;
  timeout_s?: number;
  /** Process group leader (the execution wrapper) of a process action. */
  pid?: number;
  completed_at?: string;
  completed_ms?: number;
  /** Results of the action, once it ended (process actions: {exitcode, stdout, stderr}). */
  results?: unknown;
  /** Why the action failed without results of its own (start failure, lost process, timeout). */
  error?: string;
  /** Stable code of `error`, when it has one (a PxpErrorCode: stopped, agent-shutdown, action-lost). */
  error_code?: string;
  /** The outcome reached the requester (non-blocking response sent). */
  results_sent: boolean;
}

export interface TransactionFiles {
  dir: string;
  metadata: string;
  stdout: string;
  stderr: string;
  exitcode: string;
  input: string;
}

const METADATA = 'metadata.json';

export class Spool {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  files(transactionId: string): TransactionFiles {
    const dir = join(this.dir, transactionId);
    return {
      dir,
      metadata: join(dir, METADATA),
      stdout: join(dir, 'stdout'),
      stderr: join(dir, 'stderr'),
      exitcode: join(dir, 'exitcode'),
      input: join(dir, 'input'),
    };
  }

  /**
   * Creates a transaction; returns false when one with this id exists already (the directory is
   * created exclusively, so two requests racing for one id cannot both win).
   */
  create(meta: TransactionMetadata): boolean {
    const f = this.files(meta.transaction_id);
    try {
      mkdirSync(f.dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    this.write(meta);
    return true;
  }

  read(transactionId: string): TransactionMetadata | null {
    try {
      return JSON.parse(readFileSync(this.files(transactionId).metadata, 'utf8')) as TransactionMetadata;
    } catch {
      return null;
    }
  }

  write(meta: TransactionMetadata): void {
    const f = this.files(meta.transaction_id);
    const tmp = `${f.metadata}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(meta));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, f.metadata);
  }

  update(transactionId: string, patch: Partial<TransactionMetadata>): TransactionMetadata {
    const current = this.read(transactionId);
    if (!current) throw new Error(`no spooled transaction ${transactionId}`);
    const next = { ...current, ...patch };
    this.write(next);
    return next;
  }

  /** Every transaction that has metadata. */
  list(): TransactionMetadata[] {
    const out: TransactionMetadata[] = [];
    for (const name of readdirSync(this.dir)) {
      const meta = this.read(name);
      if (meta) out.push(meta);
    }
    return out;
  }

  /** Removes ended transactions older than the TTL, and debris without metadata. Returns how many. */
  purge(ttlMs: number, nowMs = Date.now()): number {
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      const f = this.files(name);
      const meta = this.read(name);
      const endedMs = meta ? (meta.status === 'running' ? undefined : meta.completed_ms ?? meta.started_ms) : safeMtimeMs(f.dir);
      if (endedMs !== undefined && nowMs - endedMs > ttlMs) {
        rmSync(f.dir, { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Removes a transaction as if it had never arrived (one that provably never started). */
  forget(transactionId: string): void {
    rmSync(this.files(transactionId).dir, { recursive: true, force: true });
  }

  /**
   * Removes directories without metadata: an agent that died between creating one and writing its
   * metadata never started anything there. Returns their names.
   */
  removeDebris(): string[] {
    const out: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const f = this.files(name);
      if (existsSync(f.metadata)) continue;
      if (existsSync(f.stdout)) continue; // a process may have run: kept for the purge
      rmSync(f.dir, { recursive: true, force: true });
      out.push(name);
    }
    return out;
  }

  exists(transactionId: string): boolean {
    return existsSync(this.files(transactionId).dir);
  }
}

function safeMtimeMs(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}
