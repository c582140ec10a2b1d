// Defaults of the agent, as data. Units are in the names; config keys are pxp-agent's.
import { availableParallelism } from 'node:os';
import type { FromSchema } from 'json-schema-to-ts';
import { DEFAULT_MAX_MESSAGE_DEPTH } from '../protocol/json-depth.ts';
import type { agentConfigSchema } from '../schemas/agent-config.ts';

export type AgentConfig = FromSchema<typeof agentConfigSchema>;

export const DEFAULT_SPOOL_PURGE_TTL = '14d';
export const DEFAULT_TASK_CACHE_PURGE_TTL = '14d';
export const DEFAULT_PING_INTERVAL_S = 120;
export const DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS = 1;
export const DEFAULT_AGENT_CONNECTION_TIMEOUT_MS = 5_000;
export const DEFAULT_ENVIRONMENT = 'production';
/** How often spool and cache purges run. */
export const PURGE_INTERVAL_MS = 3_600_000;
/** How often a re-attached process (one that outlived an agent restart) is checked. */
export const REATTACH_POLL_MS = 200;
/** After SIGTERM to a process group, how long before SIGKILL. */
export const KILL_GRACE_MS = 2_000;
/** Output of one stream returned in results; the spool keeps all of it. */
export const MAX_RESULT_OUTPUT_BYTES = 16 * 1024 * 1024;
/** Task file downloads: no bytes for this long aborts the download. */
export const DOWNLOAD_IDLE_TIMEOUT_MS = 30_000;
/** Rounds over master-uris before a download fails, and the first pause between rounds (it doubles). */
export const DOWNLOAD_ATTEMPTS = 5;
export const DOWNLOAD_RETRY_BASE_MS = 500;
/** Blocking transactions remembered in memory so that a repeated id never runs twice. */
export const BLOCKING_TRANSACTIONS_REMEMBERED = 10_000;

/** `puppet run`: the executable, and the arguments before the request's flags (as pxp-module-puppet runs it). */
export const DEFAULT_PUPPET_BIN = 'puppet';
export const DEFAULT_PUPPET_COMMAND: readonly string[] = ['agent', '--onetime', '--no-daemonize', '--verbose'];
/** `puppet config print` (paths of the report and lock files) may take this long before it fails. */
export const PUPPET_CONFIG_PRINT_TIMEOUT_MS = 60_000;

/** `command commit` holds the node for its job this long unless the run starts first. */
export const DEFAULT_COMMAND_COMMIT_TTL_S = 300;
/** `command output`: bytes of each stream per answer, at most (and by default). */
export const COMMAND_OUTPUT_MAX_BYTES = 256 * 1024;
/**
 * Variables a `command` job's env may not set unless `allowed-overwritable-env-vars` lists them:
 * the search path, and what makes the dynamic loader or a shell run code of the job's choosing.
 * CHEF_PUSH_* are the agent's own and never settable.
 */
/** A switched user's PATH (the agent's own is not handed on). */
export const SWITCHED_USER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Of the agent's environment, what a run as another user gets (besides PATH, HOME, USER, LOGNAME). */
export const SWITCHED_USER_ENV_KEPT: readonly string[] = ['LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TERM'];

export const PROTECTED_ENV_VARS: readonly string[] = [
  'PATH', 'IFS', 'ENV', 'BASH_ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'PROMPT_COMMAND', 'HOME', 'USER', 'LOGNAME', 'GCONV_PATH',
  // interpreters' own hooks: each loads code of the job's choosing into a whitelisted command
  'RUBYOPT', 'RUBYLIB', 'PERL5OPT', 'PERL5LIB', 'PERLLIB', 'PYTHONPATH', 'PYTHONSTARTUP', 'PYTHONHOME', 'PYTHONINSPECT', 'NODE_OPTIONS', 'NODE_PATH', 'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS',
];
/**
 * Whole families of protected variables: the dynamic loader's, and the tools' own option and hook
 * variables (GIT_CONFIG_*, GIT_SSH_COMMAND, TAR_OPTIONS, RSYNC_RSH, …) that run code of the job's
 * choosing inside a whitelisted command.
 */
export const PROTECTED_ENV_PREFIXES: readonly string[] = [
  'LD_', 'DYLD_', 'GIT_', 'SSH_', 'TAR_', 'RSYNC_', 'PYTHON', 'PERL', 'RUBY', 'NODE_', 'JAVA_', 'BASH_FUNC_', 'GCONV_', 'LOCPATH', 'HOSTALIASES', 'RES_OPTIONS', 'NLSPATH',
];

export const AGENT_DEFAULTS = {
  'spool-dir-purge-ttl': DEFAULT_SPOOL_PURGE_TTL,
  'task-cache-dir-purge-ttl': DEFAULT_TASK_CACHE_PURGE_TTL,
  'master-uris': [],
  'max-concurrent-actions': availableParallelism(),
  environment: DEFAULT_ENVIRONMENT,
  'ping-interval': DEFAULT_PING_INTERVAL_S,
  'allowed-keepalive-timeouts': DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS,
  'connection-timeout': DEFAULT_AGENT_CONNECTION_TIMEOUT_MS,
  'log-level': 'info',
  'puppet-bin': DEFAULT_PUPPET_BIN,
  'puppet-command': [...DEFAULT_PUPPET_COMMAND],
  'puppet-settings': [],
  'command-whitelist': {},
  'allowed-overwritable-env-vars': [],
  'command-env-allowlist': [],
  'command-commit-ttl': DEFAULT_COMMAND_COMMIT_TTL_S,
  'max-message-depth': DEFAULT_MAX_MESSAGE_DEPTH,
} as const satisfies Partial<AgentConfig>;

export type ResolvedAgentConfig = AgentConfig & Required<Pick<AgentConfig, keyof typeof AGENT_DEFAULTS>>;
