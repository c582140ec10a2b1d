// The task specification's result rules, applied in one place to what any agent returns
// (Baton's or Puppet's pxp-agent: {exitcode, stdout, stderr}). Pure.
import { PxpErrorCode } from '../../protocol/pxp.ts';

export interface AgentTaskResults {
  exitcode?: number | null;
  stdout?: string;
  stderr?: string;
  timed_out?: boolean;
}

export interface NodeOutcome {
  state: 'finished' | 'failed' | 'errored';
  result: Record<string, unknown>;
  details: Record<string, unknown>;
}

export const TaskErrorKind = {
  taskError: 'puppetlabs.tasks/task-error',
  timeout: 'puppetlabs.tasks/task-timeout',
  agentError: 'puppetlabs.tasks/agent-error',
  notConnected: 'puppetlabs.orchestrator/not-connected',
} as const;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Stdout that parses as a JSON object is the result, else {_output}; failures get an _error. */
export function taskOutcome(r: AgentTaskResults, timeoutS: number): NodeOutcome {
  const stdout = r.stdout ?? '';
  let result: Record<string, unknown> | undefined;
  try {
    const parsed = JSON.parse(stdout) as unknown;
    if (isObject(parsed)) result = parsed;
  } catch {
    // not JSON: plain output
  }
  result ??= { _output: stdout };
  const details: Record<string, unknown> = {};
  if (r.stderr) details.stderr = r.stderr;
  const code = typeof r.exitcode === 'number' ? r.exitcode : null;
  if (r.timed_out) {
    result._error = { kind: TaskErrorKind.timeout, msg: `The task timed out after ${timeoutS} seconds and was stopped`, details: { timeout: timeoutS } };
    details.message = `timed out after ${timeoutS} s`;
    return { state: 'failed', result, details };
  }
  if (code === null) {
    result._error = { kind: TaskErrorKind.agentError, msg: 'The agent did not report an exit code', details: {} };
    return { state: 'failed', result, details };
  }
  if (code !== 0 && !isObject(result._error)) {
    result._error = { kind: TaskErrorKind.taskError, msg: `The task failed with exit code ${code}`, details: { exit_code: code } };
  }
  details.exit_code = code;
  return { state: code === 0 && !isObject(result._error) ? 'finished' : 'failed', result, details };
}

/** An agent refused or could not start the action (rpc_error_message). */
export function agentErrorOutcome(description: string): NodeOutcome {
  return { state: 'errored', result: { _error: { kind: TaskErrorKind.agentError, msg: description, details: {} } }, details: { message: description } };
}

export function notConnectedOutcome(node: string): NodeOutcome {
  const msg = `node ${node} is not connected to the broker`;
  return { state: 'failed', result: { _error: { kind: TaskErrorKind.notConnected, msg, details: {} } }, details: { message: 'not connected' } };
}

/** What pxp-module-puppet (and Baton's `puppet run`) returns. */
export interface PuppetRunResults {
  kind?: string;
  time?: string;
  transaction_uuid?: string;
  environment?: string;
  status?: string;
  metrics?: Record<string, unknown>;
  exitcode?: number;
  version?: number;
  error_type?: string;
  error?: string;
}

export const PuppetErrorKind = {
  runFailed: 'puppetlabs.orchestrator/puppet-run-failed',
  runError: 'puppetlabs.orchestrator/puppet-run-error',
  noResults: 'puppetlabs.orchestrator/invalid-puppet-results',
} as const;

/** The Puppet results of a run, whether they came as the response itself or as `status query` stdout. */
export function puppetResults(r: unknown): PuppetRunResults | null {
  if (!isObject(r)) return null;
  if (typeof r.status === 'string' || typeof r.error_type === 'string' || typeof r.transaction_uuid === 'string') return r as PuppetRunResults;
  if (typeof r.stdout === 'string') {
    try {
      const parsed = JSON.parse(r.stdout) as unknown;
      if (isObject(parsed)) return puppetResults(parsed);
    } catch {
      // not Puppet results
    }
  }
  return null;
}

/**
 * A Puppet run's node state: a run that could not start (error_type) → errored; failed resources
 * (status failed) → failed; otherwise finished. The result is the run's own results.
 */
export function puppetOutcome(raw: unknown): NodeOutcome {
  const r = puppetResults(raw);
  if (!r) {
    const msg = 'the agent returned no Puppet run results';
    return { state: 'errored', result: { _error: { kind: PuppetErrorKind.noResults, msg, details: {} } }, details: { message: msg } };
  }
  const details: Record<string, unknown> = {
    kind: r.kind ?? r.status ?? null,
    transaction_uuid: r.transaction_uuid ?? null,
    environment: r.environment ?? null,
    metrics: r.metrics ?? {},
  };
  if (r.error_type) {
    const msg = r.error ? `${r.error_type}: ${r.error}` : r.error_type;
    return { state: 'errored', result: { ...r }, details: { ...details, message: msg, error_type: r.error_type } };
  }
  if (r.status === 'failed') {
    return { state: 'failed', result: { ...r }, details: { ...details, message: 'the Puppet run had failures' } };
  }
  return { state: 'finished', result: { ...r }, details };
}

/** Chef face node states beyond the engine's own (kept in the node's details as `chef_state`). */
export type ChefNodeState = 'new' | 'ready' | 'running' | 'complete' | 'failed' | 'crashed' | 'nacked' | 'unavailable' | 'was_ready' | 'aborted' | 'timed_out';

/** A command run's node state: exit 0 → complete; non-zero → failed; killed by run_timeout → timed_out. */
export function commandOutcome(r: AgentTaskResults): NodeOutcome {
  const code = typeof r.exitcode === 'number' ? r.exitcode : null;
  if (r.timed_out) return { state: 'failed', result: { exitcode: code }, details: { chef_state: 'timed_out', message: 'the command exceeded its run_timeout and was killed' } };
  if (code === null) return { state: 'failed', result: { exitcode: null }, details: { chef_state: 'crashed', message: 'the agent did not report an exit code' } };
  return { state: code === 0 ? 'finished' : 'failed', result: { exitcode: code }, details: { chef_state: code === 0 ? 'complete' : 'failed', exit_code: code } };
}

/** How a command run ended, as the engine saw it (its delivered outcome, or the node's session lost). */
export type CommandRunEnd =
  | { kind: 'results'; results: AgentTaskResults }
  | { kind: 'agent-error'; description: string; code?: string }
  | { kind: 'not-connected' }
  | { kind: 'crashed' }
  | { kind: 'timeout' };

/** Agent error codes that mean the node went down under the run (Chef's `crashed`). */
const CRASH_CODES: readonly string[] = [PxpErrorCode.agentShutdown, PxpErrorCode.actionLost];

/**
 * Chef node states for every way a command run can end, decided by the agent's error code, never
 * its text: stopped by request, or an error while the job is stopping → aborted; the agent shut
 * down or lost the action → crashed; another agent error → failed; results by `commandOutcome`,
 * except that a non-zero exit while the job is stopping → aborted. `jobStopping`: the job is
 * stopping or stopped as the outcome arrives.
 */
export function chefOutcome(o: CommandRunEnd, jobStopping = false): NodeOutcome {
  switch (o.kind) {
    case 'results': {
      const out = commandOutcome(o.results);
      if (!jobStopping || out.details.chef_state !== 'failed') return out;
      return { ...out, details: { ...out.details, chef_state: 'aborted', message: 'the job was stopped while the command ran' } };
    }
    case 'agent-error': {
      const code = o.code ?? null;
      if (code !== null && CRASH_CODES.includes(code)) return { state: 'failed', result: { exitcode: null }, details: { chef_state: 'crashed', message: o.description, code } };
      const chefState: ChefNodeState = code === PxpErrorCode.stopped || jobStopping ? 'aborted' : 'failed';
      return { state: 'errored', result: { exitcode: null }, details: { chef_state: chefState, message: o.description, ...(code !== null ? { code } : {}) } };
    }
    case 'not-connected':
    case 'crashed':
      return { state: 'failed', result: { exitcode: null }, details: { chef_state: 'crashed', message: 'the node went down while the command ran' } };
    case 'timeout':
      return { state: 'failed', result: { exitcode: null }, details: { chef_state: 'timed_out', message: 'no outcome within run_timeout' } };
  }
}
