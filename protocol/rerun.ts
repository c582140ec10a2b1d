// The request that runs a Puppet-face job again the same way: the same task with the same
// parameters, or the same deploy with the same flags, on a scope the caller gives. Pure, and free
// of Node's APIs: `baton job rerun` and the web console build their re-runs with it.

/** What the orchestrator shows for a sensitive parameter: a re-run must be given it again. */
export const REDACTED = 'Sensitive [value redacted]';
/** The node states a "re-run failed" runs again. */
export const RERUN_STATES = ['failed', 'errored'] as const;

/** The parts of a job (as GET /orchestrator/v1/jobs/:id shows it) that a re-run repeats. */
export interface RerunnableJob {
  name: string;
  type: string;
  environment: { name: string };
  description?: string;
  options: {
    task?: string;
    params?: Record<string, unknown>;
    noop?: boolean;
    concurrency?: number | null;
    timeout?: number;
    enforce_environment?: boolean;
    debug?: boolean;
    trace?: boolean;
    evaltrace?: boolean;
  };
}

export interface RerunRequest {
  path: '/orchestrator/v1/command/task' | '/orchestrator/v1/command/deploy';
  body: Record<string, unknown>;
}

/** The parameters the API shows masked in `params`. */
export const maskedParamNames = (params: Record<string, unknown>): string[] => Object.entries(params).filter(([, v]) => v === REDACTED).map(([k]) => k);

/**
 * The request running `job` again on `scope`, with `params` as the task's parameters (the job's
 * own, with any the caller gave again); null for a job that is neither a task nor a deploy.
 */
export function rerunRequest(job: RerunnableJob, scope: Record<string, unknown>, params: Record<string, unknown>): RerunRequest | null {
  const o = job.options;
  const common = {
    environment: job.environment.name,
    scope,
    ...(o.noop === true ? { noop: true } : {}),
    ...(typeof o.concurrency === 'number' && o.concurrency > 0 ? { concurrency: o.concurrency } : {}),
    ...(typeof o.timeout === 'number' ? { timeout: o.timeout } : {}),
    ...(job.description ? { description: job.description } : {}),
  };
  if (job.type === 'task') return { path: '/orchestrator/v1/command/task', body: { ...common, task: o.task, params } };
  if (job.type !== 'deploy') return null;
  return {
    path: '/orchestrator/v1/command/deploy',
    body: {
      ...common,
      ...(o.noop === false ? { noop: false } : {}),
      enforce_environment: o.enforce_environment !== false,
      ...(o.debug === true ? { debug: true } : {}),
      ...(o.trace === true ? { trace: true } : {}),
      ...(o.evaltrace === true ? { evaltrace: true } : {}),
    },
  };
}
