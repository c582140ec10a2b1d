// The Puppet face's schedules: POST /command/schedule_task, schedule_deploy and schedule_plan (the
// immediate command's body plus `scheduled_time` and `schedule_options`), GET /scheduled_jobs
// (paginated), GET, PATCH/PUT and DELETE /scheduled_jobs/:id; and what starts an occurrence's job
// (the same builders as the immediate commands, with the schedule's owner).
import type { FastifyRequest } from 'fastify';
import { compile, describeErrors } from '../../../protocol/validate.ts';
import { scheduleDeployBodySchema, schedulePlanBodySchema, scheduleTaskBodySchema, scheduleUpdateBodySchema } from '../../../schemas/schedule-api.ts';
import { Permission, type Principal } from '../../auth.ts';
import type { PlanRunRequest } from '../../plans/service.ts';
import type { Occurrence, OccurrenceStarter, ScheduleRecord, ScheduleSpec, ScheduleType } from '../../schedules/service.ts';
import { ScheduleError, timingOf, type ScheduleOptions, type Timing } from '../../schedules/timing.ts';
import { apiError, ApiErrorCode } from '../errors.ts';
import { baseUrl, demand, principal, requires, type AnyFastify } from '../request.ts';
import { DEFAULT_ENVIRONMENT, PUPPET_PREFIX, type PuppetFaceContext } from './context.ts';
import { maskParams } from './present.ts';
import { pageQuery } from './paging.ts';
import { deploySubmission, taskPermission, taskSubmission, type DeployBody, type TaskBody } from './submissions.ts';

type Body = Record<string, unknown> & { scheduled_time?: string | null; schedule_options?: ScheduleOptions | null };


const SCHEMA_OF: Record<ScheduleType, { $id: string }> = { task: scheduleTaskBodySchema, deploy: scheduleDeployBodySchema, plan: schedulePlanBodySchema };
const validatorOf = (t: ScheduleType) => compile<Body>(SCHEMA_OF[t]);
const ORDER_BY = ['next_run', 'scheduled_time', 'name'] as const;

/** A schedule error (bad time, cron, time zone) as the face's 400, its reason in `details.reason`. */
function checkedTiming(b: Body, nowMs: number): Timing {
  try {
    return timingOf(b.scheduled_time, b.schedule_options, nowMs);
  } catch (err) {
    if (err instanceof ScheduleError) throw apiError(ApiErrorCode.validation, err.message, { reason: err.code, ...err.details });
    throw err;
  }
}

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

function splitBody(b: Body): { body: Record<string, unknown>; scheduled_time: string | null; schedule_options: ScheduleOptions | null } {
  const { scheduled_time, schedule_options, ...body } = b;
  return { body, scheduled_time: scheduled_time ?? null, schedule_options: schedule_options ?? null };
}

/**
 * Checks a schedule's body as the immediate command checks its own (task, parameters, scope,
 * plan), building the job and discarding it: what would fail later is refused now. Returns the
 * names of its sensitive parameters.
 */
async function checkBody(ctx: PuppetFaceContext, type: ScheduleType, body: Record<string, unknown>, who: Principal): Promise<string[]> {
  if (type === 'task') return (await taskSubmission(ctx, body as TaskBody, who.login)).sensitive;
  if (type === 'deploy') {
    await deploySubmission(ctx, body as DeployBody, who.login);
    return [];
  }
  return (await ctx.plans.check(body as unknown as PlanRunRequest, who)).sensitive;
}

function demandFor(req: FastifyRequest, type: ScheduleType, body: Record<string, unknown>): void {
  demand(req, Permission.jobsRun);
  if (type === 'task') demand(req, taskPermission(String(body.task)));
}

/** Starts an occurrence's job: built from the stored body, submitted as the schedule's owner, linked back to it. */
export function occurrenceStarter(ctx: PuppetFaceContext): OccurrenceStarter {
  return async (o: Occurrence) => {
    const s = o.schedule;
    if (s.type === 'plan') {
      const job = await ctx.plans.run(s.body as unknown as PlanRunRequest, { login: s.owner.login, permissions: s.owner.permissions }, { idempotencyKey: o.idempotencyKey, scheduled_job: o.scheduled_job });
      return { id: job.id, kind: 'plan_job' };
    }
    const sub = s.type === 'task' ? await taskSubmission(ctx, s.body as TaskBody, s.owner.login) : await deploySubmission(ctx, s.body as DeployBody, s.owner.login);
    const job = await ctx.engine.submit({ ...sub, options: { ...sub.options, scheduled_job: o.scheduled_job }, ...(o.idempotency ? { idempotency: o.idempotency } : {}) });
    return { id: job.id, kind: 'job' };
  };
}

/** A schedule as GET /scheduled_jobs shows it; sensitive parameters masked. */
export function scheduleJson(base: string, rec: ScheduleRecord, nextRunMs: number | null): Record<string, unknown> {
  const s = rec.spec;
  const b = s.body;
  const { task, plan_name, scope, environment, description, noop, params, ...jobOptions } = b;
  const start = s.timing.kind === 'once' ? s.timing.at_ms : s.timing.start_ms;
  const run = rec.last_run;
  const jobUrl = (kind: string, id: string) => `${base}${PUPPET_PREFIX}/${kind === 'plan_job' ? 'plan_jobs' : 'jobs'}/${id}`;
  return {
    id: `${base}${PUPPET_PREFIX}/scheduled_jobs/${s.id}`,
    name: s.id,
    type: s.type,
    ...(s.type === 'task' ? { task } : {}),
    ...(s.type === 'plan' ? { plan: plan_name } : {}),
    scope: scope ?? (s.type === 'deploy' ? { whole_environment: true } : null),
    environment: { name: (environment as string | undefined) ?? DEFAULT_ENVIRONMENT },
    owner: { login: s.owner.login },
    description: (description as string | undefined) ?? '',
    scheduled_time: iso(start),
    next_run: iso(nextRunMs),
    schedule_options: s.schedule_options ?? {},
    noop: noop === true,
    ...(s.type !== 'deploy' ? { params: maskParams((params ?? {}) as Record<string, unknown>, s.sensitive) } : {}),
    job_options: jobOptions,
    created_timestamp: iso(s.created_ms),
    updated_timestamp: iso(s.updated_ms),
    runs: rec.runs,
    last_run: run ? { job: { id: jobUrl(run.job_kind, run.job_id), name: run.job_id }, scheduled_for: run.scheduled_for, started_timestamp: run.started_at, late: run.late } : null,
    last_error: rec.last_error,
  };
}

export function registerSchedules(app: AnyFastify, ctx: PuppetFaceContext): void {
  ctx.schedules.attach(occurrenceStarter(ctx));
  const answer = (req: FastifyRequest, id: string) => ({ scheduled_job: { id: `${baseUrl(req)}${PUPPET_PREFIX}/scheduled_jobs/${id}`, name: id } });

  const create = (type: ScheduleType) => async (req: FastifyRequest<{ Body: Body }>, reply: import('fastify').FastifyReply) => {
    const { body, scheduled_time, schedule_options } = splitBody(req.body);
    demandFor(req, type, body);
    const timing = checkedTiming(req.body, Date.now());
    const who = principal(req);
    const sensitive = await checkBody(ctx, type, body, who);
    const spec = await ctx.schedules.create({ type, body, scheduled_time, schedule_options, timing, owner: { login: who.login, permissions: who.permissions }, sensitive });
    return reply.code(202).send(answer(req, spec.id));
  };
  app.post<{ Body: Body }>('/command/schedule_task', { schema: { body: scheduleTaskBodySchema }, preValidation: requires(Permission.jobsRun) }, create('task'));
  app.post<{ Body: Body }>('/command/schedule_deploy', { schema: { body: scheduleDeployBodySchema }, preValidation: requires(Permission.jobsRun) }, create('deploy'));
  app.post<{ Body: Body }>('/command/schedule_plan', { schema: { body: schedulePlanBodySchema }, preValidation: requires(Permission.jobsRun) }, create('plan'));

  async function scheduleOr404(id: string): Promise<ScheduleRecord> {
    const rec = /^[0-9]+$/.test(id) ? await ctx.schedules.get(id) : null;
    if (!rec) throw apiError(ApiErrorCode.notFound, `no scheduled job named ${id}`, { scheduled_job: id });
    return rec;
  }

  app.get('/scheduled_jobs', async (req) => {
    demand(req, Permission.jobsView);
    const q = req.query as Record<string, string | undefined>;
    const { limit, offset, order, orderBy } = pageQuery(q, ORDER_BY, 'asc');
    const type = q.type;
    if (type !== undefined && !['task', 'deploy', 'plan'].includes(type)) throw apiError(ApiErrorCode.validation, `query parameter 'type' must be task, deploy or plan, got '${type}'`);
    const all = (await ctx.schedules.all()).filter((r) => !type || r.spec.type === type);
    const rows = await Promise.all(all.map(async (r) => ({ r, next: await ctx.schedules.nextRunMs(r) })));
    const keyOf = (x: { r: ScheduleRecord; next: number | null }): number => {
      if (orderBy === 'name') return Number(x.r.spec.id);
      if (orderBy === 'scheduled_time') return x.r.spec.timing.kind === 'once' ? x.r.spec.timing.at_ms : (x.r.spec.timing.start_ms ?? 0);
      return x.next ?? Number.MAX_SAFE_INTEGER; // schedules that will not run again come last
    };
    rows.sort((x, y) => (keyOf(x) - keyOf(y)) * (order === 'asc' ? 1 : -1) || Number(x.r.spec.id) - Number(y.r.spec.id));
    const page = rows.slice(offset, limit > 0 ? offset + limit : undefined);
    const base = baseUrl(req);
    return { items: page.map((x) => scheduleJson(base, x.r, x.next)), pagination: { limit, offset, order, order_by: orderBy, total: rows.length, ...(type ? { type } : {}) } };
  });

  app.get('/scheduled_jobs/:id', async (req) => {
    demand(req, Permission.jobsView);
    const rec = await scheduleOr404((req.params as { id: string }).id);
    return scheduleJson(baseUrl(req), rec, await ctx.schedules.nextRunMs(rec));
  });

  // An update: any key of the body (command or scheduling keys; null removes one), merged into
  // the stored body and checked as a new schedule of its type is.
  const update = async (req: FastifyRequest<{ Body: Body }>) => {
    const rec = await scheduleOr404((req.params as { id: string }).id);
    const old = rec.spec;
    const merged: Body = { ...old.body, ...(old.scheduled_time !== null ? { scheduled_time: old.scheduled_time } : {}), ...(old.schedule_options !== null ? { schedule_options: old.schedule_options } : {}) };
    for (const [k, v] of Object.entries(req.body)) {
      if (v === null) delete merged[k];
      else merged[k] = v;
    }
    // A new time that lies in the past is refused; a kept one that has passed (a repeating schedule's start) is not asked for again.
    if (!('scheduled_time' in req.body) && old.timing.kind !== 'once' && old.scheduled_time !== null && Date.parse(old.scheduled_time) <= Date.now()) delete merged.scheduled_time;
    const validate = validatorOf(old.type);
    if (!validate(merged)) throw apiError(ApiErrorCode.validation, describeErrors(validate.errors, 'body'));
    const { body, scheduled_time, schedule_options } = splitBody(merged);
    demandFor(req, old.type, body);
    const timing = checkedTiming(merged, Date.now());
    const sensitive = await checkBody(ctx, old.type, body, principal(req));
    const spec: ScheduleSpec | null = await ctx.schedules.update(old, { type: old.type, body, scheduled_time, schedule_options, timing, sensitive });
    if (!spec) throw apiError(ApiErrorCode.notFound, `no scheduled job named ${old.id}`, { scheduled_job: old.id });
    const now = await ctx.schedules.get(spec.id);
    return scheduleJson(baseUrl(req), now!, await ctx.schedules.nextRunMs(now!));
  };
  app.patch<{ Body: Body }>('/scheduled_jobs/:id', { schema: { body: scheduleUpdateBodySchema }, preValidation: requires(Permission.jobsRun) }, update);
  app.put<{ Body: Body }>('/scheduled_jobs/:id', { schema: { body: scheduleUpdateBodySchema }, preValidation: requires(Permission.jobsRun) }, update);

  app.delete('/scheduled_jobs/:id', { preValidation: requires(Permission.jobsRun) }, async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const rec = await scheduleOr404(id);
    if (!(await ctx.schedules.remove(rec.spec.id))) throw apiError(ApiErrorCode.notFound, `no scheduled job named ${id}`, { scheduled_job: id });
    return reply.code(204).send();
  });
}
