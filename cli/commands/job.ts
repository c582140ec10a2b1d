// `baton job run|show|list|stop|rerun`: Puppet deploys and the jobs of the orchestrator.
import type { Command } from 'commander';
import { action } from '../action.ts';
import { addScopeOptions, parseParams, positiveInt, scopeOf, type ScopeFlags } from '../args.ts';
import { addApiOptions, apiClient, type ApiClient, type ApiOptions } from '../client.ts';
import { ExitCode, usageError } from '../errors.ts';
import { bold, duration, out, plural, printJson, table } from '../format.ts';
import { maskedParamNames, RERUN_STATES, rerunRequest as buildRerunRequest, type RerunnableJob, type RerunRequest } from '../../protocol/rerun.ts';
import { ENDED_JOB_STATES, followJob, jobExitCode, jobNodes, resultLine, startedJob, type JobJson } from '../follow.ts';


interface DeployOptions extends ApiOptions, ScopeFlags {
  environment: string;
  noop?: boolean;
  enforceEnvironment: boolean;
  concurrency?: string;
  timeout?: string;
  debug?: boolean;
  trace?: boolean;
  evaltrace?: boolean;
  description?: string;
  wait: boolean;
}

/** The body of POST /orchestrator/v1/command/deploy for `baton job run`'s flags. */
export function deployBody(o: DeployOptions): Record<string, unknown> {
  return {
    environment: o.environment,
    scope: scopeOf(o) ?? { whole_environment: true },
    ...(o.noop !== undefined ? { noop: o.noop } : {}),
    ...(o.enforceEnvironment === false ? { enforce_environment: false } : {}),
    ...(o.concurrency !== undefined ? { concurrency: positiveInt('--concurrency', o.concurrency) } : {}),
    ...(o.timeout !== undefined ? { timeout: positiveInt('--timeout', o.timeout) } : {}),
    ...(o.debug ? { debug: true } : {}),
    ...(o.trace ? { trace: true } : {}),
    ...(o.evaltrace ? { evaltrace: true } : {}),
    ...(o.description ? { description: o.description } : {}),
  };
}

/** The request that runs `job` again on `scope`: the same kind of job with the same options. */
export function rerunRequest(job: JobJson, scope: Record<string, unknown>, overrides: Record<string, unknown>): RerunRequest {
  if (job.type === 'deploy' && Object.keys(overrides).length > 0) throw usageError('key=value parameters are for task jobs; this is a deploy');
  const params = { ...(job.options.params ?? {}), ...overrides };
  const masked = job.type === 'task' ? maskedParamNames(params) : [];
  if (masked.length > 0) throw usageError(`job ${job.name} has sensitive parameters the orchestrator does not show: give them again as key=value (${masked.map((k) => `${k}=…`).join(' ')})`);
  const req = buildRerunRequest(job as RerunnableJob, scope, params);
  if (!req) throw usageError(`job ${job.name} is a ${job.type} job; rerun runs task and deploy jobs again (push jobs: baton push run)`);
  return req;
}

function jobId(id: string): string {
  if (!/^[0-9]+$/.test(id)) throw usageError(`'${id}' is not a job id (a number, as baton job list shows)`);
  return id;
}

const what = (job: JobJson) => (job.type === 'task' ? `task ${job.options.task ?? ''}` : job.type === 'deploy' ? `deploy to ${job.environment.name}` : job.type);

/** Shows a job and its nodes; exits as a followed job would (jobExitCode). */
async function showJob(client: ApiClient, id: string, json: boolean | undefined): Promise<ExitCode> {
  const job = (await client.get(`/orchestrator/v1/jobs/${id}`)) as JobJson;
  const nodes = await jobNodes(client, id);
  if (json) {
    printJson({ job, nodes });
    return jobExitCode(job);
  }
  out(`${bold(`Job ${job.name}`)}  ${what(job)}  ${job.state}`);
  out(`owner ${job.owner.login}, environment ${job.environment.name}, created ${job.created_timestamp ?? '?'}${job.duration !== null ? `, took ${duration(job.duration * 1000)}` : ''}`);
  if (job.description) out(`description: ${job.description}`);
  if (job.options.params && Object.keys(job.options.params).length > 0) out(`params: ${JSON.stringify(job.options.params)}`);
  out(`nodes: ${Object.entries(job.node_states).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ') || 'none'}`);
  if (nodes.length > 0) {
    out();
    out(table(['node', 'state', 'duration', 'result'], nodes.map((n) => [n.name, n.state, n.duration === null ? '' : `${n.duration.toFixed(1)} s`, resultLine(job.type, n)])));
  }
  return jobExitCode(job);
}

export function registerJob(program: Command): void {
  const job = program.command('job').description('run Puppet on nodes, and show, stop or re-run jobs');

  const run = job
    .command('run')
    .description('run Puppet on nodes (a deploy; POST /orchestrator/v1/command/deploy) and follow it; no scope: the whole environment')
    .requiredOption('--environment <name>', 'the code environment to deploy')
    .option('--noop', 'no-operation mode: report what would change')
    .option('--no-noop', "override the nodes' own noop setting")
    .option('--no-enforce-environment', 'let each node run in its own environment')
    .option('--concurrency <n>', 'at most this many nodes at once')
    .option('--timeout <seconds>', "a node's run is stopped after this long")
    .option('--debug', 'Puppet --debug')
    .option('--trace', 'Puppet --trace')
    .option('--evaltrace', 'Puppet --evaltrace')
    .option('--description <text>', 'a description of the job')
    .option('--no-wait', 'print the job id and return instead of following the job');
  addScopeOptions(run, true);
  addApiOptions(run).action(
    action(async (o: DeployOptions) => {
      const body = deployBody(o);
      const client = apiClient(o);
      const res = (await client.post('/orchestrator/v1/command/deploy', body)) as { job: { name: string } };
      return startedJob(client, res.job.name, `deploy to ${o.environment}`, { json: o.json, wait: o.wait });
    }),
  );

  addApiOptions(job.command('show').description('show a job and its nodes (GET /orchestrator/v1/jobs/:id)').argument('<id>', 'job id').option('--watch', 'follow the job while it runs')).action(
    action(async (id: string, o: ApiOptions & { watch?: boolean }) => {
      const client = apiClient(o);
      jobId(id);
      if (!o.watch) return showJob(client, id, o.json);
      const j = (await client.get(`/orchestrator/v1/jobs/${id}`)) as JobJson;
      if (ENDED_JOB_STATES.includes(j.state)) return showJob(client, id, o.json);
      return followJob(client, id, { json: o.json, headline: (x) => `Following job ${id}: ${what(x)} on ${plural(x.node_count, 'node')}` });
    }),
  );

  addApiOptions(
    job
      .command('list')
      .description('list recent jobs (GET /orchestrator/v1/jobs)')
      .option('--limit <n>', 'how many', '20')
      .option('--type <type>', 'task, deploy or command'),
  ).action(
    action(async (o: ApiOptions & { limit: string; type?: string }) => {
      const limit = positiveInt('--limit', o.limit);
      const res = await apiClient(o).get(`/orchestrator/v1/jobs?limit=${limit}${o.type ? `&type=${encodeURIComponent(o.type)}` : ''}`);
      if (o.json) return printJson(res);
      const items = res.items as JobJson[];
      if (items.length === 0) return out('No jobs yet.');
      out(table(['id', 'type', 'state', 'what', 'nodes', 'owner', 'created'], items.map((j) => [j.name, j.type, j.state, j.type === 'task' ? j.options.task : j.type === 'deploy' ? j.environment.name : j.type === 'command' ? 'push (baton push show)' : j.description, j.node_count, j.owner.login, j.created_timestamp])));
    }),
  );

  addApiOptions(job.command('stop').description('stop a job (POST /orchestrator/v1/command/stop)').argument('<id>', 'job id').option('--force', 'also kill runs under way (Baton agents)')).action(
    action(async (id: string, o: ApiOptions & { force?: boolean }) => {
      const res = await apiClient(o).post('/orchestrator/v1/command/stop', { job: jobId(id), ...(o.force ? { force: true } : {}) });
      if (o.json) return printJson(res);
      const nodes = (res.job?.nodes ?? {}) as Record<string, number>;
      out(`Stopping job ${id}: ${Object.entries(nodes).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ') || 'no nodes'}`);
    }),
  );

  const rerun = job
    .command('rerun')
    .description('run a task or deploy job again, the same way (--failed: only on its failed and errored nodes)')
    .argument('<id>', 'job id')
    .argument('[params...]', 'task parameters to give again (sensitive ones) or change, as key=value')
    .option('--failed', `only the nodes that ended ${RERUN_STATES.join(' or ')}`)
    .option('--no-wait', 'print the job id and return instead of following the job');
  addApiOptions(rerun).action(
    action(async (id: string, pairs: string[], o: ApiOptions & { failed?: boolean; wait: boolean }) => {
      jobId(id);
      const overrides = parseParams(undefined, pairs);
      const client = apiClient(o);
      const original = (await client.get(`/orchestrator/v1/jobs/${id}`)) as JobJson;
      const scope = o.failed ? { job: { job: id, states: [...RERUN_STATES] } } : (original.options.scope ?? { job: { job: id } });
      const req = rerunRequest(original, scope, overrides);
      const res = (await client.post(req.path, req.body)) as { job: { name: string } };
      return startedJob(client, res.job.name, `${what(original)} again (job ${id}${o.failed ? ', failed nodes' : ''})`, { json: o.json, wait: o.wait });
    }),
  );
}
