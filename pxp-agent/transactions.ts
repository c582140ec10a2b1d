// Spooled transactions while they run and after: process actions started through the wrapper,
// timeouts that kill the whole process group, re-attachment to processes that outlived an agent
// restart, and the answers of `status query`.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { appendFileSync, existsSync } from 'node:fs';
import type { Logger } from '../lib/log.ts';
import { PxpErrorCode } from '../protocol/pxp.ts';
import { KILL_GRACE_MS, MAX_RESULT_OUTPUT_BYTES, REATTACH_POLL_MS } from './defaults.ts';
import { findWrapper, isAlive, nothingRan, isWrapperOf, readCapped, readExitcode, signalGroup, startProcess, waitGroupGone, type ProcessSpec } from './process-runner.ts';
import type { ResultsHookLookup } from './modules/types.ts';
import type { Spool, TransactionMetadata, TransactionStatus } from './spool.ts';

/** Exit code reported for a process killed by its timeout (as timeout(1) does). */
export const TIMEOUT_EXIT_CODE = 124;

export interface Outcome {
  status: Exclude<TransactionStatus, 'running' | 'unknown'>;
  results?: unknown;
  error?: string;
  /** Stable code of `error` (a PxpErrorCode), sent beside it. */
  code?: string;
}

/** Why a running action is being stopped: the error it ends with, and that error's code. */
interface StopReason {
  reason: string;
  code: PxpErrorCode;
}

interface Running {
  pid: number;
  child: ChildProcess | null;
  timer: NodeJS.Timeout | null;
  poll: NodeJS.Timeout | null;
  timedOut: boolean;
  stopping: StopReason | null;
  ending?: boolean;
}

export interface TransactionEvents {
  completed: [meta: TransactionMetadata];
}

export class Transactions extends EventEmitter<TransactionEvents> {
  private readonly running = new Map<string, Running>();
  /** Process actions accepted but not started yet (downloading, verifying). */
  private readonly reserved = new Set<string>();
  /** Stops asked for while an action was still being prepared: it never starts. */
  private readonly stopBeforeStart = new Map<string, StopReason>();

  /** `resultsHook` finds a module's own `results` hook for an ended process (modules/types.ts). */
  constructor(
    readonly spool: Spool,
    private readonly log: Logger,
    private readonly resultsHook: ResultsHookLookup = () => undefined,
  ) {
    super();
  }

  /** Process actions accepted and not ended: what `max-concurrent-actions` limits. */
  get runningCount(): number {
    return this.running.size + this.reserved.size;
  }

  /** Counts a process action from the moment it is accepted, before its files are downloaded. */
  reserve(transactionId: string): void {
    this.reserved.add(transactionId);
  }

  isRunning(transactionId: string): boolean {
    return this.running.has(transactionId);
  }

  /** Starts a process action for a spooled transaction. */
  start(meta: TransactionMetadata, spec: ProcessSpec): void {
    const files = this.spool.files(meta.transaction_id);
    this.reserved.delete(meta.transaction_id);
    const stopped = this.stopBeforeStart.get(meta.transaction_id);
    if (stopped !== undefined) {
      this.stopBeforeStart.delete(meta.transaction_id);
      this.finish(meta.transaction_id, { status: 'failure', error: stopped.reason, code: stopped.code });
      return;
    }
    const child = startProcess(spec, files);
    const entry: Running = { pid: child.pid ?? -1, child, timer: null, poll: null, timedOut: false, stopping: null };
    if (child.pid === undefined) {
      child.once('error', (err) => this.finish(meta.transaction_id, { status: 'failure', error: `cannot start the action: ${err.message}` }));
      return;
    }
    this.running.set(meta.transaction_id, entry);
    this.spool.update(meta.transaction_id, { pid: child.pid, ...(spec.timeoutS ? { timeout_s: spec.timeoutS } : {}) });
    child.once('exit', () => this.ended(meta.transaction_id));
    if (spec.timeoutS) this.armTimeout(meta.transaction_id, entry, spec.timeoutS * 1000);
  }

  /** After an agent restart: settles every transaction the spool still shows as running. */
  reattach(): void {
    for (const name of this.spool.removeDebris()) this.log.info({ transaction_id: name }, 'removed a transaction the agent died creating (it never started)');
    for (const meta of this.spool.list()) {
      if (meta.status !== 'running' || this.running.has(meta.transaction_id)) continue;
      const files = this.spool.files(meta.transaction_id);
      if (meta.kind === 'process' && meta.pid === undefined && !existsSync(files.stdout)) {
        // Accepted, but the agent died before it opened the output files, which it does just
        // before it starts the process: nothing ran. Forgotten, so that the requester's status
        // query says unknown and the same transaction can be sent again (still at most once).
        this.spool.forget(meta.transaction_id);
        this.log.info({ transaction_id: meta.transaction_id }, 'an action the agent accepted but never started is forgotten, so that it can be sent again');
        continue;
      }
      if (meta.kind === 'process' && meta.pid === undefined && readExitcode(files) === null) {
        // The agent died between opening the output files and recording the pid: either the
        // process was never started, or it runs (or ran) unrecorded. Its wrapper, found by its
        // command line, settles which; with none and no exit code, nothing ran.
        const pid = findWrapper(files);
        if (pid === null && nothingRan(files)) {
          this.spool.forget(meta.transaction_id);
          this.log.info({ transaction_id: meta.transaction_id }, 'an action whose process never started is forgotten, so that it can be sent again');
          continue;
        }
        if (pid !== null) {
          this.spool.update(meta.transaction_id, { pid });
          meta.pid = pid;
        }
      }
      if (meta.kind === 'process' && readExitcode(files) !== null) {
        this.finish(meta.transaction_id, this.processOutcome(meta.transaction_id, false));
      } else if (meta.kind === 'process' && meta.pid !== undefined && isWrapperOf(meta.pid, files)) {
        this.log.info({ transaction_id: meta.transaction_id, pid: meta.pid }, 're-attached to an action that outlived the agent');
        const entry: Running = { pid: meta.pid, child: null, timer: null, poll: null, timedOut: false, stopping: null };
        this.running.set(meta.transaction_id, entry);
        entry.poll = setInterval(() => {
          if (readExitcode(files) !== null || !isAlive(entry.pid)) this.ended(meta.transaction_id);
        }, REATTACH_POLL_MS);
        if (meta.timeout_s) this.armTimeout(meta.transaction_id, entry, meta.started_ms + meta.timeout_s * 1000 - Date.now());
      } else {
        this.finish(meta.transaction_id, {
          status: 'failure',
          error: meta.kind === 'process'
            ? 'the action\'s process ended while the agent was not running, without recording an exit code (it died with the agent)'
            : 'the agent stopped before the action completed',
          code: PxpErrorCode.actionLost,
        });
      }
    }
  }

  /**
   * Stops every running action (agent shutdown): the process groups get SIGTERM, then SIGKILL;
   * each ends with `reason` and code agent-shutdown.
   */
  async stopAll(reason: string): Promise<void> {
    const allEnded = new Promise<void>((resolve) => {
      const check = () => {
        if (this.running.size > 0) return;
        this.off('completed', check);
        resolve();
      };
      this.on('completed', check);
      check();
    });
    for (const [tx, entry] of [...this.running]) {
      entry.stopping ??= { reason, code: PxpErrorCode.agentShutdown }; // a forced stop under way stays one
      signalGroup(entry.pid, 'SIGTERM');
      setTimeout(() => signalGroup(entry.pid, 'SIGKILL'), KILL_GRACE_MS).unref();
      if (!entry.child) this.ended(tx); // not our child: nothing will report its exit
    }
    await allEnded;
  }

  /** Stops one running process action (a forced job stop; code stopped); false when it is not running here. */
  stop(transactionId: string, reason: string): boolean {
    if (this.reserved.has(transactionId)) {
      this.stopBeforeStart.set(transactionId, { reason, code: PxpErrorCode.stopped });
      return true;
    }
    const entry = this.running.get(transactionId);
    if (!entry || entry.stopping !== null) return false;
    entry.stopping = { reason, code: PxpErrorCode.stopped };
    signalGroup(entry.pid, 'SIGTERM');
    setTimeout(() => signalGroup(entry.pid, 'SIGKILL'), KILL_GRACE_MS).unref();
    if (!entry.child) this.ended(transactionId);
    return true;
  }

  /** Records the outcome and tells listeners. */
  finish(transactionId: string, outcome: Outcome): TransactionMetadata {
    this.reserved.delete(transactionId);
    this.stopBeforeStart.delete(transactionId);
    const entry = this.running.get(transactionId);
    if (entry) {
      if (entry.timer) clearTimeout(entry.timer);
      if (entry.poll) clearInterval(entry.poll);
      this.running.delete(transactionId);
    }
    const now = Date.now();
    const meta = this.spool.update(transactionId, {
      status: outcome.status,
      ...(outcome.results !== undefined ? { results: outcome.results } : {}),
      ...(outcome.error !== undefined ? { error: outcome.error } : {}),
      ...(outcome.code !== undefined ? { error_code: outcome.code } : {}),
      completed_at: new Date(now).toISOString(),
      completed_ms: now,
    });
    if (outcome.error) {
      try {
        appendFileSync(this.spool.files(transactionId).stderr, `${outcome.error}\n`, { mode: 0o600 });
      } catch {
        // the spool directory is gone; the metadata still says why
      }
    }
    this.emit('completed', meta);
    return meta;
  }

  /**
   * `status query` results, as Puppet's pxp-agent gives them; a failure without results of its
   * own also carries the code of its error (`error_code`), when it has one.
   */
  status(transactionId: string): Record<string, unknown> {
    const meta = this.spool.read(transactionId);
    if (!meta) return { transaction_id: transactionId, status: 'unknown' };
    if (meta.status === 'running') return { transaction_id: transactionId, status: 'running' };
    const files = this.spool.files(transactionId);
    const errorCode = meta.results === undefined && meta.error_code !== undefined ? { error_code: meta.error_code } : {};
    if (meta.kind === 'process' && this.resultsHook(meta.module, meta.action)) {
      // Like Puppet's pxp-agent for its external modules: stdout is the results document.
      const results = meta.results as { exitcode?: number; timed_out?: boolean } | undefined;
      return {
        transaction_id: transactionId,
        status: meta.status,
        stdout: results === undefined ? '' : JSON.stringify(results),
        stderr: readCapped(files.stderr, MAX_RESULT_OUTPUT_BYTES).text,
        ...(typeof results?.exitcode === 'number' ? { exitcode: results.exitcode } : {}),
        ...(results?.timed_out ? { timed_out: true } : {}),
        ...errorCode,
      };
    }
    if (meta.kind === 'process') {
      const results = meta.results as { exitcode?: number; stdout?: string; stderr?: string; timed_out?: boolean } | undefined;
      return {
        transaction_id: transactionId,
        status: meta.status,
        stdout: results?.stdout ?? readCapped(files.stdout, MAX_RESULT_OUTPUT_BYTES).text,
        stderr: results?.stderr ?? readCapped(files.stderr, MAX_RESULT_OUTPUT_BYTES).text,
        ...(results?.exitcode !== undefined ? { exitcode: results.exitcode } : {}),
        ...(results?.timed_out ? { timed_out: true } : {}),
        ...errorCode,
      };
    }
    return {
      transaction_id: transactionId,
      status: meta.status,
      stdout: meta.results === undefined ? '' : JSON.stringify(meta.results),
      stderr: meta.error ?? '',
      exitcode: meta.status === 'success' ? 0 : 1,
      ...errorCode,
    };
  }

  private armTimeout(transactionId: string, entry: Running, inMs: number): void {
    entry.timer = setTimeout(() => {
      entry.timedOut = true;
      this.log.warn({ transaction_id: transactionId, pid: entry.pid }, 'action exceeded its timeout; killing its process group');
      signalGroup(entry.pid, 'SIGTERM');
      setTimeout(() => signalGroup(entry.pid, 'SIGKILL'), KILL_GRACE_MS).unref();
      if (!entry.child) this.ended(transactionId);
    }, Math.max(0, inMs));
  }

  /** The wrapper process ended (or was found gone). */
  private ended(transactionId: string): void {
    const entry = this.running.get(transactionId);
    if (!entry || entry.ending) return;
    entry.ending = true;
    if (entry.stopping === null && !entry.timedOut) {
      this.finish(transactionId, this.processOutcome(transactionId, false));
      return;
    }
    // Killed (timeout or agent shutdown): whatever the task left in its group goes too, and the
    // outcome is reported only once nothing of it runs any more.
    signalGroup(entry.pid, 'SIGKILL');
    void waitGroupGone(entry.pid, KILL_GRACE_MS).then((gone) => {
      if (!gone) this.log.warn({ transaction_id: transactionId, pgid: entry.pid }, 'processes of the group survived SIGKILL');
      if (entry.stopping !== null) this.finish(transactionId, { status: 'failure', error: entry.stopping.reason, code: entry.stopping.code });
      else this.finish(transactionId, this.processOutcome(transactionId, true));
    });
  }

  private processOutcome(transactionId: string, timedOut: boolean): Outcome {
    const meta = this.spool.read(transactionId);
    const files = this.spool.files(transactionId);
    const out = readCapped(files.stdout, MAX_RESULT_OUTPUT_BYTES);
    const err = readCapped(files.stderr, MAX_RESULT_OUTPUT_BYTES);
    let stderr = err.text;
    if (out.truncated) stderr += `\nbaton-agent: stdout was ${out.bytes} bytes; only the first ${MAX_RESULT_OUTPUT_BYTES} are in the results\n`;
    if (err.truncated) stderr += `\nbaton-agent: stderr was ${err.bytes} bytes; only the first ${MAX_RESULT_OUTPUT_BYTES} are in the results\n`;
    if (timedOut) {
      stderr += `${stderr.endsWith('\n') || stderr === '' ? '' : '\n'}baton-agent: the action exceeded its timeout of ${meta?.timeout_s ?? '?'} s; its process group was killed\n`;
      return { status: 'failure', results: { exitcode: TIMEOUT_EXIT_CODE, stdout: out.text, stderr, timed_out: true } };
    }
    const code = readExitcode(files);
    if (code === null) {
      return { status: 'failure', error: 'the action\'s process was killed before it could record an exit code', code: PxpErrorCode.actionLost };
    }
    const raw = { exitcode: code, stdout: out.text, stderr };
    const hook = meta ? this.resultsHook(meta.module, meta.action) : undefined;
    if (!hook || !meta) return { status: code === 0 ? 'success' : 'failure', results: raw };
    try {
      return hook(raw, files, meta);
    } catch (err) {
      this.log.error({ transaction_id: transactionId, err: (err as Error).message }, 'the module could not build the results of its action');
      return { status: 'failure', error: `the action ended (exit code ${code}) but its results could not be built: ${(err as Error).message}` };
    }
  }
}
