// POST /orchestrator/v1/command/deploy: Puppet runs over a scope of nodes in an environment,
// through the `pxp-module-puppet run` PXP action (Puppet's pxp-module-puppet, or Baton's agent).
import type { FromSchema } from 'json-schema-to-ts';
import { PUPPET_RUN_MODULE } from '../../../protocol/pxp.ts';
import { commandDeployBodySchema } from '../../../schemas/orchestrator-api.ts';
import { Permission } from '../../auth.ts';
import { classifiedEnvironments, resolveScope, type Scope } from '../../deploy/scope.ts';
import type { JobAction } from '../../engine/engine.ts';
import { apiError, ApiErrorCode, catalogError } from '../errors.ts';
import { idempotentJob } from '../idempotency.ts';
import { baseUrl, principal, requires, type AnyFastify } from '../request.ts';
import { PUPPET_PREFIX, type PuppetFaceContext } from './context.ts';

type DeployBody = FromSchema<typeof commandDeployBodySchema>;

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

/** The route, inside the Puppet face's plugin (paths relative to its prefix). */
export function registerDeploy(app: AnyFastify, ctx: PuppetFaceContext): void {
  app.post<{ Body: DeployBody }>('/command/deploy', { schema: { body: commandDeployBodySchema }, preValidation: requires(Permission.jobsRun) }, async (req, reply) => {
    const b = req.body;
    try {
      ctx.catalog.environmentDir(b.environment);
    } catch (err) {
      catalogError(err);
    }
    if (b.scope && b.target !== undefined) throw apiError(ApiErrorCode.validation, 'give either scope or the deprecated target, not both');
    const scope: Scope = b.scope ?? (b.target ? { application: b.target } : { whole_environment: true });
    if (scope.whole_environment === false) throw apiError(ApiErrorCode.validation, 'scope.whole_environment must be true when given');
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
    const answer = (id: string) => ({ job: { id: `${baseUrl(req)}${PUPPET_PREFIX}/jobs/${id}`, name: id } });
    const idempotency = idempotentJob(req, 202, () => ({}), answer);
    const job = await ctx.engine.submit({
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
      owner: principal(req).login,
      scope: scope as Record<string, unknown>,
      nodes: resolved.nodes,
      ...(ordered ? { deps: resolved.deps } : {}),
      action,
      ...(idempotency ? { idempotency } : {}),
    });
    return reply.code(202).send(answer(job.id));
  });
}
