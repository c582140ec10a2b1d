// The Puppet orchestrator v1 face: /orchestrator/v1/command/{task,stop}, jobs, inventory, tasks.
import type { FromSchema } from 'json-schema-to-ts';
import { commandStopBodySchema, commandTaskBodySchema, inventoryBodySchema } from '../../../schemas/orchestrator-api.ts';
import { Permission } from '../../auth.ts';
import { inventoryWithFacts, queryNodes } from '../../deploy/scope.ts';
import { ENDED_JOB_STATES } from '../../engine/store.ts';
import { apiError, ApiErrorCode, catalogError, sendError } from '../errors.ts';
import { setUpFace } from '../face.ts';
import { idempotentJob, registerIdempotency } from '../idempotency.ts';
import { baseUrl, demand, intQuery, principal, requires, type AnyFastify } from '../request.ts';
import { DEFAULT_ENVIRONMENT, PUPPET_PREFIX, type PuppetFaceContext } from './context.ts';
import { registerDeploy } from './deploy.ts';
import { registerPlans } from './plans.ts';
import { registerSchedules } from './schedules.ts';
import { pageQuery } from './paging.ts';
import { eventJson, nextEvents, nodeJson } from './present.ts';
import { filterJobIds, jobView } from './job-view.ts';
import { taskPermission, taskSubmission, type TaskBody } from './submissions.ts';

// Kept for orchestrator/index.ts, which imports the app's type from here (its home is request.ts).
export type { AnyFastify };

type StopBody = FromSchema<typeof commandStopBodySchema>;
type InventoryBody = FromSchema<typeof inventoryBodySchema>;

/**
 * The face as a fastify plugin, registered with the prefix PUPPET_PREFIX: its routes, its error
 * and not-found handlers (Puppet's JSON errors) and its body validation (route schemas).
 */
export async function puppetFace(app: AnyFastify, ctx: PuppetFaceContext): Promise<void> {
  const prefix = PUPPET_PREFIX;
  setUpFace(app, sendError);
  registerIdempotency(app, ctx.store, 'puppet', ['task', 'deploy', 'stop'].map((c) => ({ method: 'POST', url: `${prefix}/command/${c}` })));

  app.post<{ Body: TaskBody }>('/command/task', { schema: { body: commandTaskBodySchema }, preValidation: requires(Permission.jobsRun) }, async (req, reply) => {
    demand(req, taskPermission(req.body.task));
    const submission = await taskSubmission(ctx, req.body, principal(req).login);
    const answer = (id: string) => ({ job: { id: `${baseUrl(req)}${prefix}/jobs/${id}`, name: id } });
    const idempotency = idempotentJob(req, 202, () => ({}), answer);
    const job = await ctx.engine.submit({ ...submission, ...(idempotency ? { idempotency } : {}) });
    return reply.code(202).send(answer(job.id));
  });

  registerDeploy(app, ctx);
  registerSchedules(app, ctx);
  registerPlans(app, ctx);

  app.post<{ Body: StopBody }>('/command/stop', { schema: { body: commandStopBodySchema }, preValidation: requires(Permission.jobsStop) }, async (req, reply) => {
    const b = req.body;
    const id = String(b.job);
    const job = await ctx.store.getJob(id);
    if (!job) throw apiError(ApiErrorCode.unknownJob, `no job named ${id}`, { job: id });
    if (!ENDED_JOB_STATES.includes(job.state)) await ctx.engine.stop(id, principal(req).login, b.force === true);
    const all = ['new', 'ready', 'running', 'finished', 'failed', 'errored', 'skipped'];
    const counts = await ctx.store.counts(id);
    return reply.code(202).send({ job: { id: `${baseUrl(req)}${prefix}/jobs/${id}`, name: id, nodes: Object.fromEntries(all.map((s) => [s, counts[s] ?? 0])) } });
  });

  app.get('/jobs', async (req) => {
    demand(req, Permission.jobsView);
    const q = req.query as Record<string, string | undefined>;
    const { limit, offset, order, orderBy } = pageQuery(q, ['timestamp', 'name'], 'desc');
    const type = q.type;
    if (type !== undefined && !['task', 'deploy', 'command', 'deployment'].includes(type)) throw apiError(ApiErrorCode.validation, `query parameter 'type' must be task or deploy, got '${type}'`);
    const { ids, total } = await ctx.store.jobIds({ limit: type ? 0 : limit, offset: type ? 0 : offset, order });
    const matching = type ? await filterJobIds(ctx.store, ids, { type }) : ids;
    const page = type ? matching.slice(offset, limit > 0 ? offset + limit : undefined) : matching;
    const base = baseUrl(req);
    const items = (await Promise.all(page.map((id) => jobView(ctx.store, base, id)))).filter((j) => j !== null);
    return { items, pagination: { limit, offset, order, order_by: orderBy, total: type ? matching.length : total, ...(type ? { type } : {}) } };
  });

  async function jobOr404(id: string) {
    const job = /^[0-9]+$/.test(id) ? await ctx.store.getJob(id) : null;
    if (!job) throw apiError(ApiErrorCode.unknownJob, `no job named ${id}`, { job: id });
    return job;
  }

  app.get('/jobs/:id', async (req) => {
    demand(req, Permission.jobsView);
    return jobView(ctx.store, baseUrl(req), await jobOr404((req.params as { id: string }).id));
  });

  app.get('/jobs/:id/nodes', async (req) => {
    demand(req, Permission.jobsView);
    const job = await jobOr404((req.params as { id: string }).id);
    const q = req.query as Record<string, string | undefined>;
    const limit = intQuery(q.limit, 'limit', 0);
    const offset = intQuery(q.offset, 'offset', 0);
    let nodes = await ctx.store.getNodes(job.id);
    if (q.state) nodes = nodes.filter((n) => n.state === q.state);
    const total = nodes.length;
    const page = nodes.slice(offset, limit > 0 ? offset + limit : undefined);
    const latest = nodes.reduce((m, n) => Math.max(m, n.latest_event_id ?? 0), 0);
    return { items: page.map(nodeJson), 'next-events': nextEvents(baseUrl(req), job.id, latest + 1), pagination: { limit, offset, total } };
  });

  app.get('/jobs/:id/events', async (req) => {
    demand(req, Permission.jobsView);
    const job = await jobOr404((req.params as { id: string }).id);
    const start = intQuery((req.query as { start?: string }).start, 'start', 1, 1);
    const events = await ctx.store.events(job.id, start);
    const next = events.length > 0 ? events.at(-1)!.id + 1 : start;
    return { items: events.map(eventJson), 'next-events': nextEvents(baseUrl(req), job.id, next) };
  });

  app.get('/jobs/:id/report', async (req) => {
    demand(req, Permission.jobsView);
    const job = await jobOr404((req.params as { id: string }).id);
    const events = await ctx.store.events(job.id, 1, 1_000_000);
    const nodes = await ctx.store.getNodes(job.id);
    return {
      report: nodes.map((n) => ({
        node: n.name,
        state: n.state,
        timestamp: n.finish_ms ? new Date(n.finish_ms).toISOString() : null,
        events: events.filter((e) => e.details.node === n.name).map(eventJson),
      })),
    };
  });

  app.get('/inventory', async (req) => {
    demand(req, Permission.inventoryView);
    // Baton's extensions: ?query= (PQL, or a PuppetDB AST as JSON) keeps the nodes it selects;
    // ?facts=true adds each node's facts (PuppetDB's when it is the query source).
    const q = req.query as { query?: string; facts?: string };
    const facts = q.facts === 'true';
    if (q.query !== undefined && q.query !== '') {
      const nodes = await queryNodes(ctx.scope, q.query, { facts });
      return { items: nodes.map((n) => ({ ...ctx.inventory.get(n.certname), environment: n.environment, ...(facts ? { facts: n.facts } : {}) })) };
    }
    if (!facts) return { items: ctx.inventory.all() };
    const known = new Map((await inventoryWithFacts(ctx.scope)).map((n) => [n.certname, n]));
    return { items: ctx.inventory.all().map((i) => ({ ...i, facts: known.get(i.name)?.facts ?? {} })) };
  });

  app.get('/inventory/:node', async (req) => {
    demand(req, Permission.inventoryView);
    return ctx.inventory.get((req.params as { node: string }).node);
  });

  app.post<{ Body: InventoryBody }>('/inventory', { schema: { body: inventoryBodySchema }, preValidation: requires(Permission.inventoryView) }, async (req) => {
    const b = req.body;
    return { items: b.nodes.map((n) => ctx.inventory.get(n)) };
  });

  app.get('/tasks', async (req) => {
    demand(req, Permission.tasksView);
    const environment = (req.query as { environment?: string }).environment ?? DEFAULT_ENVIRONMENT;
    let names: string[] = [];
    try {
      names = await ctx.tasks.list(environment);
    } catch (err) {
      catalogError(err);
    }
    return {
      environment: { name: environment, code_id: null },
      items: names.map((name) => ({ id: `${baseUrl(req)}${prefix}/tasks/${name.replace('::', '/')}`, name })),
    };
  });

  app.get('/tasks/:module/:task', async (req) => {
    demand(req, Permission.tasksView);
    const { module, task } = req.params as { module: string; task: string };
    const environment = (req.query as { environment?: string }).environment ?? DEFAULT_ENVIRONMENT;
    try {
      const t = await ctx.tasks.describe(environment, task === 'init' ? module : `${module}::${task}`);
      return { id: `${baseUrl(req)}${prefix}/tasks/${module}/${task}`, name: t.name, environment: { name: environment, code_id: null }, metadata: t.metadata, files: t.files };
    } catch (err) {
      catalogError(err);
    }
  });
}
