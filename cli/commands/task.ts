// `baton task run|show` and `baton tasks`: the Puppet orchestrator's task API.
import type { Command } from 'commander';
import { action } from '../action.ts';
import { addScopeOptions, parseParams, positiveInt, scopeOf, type ScopeFlags } from '../args.ts';
import { addApiOptions, apiClient, type ApiOptions } from '../client.ts';
import { usageError } from '../errors.ts';
import { bold, out, printJson, table } from '../format.ts';
import { startedJob } from '../follow.ts';

interface TaskRunOptions extends ApiOptions, ScopeFlags {
  params?: string;
  environment?: string;
  noop?: boolean;
  concurrency?: string;
  timeout?: string;
  description?: string;
  wait: boolean;
}

/** The body of POST /orchestrator/v1/command/task for `baton task run`'s arguments. */
export function taskRunBody(task: string, pairs: readonly string[], o: TaskRunOptions): Record<string, unknown> {
  const params = parseParams(o.params, pairs);
  const scope = scopeOf(o);
  if (scope === null) throw usageError('task run needs its nodes: give --nodes, --query or --node-group');
  return {
    task,
    params,
    scope,
    ...(o.environment ? { environment: o.environment } : {}),
    ...(o.noop ? { noop: true } : {}),
    ...(o.concurrency !== undefined ? { concurrency: positiveInt('--concurrency', o.concurrency) } : {}),
    ...(o.timeout !== undefined ? { timeout: positiveInt('--timeout', o.timeout) } : {}),
    ...(o.description ? { description: o.description } : {}),
  };
}

/** `module::task` → /tasks/module/task; a bare module name is its `init` task. */
export function taskPath(name: string): string {
  const m = /^([a-z][a-z0-9_]*)(?:::([a-z][a-z0-9_]*))?$/.exec(name);
  if (!m) throw usageError(`'${name}' is not a task name (module::task, or module for its init task)`);
  return `/orchestrator/v1/tasks/${m[1]}/${m[2] ?? 'init'}`;
}

export function registerTask(program: Command): void {
  const task = program.command('task').description('run tasks and describe them');

  const run = task
    .command('run')
    .description('run a task on nodes and follow it (POST /orchestrator/v1/command/task)')
    .argument('<task>', 'the task: module::task, or module for module::init')
    .argument('[params...]', 'parameters as key=value; values that parse as JSON are JSON (count=3, flag=true)')
    .option('--params <json>', "parameters as a JSON object, or @file holding one (key=value arguments override it)")
    .option('--environment <name>', 'code environment (default production)')
    .option('--noop', 'run in no-operation mode (tasks that support it)')
    .option('--concurrency <n>', 'at most this many nodes at once')
    .option('--timeout <seconds>', "a node's run is stopped after this long")
    .option('--description <text>', 'a description of the job')
    .option('--no-wait', 'print the job id and return instead of following the job');
  addScopeOptions(run);
  addApiOptions(run).action(
    action(async (name: string, pairs: string[], o: TaskRunOptions) => {
      const body = taskRunBody(name, pairs, o);
      const client = apiClient(o);
      const res = (await client.post('/orchestrator/v1/command/task', body)) as { job: { name: string } };
      return startedJob(client, res.job.name, `task ${name}`, { json: o.json, wait: o.wait });
    }),
  );

  addApiOptions(
    task
      .command('show')
      .description('describe a task: its parameters and files (GET /orchestrator/v1/tasks/:module/:task)')
      .argument('<task>', 'module::task, or module for module::init')
      .option('--environment <name>', 'code environment (default production)'),
  ).action(
    action(async (name: string, o: ApiOptions & { environment?: string }) => {
      const path = taskPath(name);
      const t = await apiClient(o).get(`${path}${o.environment ? `?environment=${encodeURIComponent(o.environment)}` : ''}`);
      if (o.json) return printJson(t);
      const md = (t.metadata ?? {}) as { description?: string; parameters?: Record<string, Record<string, unknown>>; supports_noop?: boolean; input_method?: string };
      out(`${bold(t.name as string)}  (environment ${(t.environment as { name: string }).name})`);
      if (md.description) out(md.description);
      out(`supports noop: ${md.supports_noop === true ? 'yes' : 'no'}${md.input_method ? `   input method: ${md.input_method}` : ''}`);
      const params = Object.entries(md.parameters ?? {});
      out();
      if (params.length === 0) out('No parameters.');
      else {
        out(table(
          ['parameter', 'type', 'default', 'description'],
          params.map(([k, p]) => [`${k}${p.sensitive ? ' (sensitive)' : ''}`, String(p.type ?? 'Any'), p.default === undefined ? '' : JSON.stringify(p.default), String(p.description ?? '')]),
        ));
      }
      const files = (t.files ?? []) as { filename: string; size_bytes: number }[];
      out();
      out(`files: ${files.map((f) => `${f.filename} (${f.size_bytes} bytes)`).join(', ') || 'none'}`);
      out(`run it: baton task run ${t.name as string}${params.map(([k]) => ` ${k}=…`).join('')} --nodes <names>`);
    }),
  );

  addApiOptions(
    program
      .command('tasks')
      .description('list the tasks of an environment (GET /orchestrator/v1/tasks)')
      .option('--environment <name>', 'code environment (default production)'),
  ).action(
    action(async (o: ApiOptions & { environment?: string }) => {
      const res = await apiClient(o).get(`/orchestrator/v1/tasks${o.environment ? `?environment=${encodeURIComponent(o.environment)}` : ''}`);
      if (o.json) return printJson(res);
      const items = res.items as { name: string }[];
      if (items.length === 0) return out(`No tasks in environment ${(res.environment as { name: string }).name}.`);
      for (const i of items) out(i.name);
    }),
  );
}
