// PXP requests → module actions: validation, at-most-once execution per transaction id,
// `max-concurrent-actions`, and every reply (provisional, blocking, non-blocking, rpc errors).
import type { Logger } from '../lib/log.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH, exceedsValueDepth } from '../protocol/json-depth.ts';
import { errorMessage } from '../protocol/pcp-error.ts';
import type { EnvelopeV2 } from '../protocol/pcp-v2.ts';
import {
  blockingResponse,
  decodePxpRequest,
  nonBlockingResponse,
  provisionalResponse,
  PUPPET_RUN_MODULE_NAMES,
  rpcError,
  type PxpRequest,
} from '../protocol/pxp.ts';
import { describeErrors } from '../protocol/validate.ts';
import { BLOCKING_TRANSACTIONS_REMEMBERED } from './defaults.ts';
import { PUPPET_MODULE } from './modules/puppet.ts';
import { ImmediateOutcome, type Action, type ProcessAction, type PxpModule } from './modules/types.ts';
import type { Spool, TransactionMetadata } from './spool.ts';
import type { Transactions } from './transactions.ts';

type Replyable = Pick<PxpRequest, 'id' | 'sender' | 'transactionId'>;

export const STATUS_MODULE = 'status';

/**
 * Other names a module answers to: Puppet runs are asked for as `pxp-module-puppet` (the name
 * Puppet's own module registers under, which controllers use) as well as `puppet`.
 */
export const MODULE_ALIASES: Readonly<Record<string, readonly string[]>> = {
  [PUPPET_MODULE]: PUPPET_RUN_MODULE_NAMES.filter((n) => n !== PUPPET_MODULE),
};

export interface DispatcherOptions {
  modules: PxpModule[];
  transactions: Transactions;
  /** Sends to the broker; false when there is no connection. */
  send: (env: EnvelopeV2) => boolean;
  maxConcurrentActions: number;
  /** Deepest nesting of a request, envelope and data together (`max-message-depth`); default DEFAULT_MAX_MESSAGE_DEPTH. */
  maxMessageDepth?: number;
  log: Logger;
}

/** Stable code in the warn log line of a request whose handling threw unexpectedly (the agent goes on). */
export const AGENT_HANDLER_FAILED = 'agent/handler-failed';

export class Dispatcher {
  private readonly modules = new Map<string, PxpModule>();
  private readonly spool: Spool;
  private readonly transactions: Transactions;
  /** Blocking instant actions are not spooled; their ids are remembered here (bounded, oldest out). */
  private readonly blockingSeen = new Map<string, Promise<unknown>>();
  /** Repeated requests waiting for a running transaction to end. */
  private readonly waiting = new Map<string, PxpRequest[]>();

  constructor(private readonly opts: DispatcherOptions) {
    for (const m of opts.modules) {
      this.modules.set(m.name, m);
      for (const alias of MODULE_ALIASES[m.name] ?? []) this.modules.set(alias, m);
    }
    this.transactions = opts.transactions;
    this.spool = opts.transactions.spool;
    this.transactions.on('completed', (meta) => this.onCompleted(meta));
  }

  /**
   * Handles one PXP request envelope. Never rejects: an unexpected exception is contained to this
   * request (logged at warn as AGENT_HANDLER_FAILED and answered with an rpc_error_message, or a
   * PCP error_message when the request could not be read).
   */
  async handle(env: EnvelopeV2): Promise<void> {
    let req: PxpRequest | undefined;
    try {
      try {
        req = decodePxpRequest(env, this.opts.maxMessageDepth ?? DEFAULT_MAX_MESSAGE_DEPTH);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        // Data that is not a PXP request at all gets PCP's own error message.
        this.opts.send(errorMessage(env.sender ?? '', err.message, env.id, null));
        return;
      }
      await this.handleRequest(req);
    } catch (err) {
      this.contain(env, req, err);
    }
  }

  private contain(env: EnvelopeV2, req: PxpRequest | undefined, err: unknown): void {
    try {
      const message = err instanceof Error ? err.message : String(err);
      this.opts.log.warn({ code: AGENT_HANDLER_FAILED, id: env.id, transaction_id: req?.transactionId, err: message }, 'unexpected error while handling a request');
      const description = `the agent could not handle this request (${AGENT_HANDLER_FAILED}): ${message}`;
      if (req) this.opts.send(rpcError(req, description));
      else this.opts.send(errorMessage(env.sender ?? '', description, env.id, null));
    } catch {
      // Nothing more can be done for this request; the agent goes on.
    }
  }

  private async handleRequest(req: PxpRequest): Promise<void> {
    const log = this.opts.log.child({ transaction_id: req.transactionId, module: req.module, action: req.action });
    const mod = this.modules.get(req.module);
    if (!mod) return this.fail(req, `unknown module '${req.module}'; this agent has: ${[...this.modules.keys()].sort().join(', ')}`);
    const action = mod.actions[req.action];
    if (!action) return this.fail(req, `unknown action '${req.action}' of module '${req.module}'; it has: ${Object.keys(mod.actions).join(', ')}`);
    if (!action.validate(req.params)) {
      return this.fail(req, `invalid params for ${req.module} ${req.action}: ${describeErrors(action.validate.errors, 'params')}`);
    }
    if (req.module === STATUS_MODULE && action.kind === 'instant') {
      // A read of the spool: never spooled or remembered itself, so every query sees the present.
      if (!req.blocking) this.opts.send(provisionalResponse(req));
      if (req.blocking || req.notifyOutcome) this.reply(req, await action.run(req.params, { transactionId: req.transactionId, files: null, log }));
      return;
    }
    if (req.blocking && action.kind === 'instant' && !this.spool.exists(req.transactionId)) {
      return this.blockingInstant(req, action, log);
    }
    const existing = this.spool.read(req.transactionId);
    if (existing) return this.repeated(req, existing);
    if (action.kind === 'process' && this.transactions.runningCount >= this.opts.maxConcurrentActions) {
      return this.fail(req, `the agent is busy: ${this.transactions.runningCount} actions are running (max-concurrent-actions is ${this.opts.maxConcurrentActions}); try again later`);
    }
    const now = Date.now();
    const meta: TransactionMetadata = {
      transaction_id: req.transactionId,
      request_id: req.id,
      requester: req.sender,
      module: req.module,
      action: req.action,
      blocking: req.blocking,
      notify_outcome: req.notifyOutcome,
      kind: action.kind,
      status: 'running',
      started_at: new Date(now).toISOString(),
      started_ms: now,
      results_sent: false,
    };
    if (!this.spool.create(meta)) return this.repeated(req, this.spool.read(req.transactionId)!);
    if (action.kind === 'process') this.transactions.reserve(req.transactionId);
    if (!req.blocking) this.opts.send(provisionalResponse(req));
    const ctx = { transactionId: req.transactionId, files: this.spool.files(req.transactionId), log };
    if (action.kind === 'instant') {
      try {
        this.transactions.finish(req.transactionId, { status: 'success', results: await action.run(req.params, ctx) });
      } catch (err) {
        this.transactions.finish(req.transactionId, { status: 'failure', error: (err as Error).message });
      }
      return;
    }
    try {
      const spec = await action.prepare(req.params, ctx);
      this.transactions.start(meta, spec);
      log.info({ pid: this.spool.read(req.transactionId)?.pid }, 'action started');
    } catch (err) {
      if (err instanceof ImmediateOutcome) {
        log.info({ status: err.outcome.status }, 'action ended before its process started');
        this.transactions.finish(req.transactionId, { status: err.outcome.status, results: err.outcome.results });
        return;
      }
      log.warn({ err: (err as Error).message }, 'action could not start');
      this.transactions.finish(req.transactionId, { status: 'failure', error: (err as Error).message });
    }
  }

  /** A module's process action (for the `results` hooks of Transactions). */
  processAction(module: string, action: string): ProcessAction | undefined {
    const a = this.modules.get(module)?.actions[action];
    return a?.kind === 'process' ? a : undefined;
  }

  /** Sends outcomes that could not be sent while disconnected (or before an agent restart). */
  flushUnsent(): void {
    for (const meta of this.spool.list()) {
      if (meta.status !== 'running' && meta.notify_outcome && !meta.results_sent) this.notify(meta);
    }
  }

  private async blockingInstant(req: PxpRequest, action: Action & { kind: 'instant' }, log: Logger): Promise<void> {
    let run = this.blockingSeen.get(req.transactionId);
    if (!run) {
      run = Promise.resolve().then(() => action.run(req.params, { transactionId: req.transactionId, files: null, log }));
      this.blockingSeen.set(req.transactionId, run);
      if (this.blockingSeen.size > BLOCKING_TRANSACTIONS_REMEMBERED) {
        this.blockingSeen.delete(this.blockingSeen.keys().next().value!);
      }
    }
    try {
      this.reply(req, await run);
    } catch (err) {
      this.fail(req, (err as Error).message);
    }
  }

  /** A transaction id seen before: never run again; answer from what is known. */
  private repeated(req: PxpRequest, meta: TransactionMetadata): void {
    this.opts.log.info({ transaction_id: req.transactionId, status: meta.status }, 'repeated transaction id; not running it again');
    if (!req.blocking) this.opts.send(provisionalResponse(req));
    if (meta.status === 'running') {
      if (req.blocking || req.notifyOutcome) this.waiting.set(req.transactionId, [...(this.waiting.get(req.transactionId) ?? []), req]);
      return;
    }
    if (req.blocking || req.notifyOutcome) this.outcomeTo(req, meta);
  }

  private onCompleted(meta: TransactionMetadata): void {
    this.opts.log.info({ transaction_id: meta.transaction_id, status: meta.status }, 'action ended');
    this.notify(meta);
    const waiters = this.waiting.get(meta.transaction_id);
    this.waiting.delete(meta.transaction_id);
    for (const req of waiters ?? []) this.outcomeTo(req, meta);
  }

  /** The outcome to the original requester. */
  private notify(meta: TransactionMetadata): void {
    if (!meta.blocking && !meta.notify_outcome) return;
    const req: PxpRequest = {
      id: meta.request_id,
      sender: meta.requester,
      blocking: meta.blocking,
      transactionId: meta.transaction_id,
      module: meta.module,
      action: meta.action,
      params: {},
      notifyOutcome: meta.notify_outcome,
    };
    if (this.outcomeTo(req, meta) && !meta.blocking) this.spool.update(meta.transaction_id, { results_sent: true });
  }

  private outcomeTo(req: PxpRequest, meta: TransactionMetadata): boolean {
    if (meta.results === undefined) return this.opts.send(rpcError(req, meta.error ?? 'the action failed', meta.error_code));
    return this.reply(req, meta.results);
  }

  /**
   * Results nested deeper than any receiver reads (e.g. a task printing deep JSON) would be refused
   * by the broker, and the requester would never hear of the run: they are answered as an error.
   */
  private reply(req: PxpRequest, results: unknown): boolean {
    const maxDepth = this.opts.maxMessageDepth ?? DEFAULT_MAX_MESSAGE_DEPTH;
    // The envelope and its data are two levels above the results.
    if (exceedsValueDepth(results, maxDepth - 2)) {
      return this.opts.send(rpcError(req, `the results nest deeper than max-message-depth (${maxDepth} levels with the envelope); they were not sent`));
    }
    return this.opts.send(req.blocking ? blockingResponse(req, results) : nonBlockingResponse(req, results));
  }

  private fail(req: Replyable, description: string): void {
    this.opts.log.info({ transaction_id: req.transactionId, description }, 'request refused');
    this.opts.send(rpcError(req, description));
  }
}
