// The request that runs a job again the same way (as `baton job rerun` builds it): the same task
// with the same params, or the same deploy with the same flags, on the same scope or on the nodes
// that failed or errored. Pure.
import type { JobJson } from './types.ts';

export const REDACTED = 'Sensitive [value redacted]';
export const RERUN_STATES = ['failed', 'errored'] as const;

export const canRerun = (job: JobJson): boolean => job.type === 'task' || job.type === 'deploy';

export const failedCount = (job: JobJson): number => RERUN_STATES.reduce((n, s) => n + (job.node_states[s] ?? 0), 0);

/** The parameters the API shows masked: a re-run must be given them again. */
export const maskedParams = (job: JobJson): string[] =>
  Object.entries(job.options.params ?? {}).filter(([, v]) => v === REDACTED).map(([k]) => k);

export function rerunRequest(job: JobJson, failedOnly: boolean, secrets: Record<string, string>): { path: string; body: Record<string, unknown> } {
  const o = job.options;
  const scope = failedOnly ? { job: { job: job.name, states: [...RERUN_STATES] } } : (o.scope ?? { job: { job: job.name } });
  const common = {
    environment: job.environment.name,
    scope,
    ...(o.noop === true ? { noop: true } : {}),
    ...(typeof o.concurrency === 'number' && o.concurrency > 0 ? { concurrency: o.concurrency } : {}),
    ...(typeof o.timeout === 'number' ? { timeout: o.timeout } : {}),
    ...(job.description ? { description: job.description } : {}),
  };
  if (job.type === 'task') {
    return { path: '/orchestrator/v1/command/task', body: { ...common, task: o.task, params: { ...(o.params ?? {}), ...secrets } } };
  }
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
