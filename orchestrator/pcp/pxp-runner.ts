// Drives one node run over PXP: the non-blocking request, then its outcome by the non-blocking
// response, waited for as an event. `status query` only when the response may have been missed:
// after our broker session reconnected, after the agent's session did (an agent restart may have
// lost the request), when the request's fate is unknown (no reply), on re-attach after a takeover,
// and once at the run's deadline. Speaks only PXP, so Puppet's pxp-agent and Baton's agent are
// driven alike.
import { BrokerErrorCode } from '../../protocol/broker-errors.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { ClientErrorCode, PcpClientError } from '../../protocol/client/broker-uri.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { PxpErrorCode, pxpRequest, PxpMessageType, rpcErrorCode } from '../../protocol/pxp.ts';
import { newMessageId } from '../../protocol/pcp-v2.ts';
import type { AgentTaskResults } from '../engine/results.ts';

export const REQUEST_TIMEOUT_MS = 30_000;
/** Why a watch's signal aborts: nobody holds the watch any more. */
const WATCH_RELEASED = Object.freeze({ released: true });
/** The longest a transaction's end is waited for by the client (setTimeout's limit); runs end by their own deadline. */
const TRANSACTION_WAIT_MAX_MS = 2 ** 31 - 1;

export type RunOutcome =
  | { kind: 'results'; results: AgentTaskResults }
  /** `code`: the agent's stable code of the error (a PxpErrorCode), when it gave one. */
  | { kind: 'agent-error'; description: string; code?: string }
  | { kind: 'not-connected' }
  /** The agent has no record of the transaction: the request never reached it (lost in flight). */
  | { kind: 'lost' }
  | { kind: 'timeout' };

export interface PxpAction {
  module: string;
  action: string;
  params: Record<string, unknown>;
}

export function agentUri(node: string): string {
  return `pcp://${node}/agent`;
}

/**
 * The transaction ids `stopScript` accepts: Baton's engine's, `<dataset epoch: 8 hex>-<job
 * id>-<16 hex of the node>` (Engine.transactionId). Nothing else is ever put into the script.
 */
export const STOPPABLE_TRANSACTION_ID = /^[0-9a-f]{8}-[0-9]+-[0-9a-f]{16}$/;
/** What a run stopped with force reads as (Baton's agent says the same). */
export const STOPPED_BY_REQUEST = 'stopped by request (the job was stopped with force)';
/** Runs stopped by `command run` remembered for their outcome (oldest out). */
export const STOPPED_TRANSACTIONS_REMEMBERED = 10_000;
/** Tenths of a second the stop script waits after SIGTERM before it sends SIGKILL. */
export const STOP_GRACE_TENTHS = 20;

/**
 * A POSIX sh script for Puppet's pxp-agent (its built-in `command run`, through the user's shell)
 * that stops the processes of one non-blocking transaction. pxp-agent runs an action through its
 * `execution_wrapper`, which holds `<spool-dir>/<transaction id>/stdout` open and copies its
 * child's output there; the child leads its own process group. The script finds the wrapper in
 * /proc (its executable is `execution_wrapper`, one of its fds is that file), sends SIGTERM to
 * the wrapper's descendants and to the process groups of its children, then SIGKILL to those left
 * after the grace, and prints `{"stopped": <TERMed>, "killed": <KILLed>}`. The wrapper itself is
 * left to record the exit code, so that pxp-agent reports the run. Linux only (/proc). Throws
 * for an id that does not match STOPPABLE_TRANSACTION_ID; the id is the only value in the
 * script, single-quoted.
 */
export function stopScript(transactionId: string): string {
  if (!STOPPABLE_TRANSACTION_ID.test(transactionId)) throw new RangeError(`not a transaction id of Baton's engine: ${JSON.stringify(transactionId)}`);
  return [
    `t='${transactionId}'`,
    // The wrappers of the transaction.
    'wrappers() {',
    '  for d in /proc/[0-9]*; do',
    '    case "$(readlink "$d/exe" 2>/dev/null)" in */execution_wrapper) ;; *) continue ;; esac',
    '    for f in "$d"/fd/*; do',
    '      case "$(readlink "$f" 2>/dev/null)" in */"$t"/stdout) echo "${d#/proc/}"; break ;; esac',
    '    done',
    '  done',
    '}',
    // Every live process as pid:ppid:pgrp (the fields after the command name, which may hold spaces).
    'table() {',
    '  for s in /proc/[0-9]*/stat; do',
    '    { read -r l < "$s"; } 2>/dev/null || continue',
    '    p=${s#/proc/}; p=${p%/stat}',
    '    set -- ${l##*) }',
    '    [ "$1" = Z ] || printf \'%s:%s:%s \' "$p" "$2" "$3"',
    '  done',
    '}',
    // The processes of the transaction: the wrappers' descendants and their children's groups.
    'members() {',
    '  w=" $(wrappers | tr \'\\n\' \' \') "',
    '  [ "$w" = "  " ] && return',
    '  tab=$(table); m="$w"; lead=" "; grew=1',
    '  while [ -n "$grew" ]; do',
    '    grew=',
    '    for e in $tab; do',
    '      p=${e%%:*}; r=${e#*:}; pp=${r%%:*}',
    '      case "$m" in *" $p "*) continue ;; esac',
    '      case "$m" in *" $pp "*) m="$m$p "; grew=1 ;; esac',
    '      case "$w" in *" $pp "*) lead="$lead$p " ;; esac',
    '    done',
    '  done',
    '  for e in $tab; do',
    '    p=${e%%:*}; pg=${e##*:}',
    '    case "$lead" in *" $pg "*) case "$m" in *" $p "*) ;; *) m="$m$p " ;; esac ;; esac',
    '  done',
    '  for p in $m; do case "$w" in *" $p "*) ;; *) echo "$p" ;; esac; done',
    '}',
    'pids=$(members)',
    'n=0',
    'for p in $pids; do kill -TERM "$p" 2>/dev/null && n=$((n+1)); done',
    'i=0',
    `while [ -n "$pids" ] && [ "$i" -lt ${STOP_GRACE_TENTHS} ]; do`,
    '  sleep 0.1 2>/dev/null || sleep 1',
    '  pids=$(members)',
    '  i=$((i+1))',
    'done',
    'k=0',
    'for p in $pids; do kill -KILL "$p" 2>/dev/null && k=$((k+1)); done',
    `printf '{"stopped":%d,"killed":%d}\\n' "$n" "$k"`,
    '',
  ].join('\n');
}

/** The counts `stopScript` printed, or null when its run did not succeed or printed something else. */
export function stopScriptCounts(r: AgentTaskResults | undefined): { stopped: number; killed: number } | null {
  if (!r || r.exitcode !== 0) return null;
  try {
    const c = JSON.parse(r.stdout ?? '') as { stopped?: unknown; killed?: unknown };
    return Number.isInteger(c.stopped) && Number.isInteger(c.killed) ? { stopped: c.stopped as number, killed: c.killed as number } : null;
  } catch {
    return null;
  }
}

export interface PxpRunnerOptions {
  /** Counts every `status query` sent (the orchestrator's baton_orchestrator_status_queries_total). */
  statusQueries?: { inc(): void };
}

/** The client's wait for one transaction's end, shared by `start` and the `outcome` after it. */
interface Watch {
  /** The ending message, or why the wait ended; never rejects. */
  readonly ends: Promise<EnvelopeV2 | Error>;
  /** Set once `ends` has settled. */
  result: EnvelopeV2 | Error | undefined;
  readonly abort: AbortController;
  /** Calls using it; the wait ends with the last. */
  holds: number;
  /** `start` returned null and left its hold to the `outcome` call that follows. */
  handedOver: boolean;
  /** The request's fate is unknown (no reply): the agent is asked before waiting. */
  askFirst: boolean;
}

/** Why a run waiting for its outcome should ask the agent: pending until the wait takes it. */
interface Wake {
  pending: boolean;
  notify: (() => void) | null;
}

export class PxpRunner {
  /** Runs stopped by `command run` (see `stop`), by transaction id. */
  private readonly stopped = new Set<string>();
  private readonly watches = new Map<string, Watch>();
  /** Runs waiting in `outcome`, by agent URI. */
  private readonly waking = new Map<string, Set<Wake>>();
  private readonly statusQueries: { inc(): void } | undefined;

  constructor(
    private readonly client: PcpClient,
    opts: PxpRunnerOptions = {},
  ) {
    this.statusQueries = opts.statusQueries;
    // Our session is back: a response sent while it was down was refused by the broker.
    client.on('connected', () => {
      for (const wakes of this.waking.values()) for (const w of wakes) fire(w);
    });
    // An agent's session is back (inventory updates only, not the snapshot after our own
    // reconnection): if it restarted, it may have lost the request, or have sent the response
    // while it could not be delivered.
    client.on('inventory', (changes) => {
      for (const c of changes) {
        if (c.change !== 1) continue;
        for (const w of this.waking.get(c.client) ?? []) fire(w);
      }
    });
  }

  /**
   * Sends the request; resolves once the agent accepted it (provisional) or with why it did not.
   * Null promises an `outcome` call for the transaction: the wait for its end begins before the
   * request is sent, so that a response right behind the provisional one is not missed.
   */
  async start(node: string, transactionId: string, action: PxpAction): Promise<RunOutcome | null> {
    const w = this.hold(transactionId);
    let handOver = false;
    try {
      let reply: EnvelopeV2;
      try {
        reply = await this.client.request(pxpRequest(agentUri(node), { transaction_id: transactionId, ...action, notify_outcome: true }, false), REQUEST_TIMEOUT_MS);
      } catch (err) {
        const refused = startRefusal(err);
        if (refused !== undefined) return refused;
        // Lost on the way or no reply in time: whether the agent has it is asked first.
        w.askFirst = true;
        handOver = true;
        return null;
      }
      if (reply.message_type === PxpMessageType.errorMessage) return agentError(reply.data);
      if (reply.message_type === PxpMessageType.nonBlockingResponse) return { kind: 'results', results: (reply.data as { results: AgentTaskResults }).results };
      handOver = true;
      return null; // provisional: running
    } finally {
      if (handOver) w.handedOver = true;
      else this.release(transactionId, w);
    }
  }

  /**
   * The agent's view of a transaction: null when it cannot be asked (not connected), 'unknown'
   * when it never saw it, 'running', or the results.
   */
  async status(node: string, transactionId: string): Promise<null | 'unknown' | 'running' | RunOutcome> {
    this.statusQueries?.inc();
    const reply = await this.blocking(node, 'status', { module: 'status', action: 'query', params: { transaction_id: transactionId } });
    if (reply?.message_type !== PxpMessageType.blockingResponse) return null;
    const r = (reply.data as { results: { status: string; stdout?: string; stderr?: string; exitcode?: number; timed_out?: boolean; error_code?: unknown } }).results;
    if (r.status === 'unknown') return 'unknown';
    if (r.status === 'running') return 'running';
    if (r.exitcode === undefined && r.status === 'failure') {
      // Baton's agent names the code of a failure without results (error_code); pxp-agent gives none.
      const code = typeof r.error_code === 'string' ? r.error_code : undefined;
      return { kind: 'agent-error', description: r.stderr?.trim() || 'the action failed on the agent', ...(code !== undefined ? { code } : {}) };
    }
    return this.asStopped(transactionId, { kind: 'results', results: { exitcode: r.exitcode ?? null, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.timed_out ? { timed_out: true } : {}) } });
  }

  /**
   * Stops a running action: Baton's agent by `status stop`; an agent that has no such action
   * (Puppet's pxp-agent answers rpc_error_message) by its `command run` with `stopScript`. True
   * when the run was stopped; its outcome, when it comes, then reads as stopped by request.
   */
  async stop(node: string, transactionId: string): Promise<boolean> {
    const reply = await this.blocking(node, 'stop', { module: 'status', action: 'stop', params: { transaction_id: transactionId } });
    if (reply?.message_type === PxpMessageType.blockingResponse) {
      return (reply.data as { results?: { stopped?: boolean } }).results?.stopped === true;
    }
    if (reply?.message_type !== PxpMessageType.errorMessage || !STOPPABLE_TRANSACTION_ID.test(transactionId)) return false;
    // Marked first: the killed run's response may arrive before the script's own.
    this.stopped.add(transactionId);
    if (this.stopped.size > STOPPED_TRANSACTIONS_REMEMBERED) this.stopped.delete(this.stopped.values().next().value!);
    const ran = await this.blocking(node, 'stop', { module: 'command', action: 'run', params: { command: stopScript(transactionId) } });
    const counts = ran?.message_type === PxpMessageType.blockingResponse ? stopScriptCounts((ran.data as { results?: AgentTaskResults }).results) : null;
    if (counts && counts.stopped + counts.killed > 0) return true;
    this.stopped.delete(transactionId);
    return false;
  }

  /** A blocking request of our own (transaction `<kind>-<id>`); null when it got no reply. */
  private async blocking(node: string, kind: string, data: Omit<PxpAction, 'params'> & { params: object }): Promise<EnvelopeV2 | null> {
    try {
      return await this.client.request(pxpRequest(agentUri(node), { transaction_id: `${kind}-${newMessageId()}`, ...data }, true), REQUEST_TIMEOUT_MS);
    } catch {
      return null;
    }
  }

  /** A run this runner stopped that ended with a non-zero exit reads as stopped, as Baton's agent reports it. */
  private asStopped(transactionId: string, o: RunOutcome): RunOutcome {
    if (o.kind !== 'results' || !this.stopped.has(transactionId) || o.results.exitcode === 0) return o;
    return { kind: 'agent-error', description: STOPPED_BY_REQUEST, code: PxpErrorCode.stopped };
  }

  /** Live output of a command run from byte offsets (Baton's agent); null when it cannot be asked. */
  async commandOutput(node: string, transactionId: string, offsets: { stdout: number; stderr: number }): Promise<{ status: string; stdout: Buffer; stderr: Buffer; stdout_offset: number; stderr_offset: number } | null> {
    const reply = await this.blocking(node, 'output', { module: 'command', action: 'output', params: { transaction_id: transactionId, stdout_offset: offsets.stdout, stderr_offset: offsets.stderr } });
    if (reply?.message_type !== PxpMessageType.blockingResponse) return null;
    try {
      const r = (reply.data as { results: { status: string; stdout: string; stderr: string; stdout_offset: number; stderr_offset: number } }).results;
      return { status: r.status, stdout: Buffer.from(r.stdout, 'base64'), stderr: Buffer.from(r.stderr, 'base64'), stdout_offset: r.stdout_offset, stderr_offset: r.stderr_offset };
    } catch {
      return null; // an answer without the output fields
    }
  }

  /**
   * Re-attaches to a run after a takeover (or a restart): asks the agent once, and when it is still
   * running (or cannot be asked now), keeps the wait for its end for the `outcome` call that
   * follows (begun before the question, so that an end right behind the answer is not missed).
   */
  async reattach(node: string, transactionId: string): Promise<null | 'unknown' | 'running' | RunOutcome> {
    const w = this.hold(transactionId);
    let st: Awaited<ReturnType<PxpRunner['status']>> = null;
    try {
      st = await this.status(node, transactionId);
      return st;
    } finally {
      if (st === 'running' || st === null) w.handedOver = true;
      else this.release(transactionId, w);
    }
  }

  /**
   * Waits for the outcome until `deadlineMs` (epoch ms) or `signal`: the non-blocking response as
   * an event; the agent is asked by status query only when the response may have been missed
   * (see the file's header), and once more at the deadline. `lost` when the agent answers that it
   * never saw the transaction; `timeout` at the deadline or on `signal`.
   */
  async outcome(node: string, transactionId: string, deadlineMs: number, signal?: AbortSignal): Promise<RunOutcome> {
    const w = this.hold(transactionId);
    if (w.handedOver) {
      w.handedOver = false;
      w.holds--; // this call takes over the hold of the start (or reattach) before it
    }
    const wake: Wake = { pending: w.askFirst, notify: null };
    w.askFirst = false;
    const uri = agentUri(node);
    let wakes = this.waking.get(uri);
    if (!wakes) this.waking.set(uri, (wakes = new Set()));
    wakes.add(wake);
    try {
      for (;;) {
        if (w.result !== undefined && !(w.result instanceof Error)) return this.ended(transactionId, w.result);
        if (signal?.aborted) return { kind: 'timeout' };
        if (w.result instanceof PcpClientError && w.result.code === ClientErrorCode.stopped) throw w.result;
        const left = deadlineMs - Date.now();
        if (left <= 0 || w.result !== undefined) {
          // The deadline (or the client gave up the wait): one last ask before timing out.
          return fromStatus(await this.status(node, transactionId)) ?? { kind: 'timeout' };
        }
        if (wake.pending) {
          wake.pending = false;
          const o = fromStatus(await this.status(node, transactionId));
          if (o) return o;
          continue;
        }
        await this.next(w, wake, left, signal);
      }
    } finally {
      wakes.delete(wake);
      if (wakes.size === 0) this.waking.delete(uri);
      this.release(transactionId, w);
    }
  }

  /** Resolves at the first of: the transaction's end, a wake, `leftMs`, `signal`. */
  private next(w: Watch, wake: Wake, leftMs: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        wake.notify = null;
        resolve();
      };
      const timer = setTimeout(done, Math.min(leftMs, TRANSACTION_WAIT_MAX_MS));
      signal?.addEventListener('abort', done, { once: true });
      wake.notify = done;
      void w.ends.then(done);
    });
  }

  private ended(transactionId: string, env: EnvelopeV2): RunOutcome {
    if (env.message_type === PxpMessageType.errorMessage) return agentError(env.data);
    return this.asStopped(transactionId, { kind: 'results', results: (env.data as { results: AgentTaskResults }).results });
  }

  /** The wait for a transaction's end, begun (by the client) on first use. */
  private hold(transactionId: string): Watch {
    let w = this.watches.get(transactionId);
    if (!w) {
      const abort = new AbortController();
      const watch: Watch = {
        ends: this.client.expectTransaction(transactionId, TRANSACTION_WAIT_MAX_MS, abort.signal).then(
          (env) => (watch.result = env),
          (err: unknown) => (watch.result = err instanceof Error ? err : new Error(String(err))),
        ),
        result: undefined,
        abort,
        holds: 0,
        handedOver: false,
        askFirst: false,
      };
      w = watch;
      this.watches.set(transactionId, w);
    }
    w.holds++;
    return w;
  }

  private release(transactionId: string, w: Watch): void {
    if (--w.holds > 0) return;
    w.abort.abort(WATCH_RELEASED); // a reason of our own: no DOMException (and its stack) per run
    if (this.watches.get(transactionId) === w) this.watches.delete(transactionId);
  }
}

function fire(w: Wake): void {
  w.pending = true;
  w.notify?.();
}

/** A status answer as the end of the wait: an outcome, `lost` for a transaction the agent never saw; undefined while it runs or cannot be asked. */
function fromStatus(st: null | 'unknown' | 'running' | RunOutcome): RunOutcome | undefined {
  if (st === null || st === 'running') return undefined;
  if (st === 'unknown') return { kind: 'lost' };
  return st;
}

/**
 * What a failed `request()` of a run's start means, by the client's and the broker's codes (never
 * the broker's text); undefined when the request may have reached the agent (the wait finds out).
 */
export function startRefusal(err: unknown): RunOutcome | undefined {
  if (!(err instanceof PcpClientError)) return undefined;
  // The broker has no session of the target (or dropped it as a slow consumer): nothing was delivered.
  if (err.brokerCode === BrokerErrorCode.targetNotConnected || err.brokerCode === BrokerErrorCode.targetSlowConsumer) return { kind: 'not-connected' };
  if (err.brokerCode === BrokerErrorCode.unauthorized || err.code === ClientErrorCode.unauthorized) {
    return { kind: 'agent-error', description: 'the broker refused the request (unauthorized)' };
  }
  // Our own session was down (the request never left) or went down before the reply: sending the
  // same transaction again once connected is safe, since the agent de-duplicates by id.
  if (err.code === ClientErrorCode.notConnected) return { kind: 'not-connected' };
  return undefined;
}

/** An rpc_error_message's data as an outcome: its description, and its code when it has one. */
function agentError(data: unknown): RunOutcome {
  const code = rpcErrorCode(data);
  return { kind: 'agent-error', description: String((data as { description?: unknown } | null)?.description), ...(code !== undefined ? { code } : {}) };
}
