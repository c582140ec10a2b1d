// The request that runs a job again the same way (as `baton job rerun` builds it): the same task
// with the same params, or the same deploy with the same flags, on the same scope or on the nodes
// that failed or errored. Pure.
import type { JobJson } from './types.ts';

import { maskedParamNames, RERUN_STATES, rerunRequest as buildRerunRequest, type RerunnableJob, type RerunRequest } from '../../protocol/rerun.ts';

export { REDACTED, RERUN_STATES } from '../../protocol/rerun.ts';

export const canRerun = (job: JobJson): boolean => job.type === 'task' || job.type === 'deploy';

export const failedCount = (job: JobJson): number => RERUN_STATES.reduce((n, s) => n + (job.node_states[s] ?? 0), 0);

/** The parameters the API shows masked: a re-run must be given them again. */
export const maskedParams = (job: JobJson): string[] => maskedParamNames(job.options.params ?? {});

export function rerunRequest(job: JobJson, failedOnly: boolean, secrets: Record<string, string>): RerunRequest | null {
  const scope = failedOnly ? { job: { job: job.name, states: [...RERUN_STATES] } } : (job.options.scope ?? { job: { job: job.name } });
  return buildRerunRequest(job as unknown as RerunnableJob, scope, { ...(job.options.params ?? {}), ...secrets });
}
