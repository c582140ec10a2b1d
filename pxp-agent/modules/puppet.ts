// `puppet run` {flags, job?, env?}: a Puppet run, as Puppet's pxp-module-puppet starts it. Flags
// are checked against a whitelist before anything runs; the paths of Puppet's report and lock
// files come from `puppet config print`; a disabled or busy Puppet ends the transaction at once;
// the results are built from the last run report and summary (../puppet-results.ts).
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { envProblem } from '../command-whitelist.ts';
import { BatonError } from '../../protocol/errors.ts';
import { compile } from '../../protocol/validate.ts';
import { puppetRunParamsSchema } from '../../schemas/pxp.ts';
import { PUPPET_CONFIG_PRINT_TIMEOUT_MS } from '../defaults.ts';
import { agentEnvironment, isAlive, type ProcessSpec } from '../process-runner.ts';
import {
  disabledMessage,
  errorResults,
  lastLine,
  NO_EXITCODE,
  parseConfigPrint,
  PuppetErrorType,
  runResults,
  transactionStatus,
} from '../puppet-results.ts';
import type { TransactionFiles } from '../spool.ts';
import { ImmediateOutcome, type ActionOutcome, type PxpModule, type RawProcessResult } from './types.ts';

const execFileP = promisify(execFile);

/** The module's own name; the dispatcher also serves it as `pxp-module-puppet` (protocol/pxp.ts). */
export const PUPPET_MODULE = 'puppet';

export const PuppetModuleErrorCode = {
  invalidEnv: 'puppet/invalid-env',
  invalidFlag: 'puppet/invalid-flag',
} as const;

export interface PuppetModuleConfig {
  /** `puppet-bin`. */
  bin: string;
  /** `puppet-command`: arguments before the flags; `{environment}` is replaced. */
  command: readonly string[];
  /** `puppet-settings`: added to every run and to `puppet config print`. */
  settings: readonly string[];
  /** The agent's `environment`: the run's environment when the flags name none. */
  environment: string;
  /** `puppet-run-timeout`, seconds. */
  timeoutS?: number | undefined;
  /** `allowed-overwritable-env-vars` and `command-env-allowlist`: the rules of a request's `env`. */
  allowedEnv?: readonly string[];
  envAllowlist?: readonly string[];
}

interface FlagSpec {
  takesValue: boolean;
  /** `--no-<name>` is allowed too. */
  negatable: boolean;
}

const on: FlagSpec = { takesValue: false, negatable: false };
const onOff: FlagSpec = { takesValue: false, negatable: true };
const valued: FlagSpec = { takesValue: true, negatable: false };

/** The flags a request may pass to Puppet. */
export const PUPPET_FLAGS: Readonly<Record<string, FlagSpec>> = {
  noop: onOff,
  debug: on,
  trace: on,
  evaltrace: on,
  environment: valued,
  tags: valued,
  skip_tags: valued,
  use_cached_catalog: onOff,
  show_diff: onOff,
  verbose: onOff,
  log_level: valued,
  strict_environment_mode: on,
  usecacheonfailure: onOff,
  pluginsync: onOff,
  ordering: valued,
  sourceaddress: valued,
  color: valued,
  http_connect_timeout: valued,
  http_read_timeout: valued,
  filetimeout: valued,
  disable_per_environment_manifest: on,
  graph: on,
};

export const ENVIRONMENT_NAME = /^[a-z0-9_]+$/;
/** Characters of every legitimate flag value (tags, durations, levels, addresses, orderings). */
const FLAG_VALUE = /^[A-Za-z0-9_:,.-]+$/;
/** The settings `puppet config print` is asked for. */
const PATH_KEYS = ['lastrunfile', 'lastrunreport', 'agent_disabled_lockfile', 'agent_catalog_run_lockfile'] as const;
type PuppetPaths = Record<(typeof PATH_KEYS)[number], string>;
/** What a run needs to know after its process ended, even in another agent process. */
const RUN_STATE_FILE = 'puppet-run.json';

interface RunState {
  paths: PuppetPaths;
  environment: string;
  started_ms: number;
}

function invalidFlag(message: string): BatonError {
  return new BatonError(PuppetModuleErrorCode.invalidFlag, `puppet run: ${message}; nothing was run`);
}

/**
 * Checks a request's flags against the whitelist and returns them as arguments (a value always
 * as its own argument), with the environment they name, if any. Throws, naming the flag.
 */
export function parseFlags(flags: readonly string[]): { args: string[]; environment: string | null } {
  const args: string[] = [];
  let environment: string | null = null;
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i]!;
    if (!flag.startsWith('--')) throw invalidFlag(`'${flag}' is not a flag (a value must follow a flag that takes one)`);
    const eq = flag.indexOf('=');
    const name = eq === -1 ? flag.slice(2) : flag.slice(2, eq);
    const negated = name.startsWith('no-') && PUPPET_FLAGS[name.slice(3)]?.negatable === true;
    const spec = negated ? PUPPET_FLAGS[name.slice(3)] : Object.hasOwn(PUPPET_FLAGS, name) ? PUPPET_FLAGS[name] : undefined;
    if (!spec) throw invalidFlag(`flag '--${name}' is not permitted (permitted: ${Object.keys(PUPPET_FLAGS).map((f) => `--${f}`).join(', ')})`);
    if (!spec.takesValue || negated) {
      if (eq !== -1) throw invalidFlag(`flag '--${name}' takes no value`);
      args.push(`--${name}`);
      continue;
    }
    const value = eq !== -1 ? flag.slice(eq + 1) : flags[++i];
    if (value === undefined || value === '') throw invalidFlag(`flag '--${name}' needs a value`);
    if (value.startsWith('-')) throw invalidFlag(`flag '--${name}' needs a value, not '${value}'`);
    if (!FLAG_VALUE.test(value)) throw invalidFlag(`flag '--${name}' has a value with characters no Puppet setting uses: '${value}'`);
    if (name === 'environment') {
      if (!ENVIRONMENT_NAME.test(value)) throw invalidFlag(`flag '--environment' needs an environment name matching ${ENVIRONMENT_NAME.source}, not '${value}'`);
      environment = value;
    }
    args.push(`--${name}`, value);
  }
  return { args, environment };
}

/** The puppet command line of a run (without the executable). */
export function puppetArgs(config: PuppetModuleConfig, flagArgs: readonly string[], environment: string, job: string | undefined): string[] {
  const command = config.command.map((a) => a.replaceAll('{environment}', environment));
  // `puppet apply` has no --job-id option.
  const jobArgs = job !== undefined && command[0] === 'agent' ? ['--job-id', job] : [];
  return [...command, ...config.settings, ...flagArgs, ...jobArgs];
}

/** A request's `KEY=VALUE` strings as variables. */
export function envPairs(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** The agent's environment without Baton's own settings, then the request's `KEY=VALUE` strings. */
export function puppetEnvironment(extra: readonly string[] = []): Record<string, string> {
  const env = agentEnvironment();
  // Puppet reads UTF-8 manifests and reports; in a C or POSIX locale Ruby must be told so.
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || '';
  if (!/utf-?8/i.test(locale)) env.RUBYOPT = `${env.RUBYOPT ? `${env.RUBYOPT} ` : ''}-EUTF-8`;
  return Object.assign(env, envPairs(extra));
}

function failed(errorType: PuppetErrorType, error: string): ImmediateOutcome {
  return new ImmediateOutcome({ status: 'failure', results: errorResults(NO_EXITCODE, errorType, error) }, error);
}

function readIfExists(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** A file's text when this run (re)wrote it, else null. */
function writtenSince(path: string, sinceMs: number): string | null {
  try {
    return statSync(path).mtimeMs >= sinceMs ? readFileSync(path, 'utf8') : null;
  } catch {
    return null;
  }
}

/** The outcome of an ended Puppet process, from the state `prepare` left in the spool. */
export function puppetOutcome(raw: RawProcessResult, files: TransactionFiles): ActionOutcome {
  let state: RunState;
  try {
    state = JSON.parse(readFileSync(join(files.dir, RUN_STATE_FILE), 'utf8')) as RunState;
  } catch (err) {
    const results = errorResults(raw.exitcode, PuppetErrorType.noLastRunReport, `the run's state (${RUN_STATE_FILE}) is unreadable: ${(err as Error).message}`);
    return { status: 'failure', results };
  }
  const results = runResults({
    exitcode: raw.exitcode,
    stdout: raw.stdout,
    stderr: raw.stderr,
    reportPath: state.paths.lastrunreport,
    report: writtenSince(state.paths.lastrunreport, state.started_ms),
    summary: writtenSince(state.paths.lastrunfile, state.started_ms),
  });
  return { status: transactionStatus(results), results };
}

export function createPuppetModule(config: PuppetModuleConfig): PxpModule {
  /** `puppet config print` per executable and settings, once for the agent's lifetime. */
  const pathsCache = new Map<string, Promise<PuppetPaths>>();

  async function configPrint(env: Record<string, string>): Promise<PuppetPaths> {
    let out: string;
    try {
      ({ stdout: out } = await execFileP(config.bin, ['config', 'print', '--section', 'agent', ...PATH_KEYS, ...config.settings], {
        env,
        timeout: PUPPET_CONFIG_PRINT_TIMEOUT_MS,
        maxBuffer: 1024 * 1024,
      }));
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT' || e.code === 'EACCES') throw failed(PuppetErrorType.noPuppetBin, `the Puppet executable '${config.bin}' cannot be run (${e.code})`);
      throw failed(PuppetErrorType.agentFailedToStart, `puppet config print failed: ${lastLine(e.stderr ?? '') || e.message}`);
    }
    const printed = parseConfigPrint(out);
    const missing = PATH_KEYS.filter((k) => !printed[k]);
    if (missing.length > 0) throw failed(PuppetErrorType.noLastRunReport, `puppet config print did not tell where ${missing.join(', ')} are`);
    return printed as PuppetPaths;
  }

  function paths(env: Record<string, string>): Promise<PuppetPaths> {
    const key = JSON.stringify([config.bin, config.settings]);
    let p = pathsCache.get(key);
    if (!p) {
      p = configPrint(env);
      pathsCache.set(key, p);
      p.catch(() => pathsCache.delete(key)); // a failure is not remembered
    }
    return p;
  }

  return {
    name: PUPPET_MODULE,
    actions: {
      run: {
        kind: 'process',
        validate: compile(puppetRunParamsSchema),
        async prepare(raw, ctx): Promise<ProcessSpec> {
          const params = raw as { flags: string[]; job?: string; env?: string[] };
          const flags = parseFlags(params.flags);
          const environment = flags.environment ?? config.environment;
          const extra = envPairs(params.env ?? []);
          // The same rules as a command's env: no loader, interpreter (RUBYOPT, …) or PATH override.
          const envWrong = envProblem(extra, config.allowedEnv ?? [], { existing: process.env, allowlist: config.envAllowlist ?? [] });
          if (envWrong) throw new BatonError(PuppetModuleErrorCode.invalidEnv, `puppet run: env refused: ${envWrong}; nothing was run`);
          const env = puppetEnvironment(params.env);
          const p = await paths(puppetEnvironment()); // where Puppet keeps its state: never the request's env

          const disabled = readIfExists(p.agent_disabled_lockfile);
          if (disabled !== null) throw failed(PuppetErrorType.agentDisabled, disabledMessage(disabled) ?? 'Puppet agent is disabled');
          const pid = Number.parseInt(readIfExists(p.agent_catalog_run_lockfile) ?? '', 10);
          if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
            throw failed(PuppetErrorType.agentAlreadyRunning, `a Puppet run is already in progress (pid ${pid} holds ${p.agent_catalog_run_lockfile})`);
          }

          const args = puppetArgs(config, flags.args, environment, params.job);
          const state: RunState = { paths: p, environment, started_ms: Date.now() };
          writeFileSync(join(ctx.files.dir, RUN_STATE_FILE), JSON.stringify(state), { mode: 0o600 });
          ctx.log.info({ puppet: config.bin, args }, 'starting a Puppet run');
          return {
            command: config.bin,
            args,
            env,
            cwd: ctx.files.dir,
            ...(config.timeoutS ? { timeoutS: config.timeoutS } : {}),
          };
        },
        results: (raw, files) => puppetOutcome(raw, files),
      },
    },
  };
}
