// Exit codes and typed errors of the `baton` command. Callers branch on `code`, never on text.
import { BatonError } from '../protocol/errors.ts';

/** What `baton` exits with (documented in the README and in `baton --help`). */
export const ExitCode = {
  /** Every node succeeded (or the command did what it was asked). */
  ok: 0,
  /** Some node failed, errored or was skipped, or the job failed. */
  failure: 1,
  /** Usage, argument or configuration error. */
  usage: 2,
  /** The API answered with an error, or could not be reached. */
  api: 3,
  /** The user detached from a job, or stopped it. */
  detached: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const CliErrorCode = {
  usage: 'cli/usage',
  api: 'cli/api',
  connection: 'cli/connection',
  missingProgram: 'cli/missing-program',
  childFailed: 'cli/child-failed',
  /** The user detached from a followed job (Ctrl-C) while a request was under way. */
  detached: 'cli/detached',
} as const;
export type CliErrorCode = (typeof CliErrorCode)[keyof typeof CliErrorCode];

export class CliError extends BatonError {
  declare readonly code: CliErrorCode;
}

/** A usage error: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(CliErrorCode.usage, message);
}

/** An error answered by the API: its HTTP status and, when it has one, the API's error kind. */
export class ApiError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    readonly kind: string | undefined,
  ) {
    super(CliErrorCode.api, message, { details: { status, ...(kind ? { kind } : {}) } });
  }
}

export const EXIT_CODES_HELP = `
Exit codes:
  0  success: every node succeeded
  1  some node failed, errored or was skipped, or the job failed
  2  usage or argument error
  3  API or connection error (the API's message is printed)
  4  detached from the job, or stopped it (Ctrl-C)`;

/** The exit code for an error that ended a command. */
export function exitCodeFor(err: unknown): ExitCode {
  if (!(err instanceof BatonError)) return ExitCode.failure;
  if (err.code.startsWith('config/') || err.code === CliErrorCode.usage || err.code === CliErrorCode.missingProgram) return ExitCode.usage;
  if (err.code === CliErrorCode.api || err.code === CliErrorCode.connection) return ExitCode.api;
  if (err.code === CliErrorCode.detached) return ExitCode.detached;
  return ExitCode.failure;
}
