// What a PXP module is to the agent: named actions, each with a params schema, either answered
// from inside the agent (`instant`) or run as a process (`process`), which counts towards
// `max-concurrent-actions` and is spooled.
import type { ValidateFunction } from 'ajv';
import type { Logger } from '../../lib/log.ts';
import type { ProcessSpec } from '../process-runner.ts';
import type { TransactionFiles } from '../spool.ts';

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

export interface ProcessAction {
  kind: 'process';
  validate: ValidateFunction;
  /** Downloads, verifies and describes the process; throws a typed error when it cannot start. */
  prepare(params: Record<string, unknown>, ctx: ActionContext & { files: TransactionFiles }): Promise<ProcessSpec>;
}

export type Action = InstantAction | ProcessAction;

export interface PxpModule {
  name: string;
  actions: Record<string, Action>;
}
