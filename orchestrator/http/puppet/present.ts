// Job, node and event records as the Puppet orchestrator v1 API shows them. Sensitive task
// parameters are always masked. Pure.
import type { JobEvent, JobRecord, NodeRecord } from '../../engine/store.ts';

import { REDACTED } from '../../../protocol/rerun.ts';

export { REDACTED };

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export function maskParams(params: Record<string, unknown>, sensitive: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) out[k] = sensitive.includes(k) ? REDACTED : v;
  return out;
}

export function jobJson(
  base: string,
  job: JobRecord,
  counts: Record<string, number>,
  history: { state: string; enter_time: string }[],
): Record<string, unknown> {
  const url = `${base}/orchestrator/v1/jobs/${job.id}`;
  const started = history.find((h) => h.state === 'running')?.enter_time ?? null;
  const finished = job.finished_ms === undefined ? null : iso(job.finished_ms);
  return {
    id: url,
    name: job.id,
    command: job.type,
    type: job.type,
    state: job.state,
    owner: { login: job.owner },
    description: job.options.description ?? '',
    environment: { name: job.environment },
    options: {
      concurrency: job.options.concurrency || null,
      noop: job.options.noop,
      transport: 'pxp',
      environment: job.environment,
      scope: job.scope,
      ...(job.task ? { task: job.task, params: maskParams(job.params, job.sensitive) } : {}),
      timeout: job.options.timeout_s,
      description: job.options.description ?? '',
      ...(job.type === 'deploy'
        ? { enforce_environment: job.options.enforce_environment !== false, debug: job.options.debug === true, trace: job.options.trace === true, evaltrace: job.options.evaltrace === true }
        : {}),
    },
    timestamp: history.at(-1)?.enter_time ?? iso(job.created_ms),
    created_timestamp: iso(job.created_ms),
    started_timestamp: started,
    finished_timestamp: finished,
    duration: job.finished_ms === undefined ? null : (job.finished_ms - job.created_ms) / 1000,
    ...(job.options.scheduled_job
      ? { scheduled_job: { id: `${base}/orchestrator/v1/scheduled_jobs/${job.options.scheduled_job.id}`, name: job.options.scheduled_job.id, scheduled_for: job.options.scheduled_job.scheduled_for, late: job.options.scheduled_job.late } }
      : {}),
    ...(job.options.plan_job ? { plan_job: { id: `${base}/orchestrator/v1/plan_jobs/${job.options.plan_job.id}`, name: job.options.plan_job.id, step: job.options.plan_job.step } } : {}),
    node_count: job.node_count,
    node_states: counts,
    nodes: { id: `${url}/nodes` },
    report: { id: `${url}/report` },
    events: { id: `${url}/events` },
    status: history.map((h, i) => ({ state: h.state, enter_time: h.enter_time, exit_time: history[i + 1]?.enter_time ?? null })),
  };
}

export function nodeJson(n: NodeRecord): Record<string, unknown> {
  return {
    name: n.name,
    state: n.state,
    // As Puppet Enterprise: the Puppet run's own transaction UUID (from its report); null for tasks.
    transaction_uuid: typeof n.details?.transaction_uuid === 'string' ? n.details.transaction_uuid : null,
    // Baton's extension: the PXP transaction id of the node run (its spool directory on the agent).
    transaction_id: n.transaction_uuid ?? null,
    start_timestamp: iso(n.start_ms),
    finish_timestamp: iso(n.finish_ms),
    duration: n.start_ms !== undefined && n.finish_ms !== undefined ? (n.finish_ms - n.start_ms) / 1000 : null,
    details: n.details ?? {},
    result: n.result ?? null,
    'latest-event-id': n.latest_event_id ?? null,
    timestamp: iso(n.finish_ms ?? n.start_ms),
  };
}

export function eventJson(e: JobEvent): Record<string, unknown> {
  return { id: String(e.id), type: e.type, timestamp: e.timestamp, details: e.details, message: e.message ?? messageOf(e) };
}

function messageOf(e: JobEvent): string {
  const node = e.details.node as string | undefined;
  switch (e.type) {
    case 'node_running': return `Started run on ${node}`;
    case 'node_finished': return `Finished run on ${node}`;
    case 'node_failed': return `Run failed on ${node}`;
    case 'node_errored': return `Error while running on ${node}`;
    case 'node_skipped': return `Skipped ${node}`;
    case 'job_stopping': return 'Stopping the job';
    case 'job_aborted': return 'The job was stopped';
    case 'job_finished': return `The job ended: ${String(e.details.state)}`;
    default: return e.type;
  }
}

export function nextEvents(base: string, jobId: string, next: number): Record<string, string> {
  return { id: `${base}/orchestrator/v1/jobs/${jobId}/events?start=${next}`, event: String(next) };
}
