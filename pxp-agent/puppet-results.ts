// What a Puppet run came to, as Puppet's pxp-module-puppet reports it: {kind, time,
// transaction_uuid, environment, status, metrics, exitcode, version, error_type?, error?}, and
// the catalog's `configuration_version` (Baton's addition, as PE shows it; pxp-module-puppet has none), built
// from Puppet's last run report (YAML with Ruby tags) and last run summary. Pure: callers read
// the files and say whether this run wrote them.
import { parse } from 'yaml';

export const PuppetErrorType = {
  noPuppetBin: 'no_puppet_bin',
  noLastRunReport: 'no_last_run_report',
  invalidLastRunReport: 'invalid_last_run_report',
  agentAlreadyRunning: 'agent_already_running',
  agentDisabled: 'agent_disabled',
  agentFailedToStart: 'agent_failed_to_start',
  agentFailure: 'agent_failure',
  agentExitNonZero: 'agent_exit_non_zero',
} as const;
export type PuppetErrorType = (typeof PuppetErrorType)[keyof typeof PuppetErrorType];

export const PUPPET_RESULTS_VERSION = 1;
/** `exitcode` of results when Puppet did not run (as pxp-module-puppet). */
export const NO_EXITCODE = -1;
const UNKNOWN = 'unknown';
/** The summary's maps that become `metrics`. */
export const METRIC_CATEGORIES = ['resources', 'time', 'changes', 'events'] as const;
/** What `puppet agent` says when another run holds the catalog run lock. */
const ALREADY_RUNNING = /already in progress/i;
/** Ruby writes an alias for each object it meets again; a bound keeps hostile YAML cheap. */
const MAX_YAML_ALIASES = 10_000;

export interface PuppetRunResults {
  kind: string;
  time: string;
  transaction_uuid: string;
  /** The applied catalog's version (the report's `configuration_version`); absent when none. */
  configuration_version?: string;
  environment: string;
  status: string;
  metrics: Record<string, unknown>;
  exitcode: number;
  version: typeof PUPPET_RESULTS_VERSION;
  error_type?: PuppetErrorType;
  error?: string;
}

/** Results of a run that has no report to tell about. */
export function errorResults(exitcode: number, errorType: PuppetErrorType, error: string): PuppetRunResults {
  return {
    kind: UNKNOWN,
    time: UNKNOWN,
    transaction_uuid: UNKNOWN,
    environment: UNKNOWN,
    status: UNKNOWN,
    metrics: {},
    exitcode,
    version: PUPPET_RESULTS_VERSION,
    error_type: errorType,
    error,
  };
}

/** A transaction fails when its results carry an error or the run failed. */
export function transactionStatus(results: PuppetRunResults): 'success' | 'failure' {
  return results.error_type !== undefined || results.status === 'failed' ? 'failure' : 'success';
}

export interface RunEvidence {
  exitcode: number;
  stdout: string;
  stderr: string;
  /** Where the last run report is (for messages). */
  reportPath: string;
  /** The last run report's text, or null when this run did not (re)write it. */
  report: string | null;
  /** The last run summary's text, or null when this run did not (re)write it. */
  summary: string | null;
}

/** The results of a Puppet process that ran to its end. */
export function runResults(e: RunEvidence): PuppetRunResults {
  if (e.report === null) {
    if (ALREADY_RUNNING.test(e.stdout) || ALREADY_RUNNING.test(e.stderr)) {
      return errorResults(e.exitcode, PuppetErrorType.agentAlreadyRunning, lastLine(`${e.stdout}\n${e.stderr}`, ALREADY_RUNNING) || 'a Puppet run is already in progress');
    }
    if (e.exitcode !== 0) {
      return errorResults(e.exitcode, PuppetErrorType.agentFailure, lastLine(e.stderr) || `puppet exited with code ${e.exitcode} without writing ${e.reportPath}`);
    }
    return errorResults(e.exitcode, PuppetErrorType.noLastRunReport, `${e.reportPath} was not written by this run`);
  }
  let report: Record<string, unknown>;
  try {
    report = parseYamlObject(e.report);
  } catch (err) {
    return errorResults(e.exitcode, PuppetErrorType.invalidLastRunReport, `${e.reportPath} could not be parsed: ${(err as Error).message}`);
  }
  const status = text(report.status);
  const results: PuppetRunResults = {
    kind: status,
    time: text(report.time),
    transaction_uuid: text(report.transaction_uuid),
    ...(report.configuration_version !== undefined && report.configuration_version !== null ? { configuration_version: String(report.configuration_version) } : {}),
    environment: text(report.environment),
    status,
    metrics: summaryMetrics(e.summary) ?? reportMetrics(report.metrics),
    exitcode: e.exitcode,
    version: PUPPET_RESULTS_VERSION,
  };
  if (e.exitcode !== 0 && status !== 'failed') {
    results.error_type = PuppetErrorType.agentExitNonZero;
    results.error = `puppet exited with code ${e.exitcode}${lastLine(e.stderr) ? `: ${lastLine(e.stderr)}` : ''}`;
  }
  return results;
}

/**
 * Parses YAML written by Ruby: tags such as `!ruby/object:Puppet::Transaction::Report` are
 * unknown here and ignored (the value is read as the plain map, list or scalar it tags).
 */
export function parseYamlObject(source: string): Record<string, unknown> {
  const value: unknown = parse(source, { logLevel: 'error', maxAliasCount: MAX_YAML_ALIASES });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('it does not hold a YAML map');
  return value as Record<string, unknown>;
}

/** `metrics` from the last run summary: its resources, time, changes and events maps. */
function summaryMetrics(source: string | null): Record<string, unknown> | null {
  if (source === null) return null;
  let summary: Record<string, unknown>;
  try {
    summary = parseYamlObject(source);
  } catch {
    return null;
  }
  const out: Record<string, unknown> = {};
  for (const c of METRIC_CATEGORIES) if (isMap(summary[c])) out[c] = summary[c];
  return Object.keys(out).length > 0 ? out : null;
}

/** The same maps from the report's own metrics (`{values: [[name, label, value], …]}`). */
function reportMetrics(metrics: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!isMap(metrics)) return out;
  for (const c of METRIC_CATEGORIES) {
    const values = (metrics[c] as { values?: unknown } | undefined)?.values;
    if (!Array.isArray(values)) continue;
    const map: Record<string, unknown> = {};
    for (const v of values) if (Array.isArray(v) && typeof v[0] === 'string') map[v[0]] = v[2];
    out[c] = map;
  }
  return out;
}

/** `key = value` lines of `puppet config print` with several keys. */
export function parseConfigPrint(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of output.split('\n')) {
    const i = line.indexOf(' = ');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 3).trim();
  }
  return out;
}

/** The reason in Puppet's agent_disabled lockfile (`{"disabled_message": …}`), if it has one. */
export function disabledMessage(lockfile: string): string | null {
  try {
    const value = JSON.parse(lockfile) as { disabled_message?: unknown };
    return typeof value.disabled_message === 'string' && value.disabled_message !== '' ? value.disabled_message : null;
  } catch {
    return null;
  }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;

/** The last non-empty line of output (matching `re`, if given), without terminal colours. */
export function lastLine(output: string, re?: RegExp): string {
  const lines = output.replace(ANSI, '').split('\n').map((l) => l.trim()).filter((l) => l !== '' && (!re || re.test(l)));
  return lines.at(-1) ?? '';
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Date) return value.toISOString();
  return value === undefined || value === null ? UNKNOWN : String(value);
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
