// Jobs as the Puppet face shows them, read from the job store: one job with its counts and
// history, and the ids of the jobs whose record fields match a filter (one round trip for all).
// The Puppet face's job routes and the console's use these.
import type { JobRecord, JobStore } from '../../engine/store.ts';
import { jobJson } from './present.ts';

/** A job as GET /orchestrator/v1/jobs/<id> shows it (by id or by its record); null when there is none. */
export async function jobView(store: JobStore, base: string, job: string | JobRecord): Promise<Record<string, unknown> | null> {
  const record = typeof job === 'string' ? await store.getJob(job) : job;
  if (!record) return null;
  const [counts, history] = await Promise.all([store.counts(record.id), store.history(record.id)]);
  return jobJson(base, record, counts, history);
}

/** Record fields a job list can be filtered by; an absent one matches every job. */
export interface JobFilter {
  type?: string | undefined;
  state?: string | undefined;
  owner?: string | undefined;
}

/** The ids (in their order) of the jobs whose records match `filter`; jobs no longer there are left out. */
export async function filterJobIds(store: JobStore, ids: string[], filter: JobFilter): Promise<string[]> {
  const { type, state, owner } = filter;
  if (!type && !state && !owner) return ids;
  const fields = await store.fieldsOfJobs(ids, 'type', 'state', 'owner');
  return ids.filter((_id, i) => {
    const [t, s, o] = fields[i]!;
    return t !== null && (!type || t === type) && (!state || s === state) && (!owner || o === owner);
  });
}
