// Jobs of all three faces, newest first, 50 a page (GET /console/api/jobs, which filters by
// type, state and owner); live from the console's global job feed.
import { useRef, useState } from 'preact/hooks';
import { api, isAbort, messageOf } from '../api.ts';
import { openFeed } from '../feed.ts';
import { jobDuration, time } from '../format.ts';
import { loc, navigate, qs } from '../router.ts';
import type { JobJson } from '../types.ts';
import { ErrorText, FilterSelect, Link, TableHead, useLatest, useLoad, useNow } from '../ui/common.tsx';

export const JOBS_PAGE_SIZE = 50;
export const JOB_TYPES = ['task', 'deploy', 'command', 'deployment'] as const;
export const JOB_STATES = ['new', 'ready', 'running', 'stopping', 'stopped', 'finished', 'failed'] as const;
const ENDED = ['stopped', 'finished', 'failed'];

export function nodeCounts(states: Record<string, number>): string {
  const parts = Object.entries(states).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`);
  return parts.length ? parts.join(', ') : 'no nodes';
}

const byIdDesc = (a: JobJson, b: JobJson) => Number(b.name) - Number(a.name);

export function Jobs() {
  const q = loc.value.query;
  const type = q.get('type') ?? '';
  const state = q.get('state') ?? '';
  const owner = q.get('owner') ?? '';
  const page = Math.max(1, Number.parseInt(q.get('page') ?? '1', 10) || 1);
  const [ownerInput, setOwnerInput] = useState(owner);
  const [items, setItems] = useState<JobJson[] | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<string | null>(null);

  const matches = (j: JobJson) => (!type || j.type === type) && (!state || j.state === state) && (!owner || j.owner.login === owner);

  // The page, then the global job feed from the position the answer gives (read before the jobs):
  // changes made between the two are not missed. Both are redone when the filters or page change.
  useLoad(async (signal) => {
    try {
      const r = await api<{ items: JobJson[]; pagination: { total: number }; feed?: string; newest?: string | null }>(
        `/console/api/jobs${qs({ type, state, owner, limit: JOBS_PAGE_SIZE, offset: (page - 1) * JOBS_PAGE_SIZE })}`,
        { signal },
      );
      if (signal.aborted) return;
      setItems(r.items);
      setTotal(r.pagination.total);
      setError(null);
      newest.current = Number(r.newest ?? 0);
      const close = openFeed('/console/api/feed', { onEvent: (ev, data) => ev === 'job' && onJob.current(data as JobJson) }, r.feed);
      signal.addEventListener('abort', close);
    } catch (err) {
      if (!isAbort(err)) setError(messageOf(err));
    }
  }, [type, state, owner, page]);

  // New jobs and state changes from the feed, applied to the rows shown. The total counts a job
  // newer than every job known when the page was read (a new one) once; a job that leaves the
  // rows shown leaves the total (changes of jobs on other pages are not known here).
  const newest = useRef(0);
  const onJob = useLatest((j: JobJson) => {
    setItems((cur) => {
      if (!cur) return cur;
      const i = cur.findIndex((x) => x.name === j.name);
      if (i >= 0) {
        if (matches(j)) return cur.map((x, k) => (k === i ? j : x));
        setTotal((t) => Math.max(0, t - 1));
        return cur.filter((_, k) => k !== i);
      }
      if (!matches(j)) return cur;
      const id = Number(j.name);
      if (id > newest.current) {
        newest.current = id;
        setTotal((t) => t + 1);
      }
      const min = cur.length ? Number(cur[cur.length - 1]!.name) : Infinity;
      const max = cur.length ? Number(cur[0]!.name) : -Infinity;
      const fits = (page === 1 && id > max) || (id < max && (id > min || cur.length < JOBS_PAGE_SIZE));
      return fits ? [...cur, j].sort(byIdDesc).slice(0, JOBS_PAGE_SIZE) : cur;
    });
  });

  const running = (items ?? []).some((j) => !ENDED.includes(j.state));
  const now = useNow(1000, running);
  const pages = Math.max(1, Math.ceil(total / JOBS_PAGE_SIZE));
  const go = (v: Record<string, string | number>) => navigate(`/jobs${qs({ type, state, owner, page: 1, ...v })}`.replace(/[?&]page=1$/, ''));

  return (
    <section>
      <h1>Jobs</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          go({ owner: ownerInput.trim() });
        }}
      >
        <FilterSelect id="jobs-filter-type" label="Type" value={type} options={JOB_TYPES} onChange={(v) => go({ type: v })} />
        <FilterSelect id="jobs-filter-state" label="State" value={state} options={JOB_STATES} onChange={(v) => go({ state: v })} />
        <p class="field">
          <label for="jobs-filter-owner">Owner (Enter to apply)</label>
          <input id="jobs-filter-owner" data-testid="jobs-filter-owner" value={ownerInput} onInput={(e) => setOwnerInput((e.target as HTMLInputElement).value)} onBlur={() => ownerInput.trim() !== owner && go({ owner: ownerInput.trim() })} />
        </p>
      </form>
      <ErrorText testid="jobs-error" error={error} />
      <table>
        <TableHead caption="Jobs, newest first" columns={['Job', 'Type', 'State', 'Owner', 'Nodes', 'Duration', 'Started']} />
        <tbody>
          {(items ?? []).map((j) => (
            <tr key={j.name} data-testid="jobs-row" data-job={j.name} data-state={j.state} data-type={j.type}>
              <td>
                <Link to={`/jobs/${encodeURIComponent(j.name)}`}>{j.name}</Link>
                <span class="what">{j.type === 'task' ? ` ${j.options.task ?? ''}` : j.type === 'deploy' ? ` ${j.environment.name}` : j.description ? ` ${j.description}` : ''}</span>
              </td>
              <td>{j.type}</td>
              <td>
                <span class={`state s-${j.state}`}>{j.state}</span>
              </td>
              <td>{j.owner.login}</td>
              <td>{nodeCounts(j.node_states)}</td>
              <td>{jobDuration(j, now)}</td>
              <td>{time(j.started_timestamp ?? j.created_timestamp)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {items && items.length === 0 && <p>No jobs{type || state || owner ? ' match these filters' : ' yet'}.</p>}
      {!items && !error && <p role="status">Loading…</p>}
      <nav class="pager" aria-label="Pages">
        <button type="button" data-testid="jobs-prev-page" disabled={page <= 1} onClick={() => go({ page: page - 1 })}>
          Previous page
        </button>
        <span data-testid="jobs-page" aria-live="polite">{`Page ${Math.min(page, pages)} of ${pages}`}</span>
        <button type="button" data-testid="jobs-next-page" disabled={page >= pages} onClick={() => go({ page: page + 1 })}>
          Next page
        </button>
      </nav>
    </section>
  );
}
