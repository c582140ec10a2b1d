// What a PXP module is to the agent: named actions, each with a params schema, either answered
// from inside the agent (`instant`) or run as a process (`process`), which counts towards
// `max-concurrent-actions` and is spooled.
import type { ValidateFunction } from 'ajv';
import type { Logger } from '../../lib/log.ts';
import type { ProcessSpec } from '../process-runner.ts';
import type { TransactionFiles, TransactionMetadata } from '../spool.ts';

export interface ActionContext {
  transactionId: string;
  files: TransactionFiles | null;
  log: Logger;
}

export interface InstantAction {
  kind: 'instant';
  validate: ValidateFunction;
  run(params: Record<string, unknown>, ctx: ActionContext): unknown;
}

/** What a process action's process left behind: its exit code and (capped) output. */
export interface RawProcessResult {
  exitcode: number;
  stdout: string;
  stderr: string;
  timed_out?: boolean;
}

/** How a process action ended, as its module judges it: the transaction's status and results. */
export interface ActionOutcome {
  status: 'success' | 'failure';
  results: unknown;
}

export interface ProcessAction {
  kind: 'process';
  validate: ValidateFunction;
  /**
   * Downloads, verifies and describes the process. Throws a typed error when the request cannot
   * be served (an rpc error), or an `ImmediateOutcome` when the action ends without a process.
   */
  prepare(params: Record<string, unknown>, ctx: ActionContext & { files: TransactionFiles }): Promise<ProcessSpec>;
  /**
   * Turns the ended process into the transaction's outcome (default: `{exitcode, stdout,
   * stderr}`, success when the exit code is 0). Also called for a process that outlived an agent
   * restart, so whatever it needs must come from `files` (the spool), not from memory. Not
   * called for a process killed by its timeout or stopped.
   */
  results?(raw: RawProcessResult, files: TransactionFiles, meta: TransactionMetadata): ActionOutcome;
}

export type Action = InstantAction | ProcessAction;

export interface PxpModule {
  name: string;
  actions: Record<string, Action>;
}

/** The `results` hook of a module's process action, if it has one. */
export type ResultsHookLookup = (module: string, action: string) => ProcessAction['results'] | undefined;

/**
 * Thrown by `prepare` when the action is over before any process starts (the Puppet agent is
 * disabled, say): the transaction ends at once with these results. Not an rpc error: the action
 * ran, and this is what it came to.
 */
export class ImmediateOutcome extends Error {
  constructor(
    readonly outcome: ActionOutcome,
    message = 'the action ended before its process started',
  ) {
    super(message);
    this.name = 'ImmediateOutcome';
  }
}
