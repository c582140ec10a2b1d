// POST /orchestrator/v1/command/deploy: Puppet runs over a scope of nodes in an environment,
// through the `pxp-module-puppet run` PXP action (Puppet's pxp-module-puppet, or Baton's agent).
import { commandDeployBodySchema } from '../../../schemas/orchestrator-api.ts';
import { Permission } from '../../auth.ts';
import { idempotentJob } from '../idempotency.ts';
import { baseUrl, principal, requires, type AnyFastify } from '../request.ts';
import { PUPPET_PREFIX, type PuppetFaceContext } from './context.ts';
import { deploySubmission, type DeployBody } from './submissions.ts';

export { deployFlags } from './submissions.ts';

/** The route, inside the Puppet face's plugin (paths relative to its prefix). */
export function registerDeploy(app: AnyFastify, ctx: PuppetFaceContext): void {
  app.post<{ Body: DeployBody }>('/command/deploy', { schema: { body: commandDeployBodySchema }, preValidation: requires(Permission.jobsRun) }, async (req, reply) => {
    const submission = await deploySubmission(ctx, req.body, principal(req).login);
    const answer = (id: string) => ({ job: { id: `${baseUrl(req)}${PUPPET_PREFIX}/jobs/${id}`, name: id } });
    const idempotency = idempotentJob(req, 202, () => ({}), answer);
    const job = await ctx.engine.submit({ ...submission, ...(idempotency ? { idempotency } : {}) });
    return reply.code(202).send(answer(job.id));
  });
}
