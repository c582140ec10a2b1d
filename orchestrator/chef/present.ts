// Chef Push Jobs shapes: jobs, node states and feed events, from the engine's records. Pure.
import type { JobEvent, JobRecord, NodeRecord } from '../engine/store.ts';
import type { SseEvent } from '../http/sse.ts';
import { chefNodeState, type ChefJobSpec } from './jobs.ts';

/** Chef's timestamps: RFC 1123 ("Tue, 04 Sep 2012 23:17:56 GMT"). */
export const httpDate = (ms: number): string => new Date(ms).toUTCString();

export function chefJobJson(job: JobRecord, spec: ChefJobSpec, state: string, updatedMs: number, nodes: NodeRecord[], includeFile: boolean): Record<string, unknown> {
  const byState: Record<string, string[]> = {};
  for (const n of nodes) (byState[chefNodeState(n)] ??= []).push(n.name);
  return {
    id: job.id,
    command: spec.command,
    run_timeout: spec.run_timeout,
    quorum: spec.quorum,
    status: state,
    created_at: httpDate(job.created_ms),
    updated_at: httpDate(updatedMs),
    nodes: byState,
    user: spec.user ?? null,
    dir: spec.dir ?? null,
    env: spec.env,
    ...(includeFile ? (spec.file !== undefined ? { file: spec.file } : {}) : { file_specified: spec.file !== undefined }),
    ...(spec.capture_output ? { capture_output: true } : {}),
  };
}

const RUN_STATUS: Record<string, string> = { complete: 'success', failed: 'failure', timed_out: 'timed_out', crashed: 'crashed', aborted: 'aborted' };

/** A job event as the job feed shows it; null for the engine's own events that Chef has not. */
export function chefFeedEvent(e: JobEvent): SseEvent | null {
  const base = { timestamp: e.timestamp };
  const id = String(e.id);
  const node = e.details.node as string | undefined;
  switch (e.type) {
    case 'chef_start': {
      const { node: _n, ...rest } = e.details;
      return { event: 'start', id, data: { ...base, ...rest } };
    }
    case 'quorum_vote':
      return { event: 'quorum_vote', id, data: { ...base, node, status: e.details.status, ...(e.details.message ? { message: e.details.message } : {}) } };
    case 'quorum_succeeded':
    case 'quorum_failed':
      return { event: e.type, id, data: base };
    case 'node_running':
      return { event: 'run_start', id, data: { ...base, node } };
    case 'node_finished':
    case 'node_failed':
    case 'node_errored': {
      const detail = (e.details.detail ?? {}) as Record<string, unknown>;
      const state = String(detail.chef_state ?? 'failed');
      return { event: 'run_complete', id, data: { ...base, node, status: RUN_STATUS[state] ?? state, ...(detail.exit_code !== undefined ? { exit_code: detail.exit_code } : {}) } };
    }
    case 'chef_job_complete':
      return { event: 'job_complete', id, data: { ...base, status: e.details.status } };
    default:
      return null;
  }
}
