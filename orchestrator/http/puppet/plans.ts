// The Puppet face's plans, as Puppet Enterprise's orchestrator API has them: POST /command/plan_run
// and /command/stop_plan, GET /plan_jobs (paginated), /plan_jobs/:id (with Baton's `steps`),
// /plan_jobs/:id/events?start=N, GET /plans and /plans/:module/:name. Each step runs as an ordinary
// task job (visible in /jobs, linked to its plan job), built by the same builder as /command/task.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { planRunBodySchema, stopPlanBodySchema } from '../../../schemas/plan-api.ts';
import { Permission } from '../../auth.ts';
import { queryCertnames } from '../../deploy/scope.ts';
import { parameterSummary } from '../../plans/loader.ts';
import { PLAN_NAME_RE } from '../../plans/model.ts';
import type { PlanEvent, PlanJobRecord, StepRecord } from '../../plans/service.ts';
import { apiError, ApiErrorCode, catalogError } from '../errors.ts';
import { baseUrl, demand, intQuery, principal, requires, type AnyFastify } from '../request.ts';
import { DEFAULT_ENVIRONMENT, PUPPET_PREFIX, type PuppetFaceContext } from './context.ts';
import { maskParams } from './present.ts';
import { pageQuery } from './paging.ts';
import { deploySubmission, taskSubmission, type TaskBody } from './submissions.ts';

type PlanRunBody = FromSchema<typeof planRunBodySchema>;
type StopPlanBody = FromSchema<typeof stopPlanBodySchema>;

const ID_RE = /^[0-9]{1,18}$/;
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export function planJobUrl(base: string, id: string): string {
  return `${base}${PUPPET_PREFIX}/plan_jobs/${id}`;
}

function stepJson(base: string, s: StepRecord): Record<string, unknown> {
  return {
    path: s.path,
    name: s.name,
    type: s.kind,
    [s.kind]: s.what,
    state: s.state,
    node_count: s.nodes?.length ?? null,
    jobs: s.job_ids.map((id) => ({ id: `${base}${PUPPET_PREFIX}/jobs/${id}`, name: id })),
    result: s.result ?? null,
    ...(s.error ? { error: s.error } : {}),
    start_timestamp: iso(s.start_ms),
    finish_timestamp: iso(s.finish_ms),
  };
}

/** A plan job as GET /plan_jobs/:id shows it; sensitive parameters masked. */
export function planJobJson(base: string, j: PlanJobRecord, history: { state: string; enter_time: string }[], steps: StepRecord[] | null): Record<string, unknown> {
  const url = planJobUrl(base, j.id);
  return {
    id: url,
    name: j.id,
    state: j.state,
    options: { description: j.description, plan_name: j.plan_name, parameters: maskParams(j.params, j.sensitive), environment: j.environment },
    owner: { login: j.owner },
    environment: { name: j.environment },
    result: j.result ?? null,
    timestamp: history.at(-1)?.enter_time ?? iso(j.created_ms),
    created_timestamp: iso(j.created_ms),
    started_timestamp: iso(j.started_ms),
    finished_timestamp: iso(j.finished_ms),
    duration: j.finished_ms === undefined ? null : (j.finished_ms - j.created_ms) / 1000,
    status: history.map((h, i) => ({ state: h.state, enter_time: h.enter_time, exit_time: history[i + 1]?.enter_time ?? null })),
    events: { id: `${url}/events` },
    ...(j.scheduled_job ? { scheduled_job: { id: `${base}${PUPPET_PREFIX}/scheduled_jobs/${j.scheduled_job.id}`, name: j.scheduled_job.id, scheduled_for: j.scheduled_job.scheduled_for, late: j.scheduled_job.late } } : {}),
    ...(steps ? { steps: steps.map((s) => stepJson(base, s)) } : {}),
  };
}

export function planEventJson(e: PlanEvent): Record<string, unknown> {
  return { id: String(e.id), type: e.type, timestamp: e.timestamp, details: e.details };
}

export function registerPlans(app: AnyFastify, ctx: PuppetFaceContext): void {
  const prefix = PUPPET_PREFIX;
  ctx.plans.attach({
    queryNodes: (query) => queryCertnames(ctx.scope, query),
    taskJob: (req, owner) => taskSubmission(ctx, { task: req.task, params: req.params, scope: { nodes: req.nodes }, environment: req.environment, description: req.description } as TaskBody, owner),
    deployJob: (req, owner) => deploySubmission(ctx, { environment: req.environment, noop: req.noop, scope: { nodes: req.nodes }, description: req.description }, owner),
  });

  app.post<{ Body: PlanRunBody }>('/command/plan_run', { schema: { body: planRunBodySchema }, preValidation: requires(Permission.jobsRun) }, async (req, reply) => {
    const b = req.body;
    const { id } = await ctx.plans.run({ plan_name: b.plan_name, params: (b.params ?? {}) as Record<string, unknown>, ...(b.environment ? { environment: b.environment } : {}), ...(b.description ? { description: b.description } : {}) }, principal(req));
    return reply.code(202).send({ id: planJobUrl(baseUrl(req), id), name: id });
  });

  async function planJobOr404(id: string): Promise<PlanJobRecord> {
    const rec = ID_RE.test(id) ? await ctx.plans.get(id) : null;
    if (!rec) throw apiError(ApiErrorCode.notFound, `no plan job named ${id}`, { plan_job: id });
    return rec;
  }

  const stopPlan = async (req: FastifyRequest<{ Body: StopPlanBody }>, reply: FastifyReply) => {
    const id = String(req.body.plan_job);
    await planJobOr404(id);
    const rec = (await ctx.plans.stop(id, principal(req).login, req.body.force === true))!;
    return reply.code(202).send({ plan_job: { id: planJobUrl(baseUrl(req), id), name: id, state: rec.state } });
  };
  app.post<{ Body: StopPlanBody }>('/command/stop_plan', { schema: { body: stopPlanBodySchema }, preValidation: requires(Permission.jobsStop) }, stopPlan);

  app.get('/plan_jobs', async (req) => {
    demand(req, Permission.jobsView);
    const { limit, offset, order, orderBy } = pageQuery(req.query, ['timestamp', 'name'], 'desc');
    const { ids, total } = await ctx.plans.ids({ limit, offset, order });
    const base = baseUrl(req);
    const items = (await Promise.all(ids.map(async (id) => {
      const rec = await ctx.plans.get(id);
      return rec ? planJobJson(base, rec, await ctx.plans.history(id), null) : null;
    }))).filter((x) => x !== null);
    return { items, pagination: { limit, offset, order, order_by: orderBy, total } };
  });

  app.get('/plan_jobs/:id', async (req) => {
    demand(req, Permission.jobsView);
    const rec = await planJobOr404((req.params as { id: string }).id);
    return planJobJson(baseUrl(req), rec, await ctx.plans.history(rec.id), await ctx.plans.steps(rec.id));
  });

  app.get('/plan_jobs/:id/events', async (req) => {
    demand(req, Permission.jobsView);
    const rec = await planJobOr404((req.params as { id: string }).id);
    const start = intQuery((req.query as { start?: string }).start, 'start', 1, 1);
    const events = await ctx.plans.events(rec.id, start);
    const next = events.length > 0 ? events.at(-1)!.id + 1 : start;
    return { items: events.map(planEventJson), 'next-events': { id: `${planJobUrl(baseUrl(req), rec.id)}/events?start=${next}`, event: String(next) } };
  });

  const environmentOf = (req: FastifyRequest) => (req.query as { environment?: string }).environment ?? DEFAULT_ENVIRONMENT;

  app.get('/plans', async (req) => {
    demand(req, Permission.tasksView);
    const environment = environmentOf(req);
    let names: string[] = [];
    try {
      names = ctx.plans.plans.list(environment);
    } catch (err) {
      catalogError(err);
    }
    const base = baseUrl(req);
    return { environment: { name: environment, code_id: null }, items: names.map((name) => ({ id: `${base}${prefix}/plans/${planPath(name)}`, name })) };
  });

  app.get('/plans/:module/:name', async (req) => {
    demand(req, Permission.tasksView);
    const { module, name } = req.params as { module: string; name: string };
    // :module and :name were checked against their grammar before the route ran (http/identifiers.ts).
    const planName = name === 'init' ? module : `${module}::${name}`;
    if (!PLAN_NAME_RE.test(planName)) throw apiError(ApiErrorCode.notFound, `no plan named ${planName}`, { plan: planName });
    const environment = environmentOf(req);
    let plan;
    try {
      plan = ctx.plans.plans.load(environment, planName);
    } catch (err) {
      catalogError(err);
    }
    return {
      id: `${baseUrl(req)}${prefix}/plans/${module}/${name}`,
      name: planName,
      environment: { name: environment, code_id: null },
      metadata: { description: plan.description ?? '', parameters: parameterSummary(plan.parameters), private: plan.private === true },
      steps: plan.steps.map((s, i) => ({ index: i + 1, name: s.name ?? null, type: s.kind, [s.kind]: s.what, ...(s.description ? { description: s.description } : {}), ...(s.catch_errors ? { catch_errors: true } : {}), ...(s.batch_size !== undefined ? { batch_size: s.batch_size } : {}), ...(s.max_failures !== undefined ? { max_failures: s.max_failures } : {}), line: s.line })),
    };
  });
}

/** `module::a::b` → `module/a::b`; `module` → `module/init`. */
function planPath(name: string): string {
  const [module, ...rest] = name.split('::');
  return `${module}/${rest.length === 0 ? 'init' : rest.join('::')}`;
}
