// Configuration of `baton agent` (keys follow Puppet's pxp-agent where it has them).
import { logLevelSchema, tlsConfigProperties } from './common.ts';

/** `14d`, `12h`, `30m` or `45s`. */
const duration = { type: 'string', pattern: '^[0-9]+[smhd]$' } as const;

export const agentConfigSchema = {
  $id: 'baton:config/agent',
  type: 'object',
  additionalProperties: false,
  required: ['broker-ws-uris', 'ssl-ca-cert', 'ssl-cert', 'ssl-key', 'spool-dir', 'task-cache-dir'],
  properties: {
    'broker-ws-uris': { type: 'array', minItems: 1, items: { type: 'string', pattern: '^wss://' } },
    /** PCP version of the broker session (as pxp-agent's): "2" (default) at `.../pcp2/`, "1" at `.../pcp/`. */
    'pcp-version': { type: 'string', enum: ['1', '2'] },
    ...tlsConfigProperties,
    'spool-dir': { type: 'string', minLength: 1 },
    'spool-dir-purge-ttl': duration,
    'task-cache-dir': { type: 'string', minLength: 1 },
    'task-cache-dir-purge-ttl': duration,
    /** Where task files may be downloaded from (HTTPS, e.g. the orchestrator or a Puppet server). */
    'master-uris': { type: 'array', items: { type: 'string', pattern: '^https://' } },
    /** `<module>.conf` JSON files with per-module settings (task: `interpreters`). */
    'modules-config-dir': { type: 'string', minLength: 1 },
    'max-concurrent-actions': { type: 'integer', minimum: 1 },
    environment: { type: 'string', minLength: 1 },
    'facts-dir': { type: 'string', minLength: 1 },
    /** Seconds between WebSocket pings to the broker (as in pxp-agent). */
    'ping-interval': { type: 'integer', minimum: 1 },
    'allowed-keepalive-timeouts': { type: 'integer', minimum: 1 },
    /** Milliseconds. */
    'connection-timeout': { type: 'integer', minimum: 100 },
    /** Deepest nesting of arrays and objects accepted in one JSON message; deeper ones are refused unparsed. */
    'max-message-depth': { type: 'integer', minimum: 2, maximum: 10000 },
    /** Milliseconds before the first reconnection attempt (doubling, with jitter, up to reconnect-max-delay). */
    'reconnect-initial-delay': { type: 'integer', minimum: 1 },
    /** Milliseconds: the longest wait between reconnection attempts. */
    'reconnect-max-delay': { type: 'integer', minimum: 1 },
    'log-level': logLevelSchema,
    logfile: { type: 'string', minLength: 1 },
    /** The `puppet` executable run by `puppet run` (a name looked up in PATH, or a path). */
    'puppet-bin': { type: 'string', minLength: 1 },
    /** Arguments before the request's flags; `{environment}` in any of them becomes the run's environment. */
    'puppet-command': { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
    /** Settings arguments (`--confdir`, `--vardir`, …) added to every run and to `puppet config print`. */
    'puppet-settings': { type: 'array', items: { type: 'string', minLength: 1 } },
    /** Seconds a `puppet run` may take before its process group is killed; no limit when absent. */
    'puppet-run-timeout': { type: 'integer', minimum: 1 },
    /** `command run`: job command (exact, or `/regex/` whose groups become $1..$n) → the admin's /bin/sh command line. */
    'command-whitelist': { type: 'object', additionalProperties: { type: 'string', minLength: 1 } },
    /** Protected variables (PATH, loader and shell start-up ones) a job's env may set anyway; never CHEF_PUSH_*. */
    'allowed-overwritable-env-vars': { type: 'array', items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
    /** When set, the only variable names (globs such as `PUSH_*`) a job's env may set (`command`, `puppet`). */
    'command-env-allowlist': { type: 'array', items: { type: 'string', pattern: '^[A-Za-z_*][A-Za-z0-9_*]*$' } },
    /** Seconds a `command commit` holds the node for its job before it lapses. */
    'command-commit-ttl': { type: 'integer', minimum: 1 },
  },
} as const;
