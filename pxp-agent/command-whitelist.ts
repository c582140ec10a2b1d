// The rules of the `command` module (Chef Push Jobs' node side), pure: which admin-written command
// line a job's command runs (`command-whitelist`), which variables a job may set, what a job file
// holds, and which user a job runs as. Nothing here starts processes or touches the file system.
import { ConfigError, ConfigErrorCode } from '../lib/config.ts';
import { PROTECTED_ENV_PREFIXES, PROTECTED_ENV_VARS } from './defaults.ts';

/** $0 of the command line's shell, so that captures are $1..$n. */
export const COMMAND_ARG0 = 'baton-command';
/** Variables the agent sets for every job; a job's env may never set them. */
export const RESERVED_ENV_PREFIX = 'CHEF_PUSH_';
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** `/body/flags`: a regular expression key (the `g` and `y` flags would make matching stateful). */
const REGEX_KEY = /^\/(.+)\/([imsu]*)$/s;

export interface WhitelistEntry {
  key: string;
  /** Null for an exact key. */
  pattern: RegExp | null;
  line: string;
}

export interface Whitelist {
  exact: Map<string, WhitelistEntry>;
  /** Tried in the order the admin wrote them. */
  patterns: WhitelistEntry[];
}

export interface CommandMatch {
  key: string;
  /** The admin's command line. */
  line: string;
  /** Regex groups, in order ('' for a group that took no part): the line's $1..$n. */
  captures: string[];
}

/** Compiles `command-whitelist`; a key that looks like `/…/` but is no valid expression is a config error. */
export function compileWhitelist(config: Readonly<Record<string, string>>): Whitelist {
  const wl: Whitelist = { exact: new Map(), patterns: [] };
  for (const [key, line] of Object.entries(config)) {
    const m = REGEX_KEY.exec(key);
    if (!m) {
      wl.exact.set(key, { key, pattern: null, line });
      continue;
    }
    try {
      wl.patterns.push({ key, pattern: new RegExp(m[1]!, m[2]), line });
    } catch (cause) {
      throw new ConfigError(ConfigErrorCode.invalid, `config key 'command-whitelist': '${key}' is not a valid regular expression: ${(cause as Error).message}`, { cause });
    }
  }
  return wl;
}

/** The whitelist entry a job's command runs: an exact key first, else the first matching expression. */
export function matchCommand(wl: Whitelist, command: string): CommandMatch | null {
  if (command.includes('\0')) return null; // no argument or variable can carry it
  const exact = wl.exact.get(command);
  if (exact) return { key: exact.key, line: exact.line, captures: [] };
  for (const e of wl.patterns) {
    const m = e.pattern!.exec(command);
    if (m) return { key: e.key, line: e.line, captures: m.slice(1).map((c) => c ?? '') };
  }
  return null;
}

/** Arguments of `/bin/sh` for a match: the captures are positional parameters, never part of the line. */
export function shellArgs(match: CommandMatch): string[] {
  return ['-c', match.line, COMMAND_ARG0, ...match.captures];
}

/**
 * Why a job's env cannot be used, or null. A job may add variables, but not set protected ones
 * (PATH, the loader's, interpreters' and tools' hooks), not override what the agent's own
 * environment already holds, and never `CHEF_PUSH_*`, unless `allowed` (allowed-overwritable-env-vars)
 * lists the name. With an `allowlist` (command-env-allowlist), only names matching it may be set.
 */
export function envProblem(
  env: Readonly<Record<string, string>>,
  allowed: readonly string[],
  opts: { existing?: Readonly<Record<string, string | undefined>>; allowlist?: readonly string[] } = {},
): string | null {
  const allowlist = (opts.allowlist ?? []).map(globToRegExp);
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k)) return `'${k}' is not a valid environment variable name`;
    if (k.startsWith(RESERVED_ENV_PREFIX)) return `${k} is set by the agent; a job may not set ${RESERVED_ENV_PREFIX}* variables`;
    if (v.includes('\0')) return `the value of ${k} holds a NUL character`;
    if (allowed.includes(k)) continue;
    if (allowlist.length > 0 && !allowlist.some((re) => re.test(k))) return `${k} is not in this node's command-env-allowlist`;
    if (PROTECTED_ENV_VARS.includes(k) || PROTECTED_ENV_PREFIXES.some((p) => k.startsWith(p))) return `${k} is protected; the agent's allowed-overwritable-env-vars does not list it`;
    if (opts.existing?.[k] !== undefined) return `${k} is already set in the agent's environment; the agent's allowed-overwritable-env-vars does not list it`;
  }
  return null;
}

/** `PUSH_*`-style globs (only `*` is special). */
function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}


export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** A user's line of an /etc/passwd text, or null. */
export function findPasswdEntry(passwd: string, name: string): PasswdEntry | null {
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f.length < 7 || f[0] !== name) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
    return { name, uid, gid, home: f[5]! };
  }
  return null;
}

export interface RunUser extends PasswdEntry {
  /** Whether the process must change to this user (it is not the agent's). */
  switched: boolean;
}

/**
 * The user a job runs as: the agent's own when none is asked for; another only when the agent
 * runs as root and the user is in `passwd`. A string says why not.
 */
export function resolveRunUser(name: string | undefined, self: PasswdEntry, passwd: () => string): RunUser | string {
  if (name === undefined || name === self.name) return { ...self, switched: false };
  if (self.uid !== 0) return `the agent runs as ${self.name}, not as root, so it cannot run commands as ${name}`;
  const entry = findPasswdEntry(passwd(), name);
  if (!entry) return `there is no user '${name}' on this node`;
  return { ...entry, switched: entry.uid !== self.uid };
}

