// What a Puppet face command body asks the engine to do: the job submission of a `task` or a
// `deploy` body, built (and checked against the catalog and the scope) without side effects.
// Shared by the immediate commands, the schedules that start them later and the plans' steps.
import type { FromSchema } from 'json-schema-to-ts';
import { PUPPET_RUN_MODULE } from '../../../protocol/pxp.ts';
import type { commandDeployBodySchema, commandTaskBodySchema } from '../../../schemas/orchestrator-api.ts';
import { classifiedEnvironments, precheckScope, resolveScope, type Scope } from '../../deploy/scope.ts';
import type { JobAction, JobSubmission } from '../../engine/engine.ts';
import { taskRunAction } from '../../engine/kinds/task.ts';
import { sensitiveParameters, validateParams } from '../../tasks/catalog.ts';
import { apiError, ApiErrorCode, catalogError } from '../errors.ts';
import { DEFAULT_ENVIRONMENT, type PuppetFaceContext } from './context.ts';

export type TaskBody = FromSchema<typeof commandTaskBodySchema>;
export type DeployBody = FromSchema<typeof commandDeployBodySchema>;

/** The permission a task body needs beyond `jobs:run`: the task's own. */
export function taskPermission(task: string): string {
  return `tasks:run:${task}`;
}

/** The task job `b` asks for, its task and parameters checked; the scope resolved to its nodes. */
export async function taskSubmission(ctx: PuppetFaceContext, b: TaskBody, owner: string): Promise<JobSubmission> {
  const environment = b.environment ?? DEFAULT_ENVIRONMENT;
  // What is refused without a look-up is refused before the task source (a Puppet server) is asked.
  precheckScope(b.scope as Scope);
  let task;
  let params;
  try {
    task = await ctx.tasks.describe(environment, b.task);
    params = validateParams(task, (b.params ?? {}) as Record<string, unknown>);
  } catch (err) {
    catalogError(err);
  }
  if (b.noop && task.metadata.supports_noop !== true) throw apiError(ApiErrorCode.validation, `task ${task.name} does not support noop`);
  const { nodes } = await resolveScope(ctx.scope, b.scope, environment);
  const timeoutS = b.timeout ?? ctx.nodeTimeoutS;
  const input = b.noop ? { ...params, _noop: true } : params;
  return {
    type: 'task',
    environment,
    task: task.name,
    params,
    sensitive: sensitiveParameters(task),
    options: { concurrency: b.concurrency ?? 0, noop: b.noop === true, timeout_s: timeoutS, ...(b.description ? { description: b.description } : {}) },
    owner,
    scope: b.scope as Record<string, unknown>,
    nodes,
    action: taskRunAction(task, input, timeoutS),
  };
}

/** The flags every node's run gets. */
export function deployFlags(b: Pick<DeployBody, 'environment' | 'noop' | 'debug' | 'trace' | 'evaltrace' | 'enforce_environment'>): string[] {
  const flags: string[] = [];
  if (b.enforce_environment !== false) flags.push('--environment', b.environment);
  if (b.noop === true) flags.push('--noop');
  else if (b.noop === false) flags.push('--no-noop');
  if (b.debug) flags.push('--debug');
  if (b.trace) flags.push('--trace');
  if (b.evaltrace) flags.push('--evaltrace');
  return flags;
}

/** The deploy job `b` asks for: Puppet runs over its scope (the whole environment by default). */
export async function deploySubmission(ctx: PuppetFaceContext, b: DeployBody, owner: string): Promise<JobSubmission> {
  try {
    ctx.catalog.environmentDir(b.environment);
  } catch (err) {
    catalogError(err);
  }
  if (b.scope && b.target !== undefined) throw apiError(ApiErrorCode.validation, 'give either scope or the deprecated target, not both');
  const scope: Scope = b.scope ?? (b.target ? { application: b.target } : { whole_environment: true });
  // resolveScope refuses what needs no look-up (whole_environment: false, no nodes) before any.
  const resolved = await resolveScope(ctx.scope, scope, b.environment);

  const enforce = b.enforce_environment !== false;
  const action: JobAction = { module: PUPPET_RUN_MODULE, action: 'run', params: { flags: deployFlags(b), env: [] } };
  if (!enforce) {
    // Each node runs in its own environment: the classifier's when it has one, else the agent's.
    const envs = await classifiedEnvironments(ctx.scope, resolved);
    const perNode: Record<string, string[]> = {};
    for (const n of resolved.nodes) {
      const env = envs.get(n);
      if (env) perNode[n] = ['--environment', env];
    }
    if (Object.keys(perNode).length > 0) action.node_flags = perNode;
  }
  const ordered = Object.keys(resolved.deps).length > 0;
  return {
    type: 'deploy',
    environment: b.environment,
    params: {},
    sensitive: [],
    options: {
      concurrency: b.concurrency ?? 0,
      noop: b.noop === true,
      timeout_s: b.timeout ?? ctx.nodeTimeoutS,
      enforce_environment: enforce,
      ...(ordered ? { ordered: true } : {}),
      ...(b.description ? { description: b.description } : {}),
      ...(b.debug ? { debug: true } : {}),
      ...(b.trace ? { trace: true } : {}),
      ...(b.evaltrace ? { evaltrace: true } : {}),
    },
    owner,
    scope: scope as Record<string, unknown>,
    nodes: resolved.nodes,
    ...(ordered ? { deps: resolved.deps } : {}),
    action,
  };
}
