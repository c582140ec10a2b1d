// `baton schedule task|deploy|plan|list|show|delete`: the Puppet orchestrator's scheduled jobs
// (POST /command/schedule_task, schedule_deploy, schedule_plan; /scheduled_jobs).
import type { Command } from 'commander';
import { action } from '../action.ts';
import { addScopeOptions, type ScopeFlags } from '../args.ts';
import { addApiOptions, apiClient, type ApiOptions } from '../client.ts';
import { usageError } from '../errors.ts';
import { out, printJson, table } from '../format.ts';
import { deployBody } from './job.ts';
import { planRunBody } from './plan.ts';
import { taskRunBody } from './task.ts';

export interface ScheduleFlags {
  at?: string;
  every?: string;
  cron?: string;
  timezone?: string;
}

const UNITS = { s: 'seconds', m: 'minutes', h: 'hours', d: 'days' } as const;

/** `30s`, `5m`, `2h`, `1d` (or a bare number of seconds) → the API's interval. */
export function parseDuration(flag: string, text: string): { units: (typeof UNITS)[keyof typeof UNITS]; value: number } {
  const m = /^([0-9]+)([smhd]?)$/.exec(text.trim());
  if (!m || Number(m[1]) < 1) throw usageError(`${flag} '${text}': give a whole number of at least 1 with s, m, h or d (30s, 5m, 2h, 1d)`);
  return { units: UNITS[(m[2] || 's') as keyof typeof UNITS], value: Number(m[1]) };
}

const UNIT_MS = { seconds: 1_000, minutes: 60_000, hours: 3_600_000, days: 86_400_000 } as const;

/** --at: an ISO 8601 time, or `+DURATION` from now (+10m). */
export function parseAt(text: string, nowMs: number): string {
  if (text.startsWith('+')) {
    const d = parseDuration('--at', text.slice(1));
    return new Date(nowMs + d.value * UNIT_MS[d.units]).toISOString();
  }
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(text) || Number.isNaN(Date.parse(text))) throw usageError(`--at '${text}': give an ISO 8601 time (2030-01-31T03:00:00Z) or +DURATION (+10m)`);
  return new Date(Date.parse(text)).toISOString();
}

/** The scheduling keys of a schedule body for --at, --every, --cron and --timezone. */
export function schedulingOf(f: ScheduleFlags, nowMs: number): { scheduled_time?: string; schedule_options?: Record<string, unknown> } {
  if (f.every !== undefined && f.cron !== undefined) throw usageError('give --every or --cron, not both');
  if (f.timezone !== undefined && f.cron === undefined) throw usageError('--timezone goes with --cron');
  if (f.at === undefined && f.every === undefined && f.cron === undefined) throw usageError('say when: --at TIME, --every DURATION or --cron EXPR');
  const at = f.at !== undefined ? { scheduled_time: parseAt(f.at, nowMs) } : {};
  if (f.every !== undefined) return { ...at, schedule_options: { interval: parseDuration('--every', f.every) } };
  if (f.cron !== undefined) return { ...at, schedule_options: { cron: f.cron, ...(f.timezone ? { timezone: f.timezone } : {}) } };
  return at;
}

function addScheduleOptions(cmd: Command): Command {
  return cmd
    .option('--at <time>', 'when: an ISO 8601 time or +DURATION (+10m); with --every or --cron, the first time')
    .option('--every <duration>', 'repeat this often: 30s, 5m, 2h, 1d')
    .option('--cron <expr>', "repeat on a cron expression ('0 3 * * *'; a leading seconds field is allowed)")
    .option('--timezone <tz>', 'the time zone of --cron (IANA, e.g. Europe/Berlin; default UTC)');
}

function scheduleId(id: string): string {
  if (!/^[0-9]+$/.test(id)) throw usageError(`'${id}' is not a scheduled job id (a number, as baton schedule list shows)`);
  return id;
}

interface ScheduledJobJson {
  name: string;
  type: string;
  task?: string;
  plan?: string;
  environment: { name: string };
  next_run: string | null;
  scheduled_time: string | null;
  schedule_options: { interval?: { units: string; value: number }; cron?: string; timezone?: string };
  owner: { login: string };
  runs: number;
  last_run: { job: { name: string }; scheduled_for: string; started_timestamp: string; late: boolean } | null;
  last_error: { kind: string; msg: string; at: string } | null;
}

const whatOf = (s: ScheduledJobJson) => (s.type === 'task' ? `task ${s.task ?? ''}` : s.type === 'plan' ? `plan ${s.plan ?? ''}` : `deploy ${s.environment.name}`);
const whenOf = (s: ScheduledJobJson) => {
  const o = s.schedule_options ?? {};
  if (o.interval) return `every ${o.interval.value} ${o.interval.units}`;
  if (o.cron) return `cron '${o.cron}' ${o.timezone ?? 'UTC'}`;
  return `once at ${s.scheduled_time ?? '?'}`;
};

/** The newer of the last run and the last error. */
function lastOf(s: ScheduledJobJson): string {
  const run = s.last_run;
  const err = s.last_error;
  if (err && (!run || Date.parse(err.at) > Date.parse(run.started_timestamp))) return `error: ${err.kind}`;
  return run ? `job ${run.job.name}${run.late ? ' (late)' : ''}` : '';
}

async function submit(o: ApiOptions, path: string, body: Record<string, unknown>, what: string): Promise<void> {
  const res = (await apiClient(o).post(path, body)) as { scheduled_job: { name: string } };
  if (o.json) return printJson(res);
  out(`Scheduled ${what}: scheduled job ${res.scheduled_job.name} (baton schedule list; baton schedule delete ${res.scheduled_job.name})`);
}

export function registerSchedule(program: Command): void {
  const schedule = program.command('schedule').description('run tasks, deploys and plans later or repeatedly (/orchestrator/v1/scheduled_jobs)');

  const task = schedule
    .command('task')
    .description('schedule a task (POST /orchestrator/v1/command/schedule_task)')
    .argument('<task>', 'the task: module::task, or module for module::init')
    .argument('[params...]', 'parameters as key=value; values that parse as JSON are JSON')
    .option('--params <json>', 'parameters as a JSON object, or @file holding one')
    .option('--environment <name>', 'code environment (default production)')
    .option('--noop', 'run in no-operation mode (tasks that support it)')
    .option('--concurrency <n>', 'at most this many nodes at once')
    .option('--timeout <seconds>', "a node's run is stopped after this long")
    .option('--description <text>', 'a description of the jobs');
  addScopeOptions(task);
  addApiOptions(addScheduleOptions(task)).action(
    action(async (name: string, pairs: string[], o: ApiOptions & ScopeFlags & ScheduleFlags & { params?: string; wait: boolean }) => {
      const body = { ...taskRunBody(name, pairs, { ...o, wait: false }), ...schedulingOf(o, Date.now()) };
      return submit(o, '/orchestrator/v1/command/schedule_task', body, `task ${name}`);
    }),
  );

  const deploy = schedule
    .command('deploy')
    .description('schedule Puppet runs (POST /orchestrator/v1/command/schedule_deploy)')
    .requiredOption('--environment <name>', 'the environment to deploy')
    .option('--noop', 'no-operation mode')
    .option('--no-enforce-environment', 'let each node run in its own environment')
    .option('--concurrency <n>', 'at most this many nodes at once')
    .option('--timeout <seconds>', "a node's run is stopped after this long")
    .option('--description <text>', 'a description of the jobs');
  addScopeOptions(deploy, true);
  addApiOptions(addScheduleOptions(deploy)).action(
    action(async (o: Parameters<typeof deployBody>[0] & ScheduleFlags) => {
      const body = { ...deployBody(o), ...schedulingOf(o, Date.now()) };
      return submit(o, '/orchestrator/v1/command/schedule_deploy', body, `deploy of ${o.environment}`);
    }),
  );

  const plan = schedule
    .command('plan')
    .description('schedule a plan (POST /orchestrator/v1/command/schedule_plan)')
    .argument('<plan>', 'the plan: module::plan')
    .argument('[params...]', 'parameters as key=value; values that parse as JSON are JSON')
    .option('--params <json>', 'parameters as a JSON object, or @file holding one')
    .option('--environment <name>', 'code environment (default production)')
    .option('--description <text>', 'a description of the plan jobs');
  addApiOptions(addScheduleOptions(plan)).action(
    action(async (name: string, pairs: string[], o: ApiOptions & ScheduleFlags & { params?: string; environment?: string; description?: string }) => {
      const body = { ...planRunBody(name, pairs, o), ...schedulingOf(o, Date.now()) };
      return submit(o, '/orchestrator/v1/command/schedule_plan', body, `plan ${name}`);
    }),
  );

  addApiOptions(
    schedule
      .command('list')
      .description('list scheduled jobs, next to run first (GET /orchestrator/v1/scheduled_jobs)')
      .option('--type <type>', 'only task, deploy or plan schedules'),
  ).action(
    action(async (o: ApiOptions & { type?: string }) => {
      const res = await apiClient(o).get(`/orchestrator/v1/scheduled_jobs?limit=0${o.type ? `&type=${encodeURIComponent(o.type)}` : ''}`);
      if (o.json) return printJson(res);
      const items = res.items as ScheduledJobJson[];
      if (items.length === 0) return out('No scheduled jobs.');
      out(table(
        ['id', 'what', 'when', 'next run', 'owner', 'runs', 'last'],
        items.map((s) => [
          s.name, whatOf(s), whenOf(s), s.next_run ?? '-', s.owner.login, s.runs,
          lastOf(s),
        ]),
      ));
    }),
  );

  addApiOptions(schedule.command('show').description('show a scheduled job (GET /orchestrator/v1/scheduled_jobs/:id)').argument('<id>', 'the scheduled job id')).action(
    action(async (id: string, o: ApiOptions) => {
      const s = (await apiClient(o).get(`/orchestrator/v1/scheduled_jobs/${scheduleId(id)}`)) as ScheduledJobJson;
      if (o.json) return printJson(s);
      out(`scheduled job ${s.name}: ${whatOf(s)}, ${whenOf(s)}, owner ${s.owner.login}`);
      out(`next run: ${s.next_run ?? 'none'}   runs: ${s.runs}`);
      if (s.last_run) out(`last run: job ${s.last_run.job.name} for ${s.last_run.scheduled_for}${s.last_run.late ? ' (late: no orchestrator was up at its time)' : ''}`);
      if (s.last_error) out(`last error: ${s.last_error.kind}: ${s.last_error.msg}`);
    }),
  );

  addApiOptions(schedule.command('delete').description('delete a scheduled job; no further runs (DELETE /orchestrator/v1/scheduled_jobs/:id)').argument('<id>', 'the scheduled job id')).action(
    action(async (id: string, o: ApiOptions) => {
      await apiClient(o).send('DELETE', `/orchestrator/v1/scheduled_jobs/${scheduleId(id)}`);
      if (o.json) return printJson({ deleted: id });
      out(`Deleted scheduled job ${id}.`);
    }),
  );
}
