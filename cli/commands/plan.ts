// `baton plan run|show|list` and `baton plans`: the Puppet orchestrator's plans and plan jobs
// (POST /command/plan_run, GET /plan_jobs[/:id], GET /plans).
import type { Command } from 'commander';
import { action } from '../action.ts';
import { parseParams, positiveInt } from '../args.ts';
import { addApiOptions, apiClient, type ApiOptions } from '../client.ts';
import { usageError, type ExitCode } from '../errors.ts';
import { bold, duration, out, printJson, table } from '../format.ts';
import { ENDED_PLAN_STATES, followPlanJob, planExitCode, planJobPath, stepLine, type PlanJobJson } from '../plan-follow.ts';

interface PlanRunOptions extends ApiOptions {
  params?: string;
  environment?: string;
  description?: string;
  wait: boolean;
}

const PLAN_NAME_RE = /^[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)*$/;

/** The body of POST /orchestrator/v1/command/plan_run (and, with the scheduling keys, schedule_plan). */
export function planRunBody(name: string, pairs: readonly string[], o: Pick<PlanRunOptions, 'params' | 'environment' | 'description'>): Record<string, unknown> {
  if (!PLAN_NAME_RE.test(name)) throw usageError(`'${name}' is not a plan name (module::plan, or module for its init plan)`);
  return {
    plan_name: name,
    params: parseParams(o.params, pairs),
    ...(o.environment ? { environment: o.environment } : {}),
    ...(o.description ? { description: o.description } : {}),
  };
}

function planJobId(id: string): string {
  if (!/^[0-9]{1,18}$/.test(id)) throw usageError(`'${id}' is not a plan job id (a number, as baton plan list shows)`);
  return id;
}

async function showPlanJob(o: ApiOptions, id: string): Promise<ExitCode> {
  const job = (await apiClient(o).get(planJobPath(id))) as PlanJobJson;
  if (o.json) {
    printJson(job);
    return planExitCode(job);
  }
  out(`${bold(`Plan job ${job.name}`)}  plan ${job.options.plan_name}  ${job.state}`);
  out(`owner ${job.owner.login}, environment ${job.options.environment}, created ${job.created_timestamp ?? '?'}${job.duration !== null ? `, took ${duration(job.duration * 1000)}` : ''}`);
  if (job.options.description) out(`description: ${job.options.description}`);
  if (Object.keys(job.options.parameters).length > 0) out(`params: ${JSON.stringify(job.options.parameters)}`);
  const steps = job.steps ?? [];
  if (steps.length > 0) {
    out();
    out(table(['step', 'type', 'what', 'state', 'jobs', 'outcome'], steps.map((s) => [s.name ?? s.path, s.type, String(s[s.type] ?? ''), s.state, s.jobs.map((j) => j.name).join(', '), stepLine(s).split(' — ')[1] ?? ''])));
  }
  if (ENDED_PLAN_STATES.includes(job.state) && job.result !== null && job.result !== undefined) out(`result: ${JSON.stringify(job.result)}`);
  return planExitCode(job);
}

export function registerPlan(program: Command): void {
  const plan = program.command('plan').description('run plans (ordered steps across nodes) and show plan jobs');

  addApiOptions(
    plan
      .command('run')
      .description('run a plan and follow it step by step (POST /orchestrator/v1/command/plan_run)')
      .argument('<plan>', 'the plan: module::plan, or module for module::init')
      .argument('[params...]', 'parameters as key=value; values that parse as JSON are JSON (targets=\'["a","b"]\')')
      .option('--params <json>', 'parameters as a JSON object, or @file holding one (key=value arguments override it)')
      .option('--environment <name>', 'code environment (default production)')
      .option('--description <text>', 'a description of the plan job')
      .option('--no-wait', 'print the plan job id and return instead of following it'),
  ).action(
    action(async (name: string, pairs: string[], o: PlanRunOptions) => {
      const client = apiClient(o);
      const res = (await client.post('/orchestrator/v1/command/plan_run', planRunBody(name, pairs, o))) as { name: string };
      if (!o.wait) {
        if (o.json) return printJson({ plan_job: res.name });
        return out(`Started plan job ${res.name} (plan ${name}). See it with: baton plan show ${res.name}`);
      }
      return followPlanJob(client, res.name, { json: o.json });
    }),
  );

  addApiOptions(plan.command('show').description('show a plan job and its steps (GET /orchestrator/v1/plan_jobs/:id)').argument('<id>', 'plan job id').option('--watch', 'follow the plan job while it runs')).action(
    action(async (id: string, o: ApiOptions & { watch?: boolean }) => {
      planJobId(id);
      if (!o.watch) return showPlanJob(o, id);
      const j = (await apiClient(o).get(planJobPath(id))) as PlanJobJson;
      if (ENDED_PLAN_STATES.includes(j.state)) return showPlanJob(o, id);
      return followPlanJob(apiClient(o), id, { json: o.json });
    }),
  );

  addApiOptions(plan.command('list').description('list recent plan jobs (GET /orchestrator/v1/plan_jobs)').option('--limit <n>', 'how many', '20')).action(
    action(async (o: ApiOptions & { limit: string }) => {
      const res = await apiClient(o).get(`/orchestrator/v1/plan_jobs?limit=${positiveInt('--limit', o.limit)}`);
      if (o.json) return printJson(res);
      const items = res.items as PlanJobJson[];
      if (items.length === 0) return out('No plan jobs yet.');
      out(table(['id', 'plan', 'state', 'environment', 'owner', 'created'], items.map((j) => [j.name, j.options.plan_name, j.state, j.options.environment, j.owner.login, j.created_timestamp])));
    }),
  );

  addApiOptions(program.command('plans').description('list the plans of an environment (GET /orchestrator/v1/plans)').option('--environment <name>', 'code environment (default production)')).action(
    action(async (o: ApiOptions & { environment?: string }) => {
      const res = await apiClient(o).get(`/orchestrator/v1/plans${o.environment ? `?environment=${encodeURIComponent(o.environment)}` : ''}`);
      if (o.json) return printJson(res);
      const items = res.items as { name: string }[];
      if (items.length === 0) return out('No plans in this environment.');
      for (const p of items) out(p.name);
    }),
  );
}
