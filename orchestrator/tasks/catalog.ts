// Tasks in `codedir`: environments/<env>/modules/<module>/tasks/<name>.<ext> with optional
// <name>.json metadata. Lists tasks, describes one with file URIs and SHA-256 for agents, checks
// parameters against the metadata, and resolves the files it serves to agents.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { projectPath } from '../../lib/paths.ts';
import { BatonError } from '../../protocol/errors.ts';
import { acceptsUndef, checkValue, parsePuppetType, type PuppetType } from './puppet-types.ts';

export const TaskErrorCode = {
  unknownEnvironment: 'unknown-environment',
  unknownTask: 'unknown-task',
  invalidMetadata: 'invalid-task-metadata',
  validation: 'validation-error',
  /** The task source (a Puppet server) is unreachable, failing or slow: the API's 503 code. */
  unavailable: 'service-unavailable',
} as const;

export class TaskCatalogError extends BatonError {}

export const TASK_FILE_PATH_PREFIX = '/puppet/v3/file_content/tasks';
const NAME_RE = /^[a-z][a-z0-9_]*$/;
const FILE_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const NOT_EXECUTABLE = new Set(['.json', '.md', '.txt~']);

export interface TaskParameter {
  type?: string;
  description?: string;
  sensitive?: boolean;
  default?: unknown;
}

export interface TaskMetadata {
  description?: string;
  parameters?: Record<string, TaskParameter>;
  input_method?: 'stdin' | 'environment' | 'both';
  supports_noop?: boolean;
  implementations?: { name: string; requirements?: string[]; input_method?: string }[];
  private?: boolean;
  [key: string]: unknown;
}

export interface TaskFileEntry {
  filename: string;
  /** A path on the server agents download from (their master-uris); `code_id` only from a Puppet server's static_file_content. */
  uri: { path: string; params: { environment: string; code_id?: string } };
  sha256: string;
  size_bytes: number;
}

export interface TaskDescription {
  name: string;
  environment: string;
  metadata: TaskMetadata;
  files: TaskFileEntry[];
}

/** `module::task` or `module` (its `init` task). */
export function splitTaskName(name: string): { module: string; task: string } | null {
  const [module, task = 'init', ...rest] = name.split('::');
  if (!module || rest.length > 0 || !NAME_RE.test(module) || !NAME_RE.test(task)) return null;
  return { module, task };
}

export class TaskCatalog {
  private readonly hashes = new Map<string, { mtimeMs: number; size: number; sha256: string }>();

  constructor(readonly codedir: string) {}

  environmentDir(environment: string): string {
    if (!NAME_RE.test(environment) || !existsSync(join(this.codedir, 'environments', environment))) {
      throw new TaskCatalogError(TaskErrorCode.unknownEnvironment, `unknown environment '${environment}'`, { details: { environment } });
    }
    return join(this.codedir, 'environments', environment);
  }

  /** Every task of an environment, by name. */
  list(environment: string): string[] {
    const modulesDir = join(this.environmentDir(environment), 'modules');
    const names = new Set<string>();
    for (const module of safeReaddir(modulesDir)) {
      if (!NAME_RE.test(module)) continue;
      for (const file of safeReaddir(join(modulesDir, module, 'tasks'))) {
        const base = file.replace(/\.[^.]*$/, '');
        if (!NAME_RE.test(base)) continue;
        names.add(base === 'init' ? module : `${module}::${base}`);
      }
    }
    return [...names].sort();
  }

  describe(environment: string, name: string): TaskDescription {
    const parts = splitTaskName(name);
    const unknown = () => new TaskCatalogError(TaskErrorCode.unknownTask, `could not find a task named '${name}' in environment '${environment}'`, { details: { task: name, environment } });
    if (!parts) throw unknown();
    const tasksDir = join(moduleDir(this.environmentDir(environment), parts.module), 'tasks');
    const files = safeReaddir(tasksDir).filter((f) => f.replace(/\.[^.]*$/, '') === parts.task && FILE_RE.test(f));
    const metadataFile = files.find((f) => f === `${parts.task}.json`);
    const executables = files.filter((f) => !NOT_EXECUTABLE.has(f.slice(f.lastIndexOf('.'))) && f !== metadataFile);
    if (executables.length === 0) throw unknown();
    let metadata: TaskMetadata = {};
    if (metadataFile) {
      try {
        metadata = JSON.parse(readFileSync(join(tasksDir, metadataFile), 'utf8')) as TaskMetadata;
      } catch (err) {
        throw new TaskCatalogError(TaskErrorCode.invalidMetadata, `the metadata of task '${name}' is not valid JSON: ${(err as Error).message}`);
      }
    }
    let chosen = executables;
    if (Array.isArray(metadata.implementations) && metadata.implementations.length > 0) {
      chosen = metadata.implementations.map((i) => {
        if (!executables.includes(i.name)) throw new TaskCatalogError(TaskErrorCode.invalidMetadata, `task '${name}' lists implementation '${i.name}', which is not in its module`);
        return i.name;
      });
    } else if (executables.length > 1) {
      throw new TaskCatalogError(TaskErrorCode.invalidMetadata, `task '${name}' has several executables (${executables.join(', ')}) but no implementations in its metadata`);
    }
    return {
      name: parts.task === 'init' ? parts.module : `${parts.module}::${parts.task}`,
      environment,
      metadata,
      files: chosen.map((filename) => this.fileEntry(environment, parts.module, tasksDir, filename)),
    };
  }

  /** The path of a task file agents may download, or null. */
  resolveFile(environment: string, module: string, file: string): string | null {
    if (!NAME_RE.test(module) || !FILE_RE.test(file)) return null;
    let envDir: string;
    try {
      envDir = this.environmentDir(environment);
    } catch {
      return null;
    }
    const path = join(moduleDir(envDir, module), 'tasks', file);
    return existsSync(path) && statSync(path).isFile() ? path : null;
  }

  private fileEntry(environment: string, module: string, tasksDir: string, filename: string): TaskFileEntry {
    const path = join(tasksDir, filename);
    const st = statSync(path);
    let cached = this.hashes.get(path);
    if (!cached || cached.mtimeMs !== st.mtimeMs || cached.size !== st.size) {
      cached = { mtimeMs: st.mtimeMs, size: st.size, sha256: createHash('sha256').update(readFileSync(path)).digest('hex') };
      this.hashes.set(path, cached);
    }
    return {
      filename,
      uri: { path: `${TASK_FILE_PATH_PREFIX}/${module}/${filename}`, params: { environment } },
      sha256: cached.sha256,
      size_bytes: st.size,
    };
  }
}

/** A declared parameter, of a task or a plan: its Puppet type (source) and default. */
export interface DeclaredParameter {
  type?: string;
  default?: unknown;
}

/**
 * The parameter check that tasks and plans share: every key of `given` and of `later` (keys whose
 * values are known only later) is declared, unless `passPrivate` lets `_` keys through; each
 * declared type is parsed (`typeOf`, which throws its own error for a bad one); every declared
 * key not in `later` has a value (given, else its default) of its type, or is optional. Returns
 * the values with defaults applied (then the `_` keys, when passed) and every problem found.
 */
export function checkDeclared(
  declared: Record<string, DeclaredParameter>,
  given: Record<string, unknown>,
  o: { typeOf: (key: string, spec: DeclaredParameter) => PuppetType; later?: ReadonlySet<string>; passPrivate?: boolean },
): { values: Record<string, unknown>; problems: string[] } {
  const later = o.later ?? new Set<string>();
  const problems: string[] = [];
  for (const key of [...Object.keys(given), ...later]) {
    if (!(key in declared) && !(o.passPrivate && key.startsWith('_'))) problems.push(`unknown parameter '${key}'`);
  }
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(declared)) {
    const type = o.typeOf(key, spec);
    if (later.has(key)) continue;
    const value = key in given ? given[key] : spec.default;
    if (value === undefined) {
      if (!acceptsUndef(type)) problems.push(`parameter '${key}' is required (${spec.type ?? 'Any'})`);
      continue;
    }
    const err = checkValue(value, type);
    if (err) problems.push(`parameter '${key}' ${err}`);
    values[key] = value;
  }
  if (o.passPrivate) for (const [key, value] of Object.entries(given)) if (key.startsWith('_')) values[key] = value;
  return { values, problems };
}

/** A task parameter's type (Any when it declares none); bad metadata is `invalid-task-metadata`. */
export function taskParameterType(task: Pick<TaskDescription, 'name'>): (key: string, spec: DeclaredParameter) => PuppetType {
  return (key, spec) => {
    if (!spec.type) return { name: 'Any', args: [] };
    try {
      return parsePuppetType(spec.type);
    } catch (err) {
      throw new TaskCatalogError(TaskErrorCode.invalidMetadata, `task '${task.name}' parameter '${key}': ${(err as Error).message}`);
    }
  };
}

/**
 * Checks params against the task's metadata: unknown parameters are refused, types checked,
 * defaults applied. Returns the params to send; throws `validation-error` listing every problem.
 */
export function validateParams(task: TaskDescription, params: Record<string, unknown>): Record<string, unknown> {
  const declared = task.metadata.parameters;
  if (!declared) return { ...params }; // a task without parameter metadata takes anything
  const { values, problems } = checkDeclared(declared, params, { typeOf: taskParameterType(task), passPrivate: true });
  if (problems.length > 0) {
    throw new TaskCatalogError(TaskErrorCode.validation, `invalid parameters for task '${task.name}': ${problems.join('; ')}`, { details: { problems } });
  }
  return values;
}

/** Names of the task's sensitive parameters: never logged, masked in the API and in events. */
export function sensitiveParameters(task: Pick<TaskDescription, 'metadata'>): string[] {
  return Object.entries(task.metadata.parameters ?? {}).filter(([, p]) => p.sensitive === true).map(([k]) => k);
}

/** Modules Baton ships (plans' command and script steps run their tasks), found when the environment has no module of that name. */
export const BUILTIN_MODULES_DIR = projectPath('orchestrator', 'tasks', 'builtin');
export const BUILTIN_MODULES: readonly string[] = ['baton_shim'];

function moduleDir(envDir: string, module: string): string {
  const own = join(envDir, 'modules', module);
  return BUILTIN_MODULES.includes(module) && !existsSync(own) ? join(BUILTIN_MODULES_DIR, module) : own;
}

/** A directory's entries, sorted; none when it cannot be read. */
export function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
