// `task run`: Puppet task params {task, input, files, input_method?, metadata?, timeout?}, as
// Puppet's pxp-agent accepts them. Files come from the task cache (downloaded from master-uris,
// SHA-256 verified); input reaches the task as JSON on stdin and/or PT_* variables; results are
// {exitcode, stdout, stderr}, built by the dispatcher from the spool.
import { mkdirSync, symlinkSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { taskRunParamsSchema } from '../../schemas/pxp.ts';
import { BatonError } from '../../protocol/errors.ts';
import { compile } from '../../protocol/validate.ts';
import { agentEnvironment, type ProcessSpec } from '../process-runner.ts';
import { safeRelativePath, type TaskCache, type TaskFile } from '../task-cache.ts';
import type { PxpModule } from './types.ts';

export const TaskErrorCode = {
  noImplementation: 'task/no-implementation',
} as const;

/** What this agent offers to `implementations[].requirements`. */
export const AGENT_FEATURES: readonly string[] = ['shell'];

export interface TaskModuleConfig {
  /** File extension (".py") → interpreter path, from `modules-config-dir/task.conf`. */
  interpreters?: Record<string, string>;
}

interface Implementation {
  name: string;
  requirements?: string[];
  input_method?: 'stdin' | 'environment' | 'both';
}

interface TaskParams {
  task: string;
  input: Record<string, unknown>;
  files: TaskFile[];
  input_method?: 'stdin' | 'environment' | 'both';
  metadata?: { implementations?: Implementation[]; input_method?: 'stdin' | 'environment' | 'both' };
  timeout?: number;
}

/** The file that runs: the first implementation whose requirements this agent meets, else the first file. */
export function selectExecutable(params: TaskParams, features: readonly string[] = AGENT_FEATURES): { file: TaskFile; impl?: Implementation } {
  const impls = params.metadata?.implementations;
  if (!Array.isArray(impls) || impls.length === 0) return { file: params.files[0]! };
  for (const impl of impls) {
    if ((impl.requirements ?? []).every((r) => features.includes(r))) {
      const file = params.files.find((f) => f.filename === impl.name || f.filename.endsWith(`/${impl.name}`));
      if (file) return { file, impl };
    }
  }
  throw new BatonError(
    TaskErrorCode.noImplementation,
    `no implementation of task ${params.task} fits this agent (features: ${features.join(', ')}; implementations: ${impls.map((i) => i.name).join(', ')})`,
  );
}

/** PT_<name> variables: strings as they are, everything else as JSON. */
export function taskEnvironment(input: Record<string, unknown>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(input)) env[`PT_${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  return env;
}

export function createTaskModule(cache: TaskCache, config: TaskModuleConfig = {}): PxpModule {
  return {
    name: 'task',
    actions: {
      run: {
        kind: 'process',
        validate: compile(taskRunParamsSchema),
        async prepare(raw, ctx): Promise<ProcessSpec> {
          const params = raw as unknown as TaskParams;
          for (const f of params.files) safeRelativePath(f.filename);
          const { file, impl } = selectExecutable(params);
          const paths = new Map<TaskFile, string>();
          for (const f of params.files) paths.set(f, await cache.fetch(f));
          const executable = paths.get(file)!;
          await cache.verify(executable, file.sha256); // right before it runs

          const input: Record<string, unknown> = { ...params.input, _task: params.task };
          if (params.files.length > 1) {
            const installdir = join(ctx.files.dir, 'installdir');
            for (const [f, p] of paths) {
              const link = join(installdir, safeRelativePath(f.filename));
              mkdirSync(dirname(link), { recursive: true, mode: 0o700 });
              symlinkSync(p, link);
            }
            input._installdir = installdir;
          }
          const method = params.input_method ?? impl?.input_method ?? params.metadata?.input_method ?? 'both';
          const env = { ...agentEnvironment(), ...(method === 'stdin' ? {} : taskEnvironment(input)) };
          const interpreter = config.interpreters?.[extname(file.filename)];
          return {
            command: interpreter ?? executable,
            args: interpreter ? [executable] : [],
            env,
            ...(method === 'environment' ? {} : { input: JSON.stringify(input) }),
            cwd: ctx.files.dir,
            ...(params.timeout ? { timeoutS: params.timeout } : {}),
          };
        },
      },
    },
  };
}
