// One job, live: its state, a bar of node states, the node table; Stop (and force), Re-run and
// Re-run failed behind a confirmation. Live from /console/api/feed?job=<id> (one connection,
// closed on leaving); updates are drawn at most once an animation frame, each node event costing
// O(1) (a new node: O(log n) to find its place, plus the insertion).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, isAbort, me, messageOf } from '../api.ts';
import { openFeed } from '../feed.ts';
import { jobDuration, plural, time } from '../format.ts';
import { navigate } from '../router.ts';
import { canRerun, failedCount, maskedParams, rerunRequest } from '../rerun.ts';
import type { JobJson, NodeJson } from '../types.ts';
import { ErrorText, Link, useLatest, useLoad, useNow } from '../ui/common.tsx';
import { ConfirmDialog } from '../ui/confirm.tsx';
import { NodeTable } from './node-table.tsx';

const ENDED = ['stopped', 'finished', 'failed'];
/** Order of the bar's segments. */
const BAR_STATES = ['finished', 'failed', 'errored', 'skipped', 'running', 'ready', 'new'] as const;

export function barLabel(c: Record<string, number>): string {
  const n = (s: string) => c[s] ?? 0;
  const parts = [`${n('finished')} finished`, `${n('failed')} failed`];
  if (n('errored') > 0) parts.push(`${n('errored')} errored`);
  if (n('skipped') > 0) parts.push(`${n('skipped')} skipped`);
  parts.push(`${n('running')} running`, `${n('new') + n('ready')} waiting`);
  return parts.join(' · ');
}

function NodeBar(p: { job: JobJson }) {
  const c = p.job.node_states;
  const total = Math.max(1, p.job.node_count);
  return (
    <figure class="bar-wrap">
      <div class="bar" data-testid="job-bar" role="img" aria-label={`Node states: ${barLabel(c)}`}>
        {BAR_STATES.filter((s) => (c[s] ?? 0) > 0).map((s) => (
          <span key={s} class={`seg s-${s}`} data-testid="job-bar-segment" data-state={s} data-count={String(c[s])} style={{ width: `${(100 * (c[s] ?? 0)) / total}%` }} title={`${c[s]} ${s}`} />
        ))}
      </div>
      <figcaption data-testid="job-bar-label" aria-live="polite">{barLabel(c)}</figcaption>
    </figure>
  );
}

type Action = 'stop' | 'stop-force' | 'rerun' | 'rerun-failed';

const newer = (a: NodeJson, b: NodeJson | undefined) => !b || (a['latest-event-id'] ?? 0) >= (b['latest-event-id'] ?? 0);

export function Job(p: { id: string }) {
  const [job, setJob] = useState<JobJson | null>(null);
  const [, setVersion] = useState(0);
  const nodes = useRef(new Map<string, NodeJson>());
  const frame = useRef(0);
  const [error, setError] = useState<string | null>(null);
  const [asking, setAsking] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);
  const path = `/orchestrator/v1/jobs/${encodeURIComponent(p.id)}`;

  const redraw = () => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      setVersion((v) => v + 1);
    });
  };
  useEffect(() => () => cancelAnimationFrame(frame.current), []);

  /** Node names in table order (by name), redone only when a node not seen before comes. */
  const order = useRef<string[]>([]);
  const upsert = (n: NodeJson) => {
    const had = nodes.current.get(n.name);
    if (!had) {
      const names = order.current;
      let lo = 0;
      for (let hi = names.length; lo < hi;) {
        const mid = (lo + hi) >> 1;
        if (names[mid]! < n.name) lo = mid + 1;
        else hi = mid;
      }
      names.splice(lo, 0, n.name);
    }
    if (newer(n, had)) nodes.current.set(n.name, n);
  };

  const onEvent = useLatest((event: string, data: unknown) => {
    if (event === 'job') setJob(data as JobJson);
    else if (event === 'node') {
      upsert(data as NodeJson);
      redraw();
    }
  });

  // The job and its nodes, then its feed from the newest event those nodes reflect (Last-Event-ID):
  // nothing between the two is missed, and a large job's past events are not sent again.
  useLoad(async (signal) => {
    try {
      const [j, list] = await Promise.all([api<JobJson>(path, { signal }), api<{ items: NodeJson[] }>(`${path}/nodes`, { signal })]);
      if (signal.aborted) return;
      setJob((cur) => cur ?? j);
      let latest = 0;
      for (const n of list.items) {
        upsert(n);
        latest = Math.max(latest, n['latest-event-id'] ?? 0);
      }
      redraw();
      const close = openFeed(`/console/api/feed?job=${encodeURIComponent(p.id)}`, { onEvent: (e, d) => onEvent.current(e, d), onError: (m) => setError(m) }, latest > 0 ? String(latest) : undefined);
      signal.addEventListener('abort', close);
    } catch (err) {
      if (!isAbort(err)) setError(messageOf(err));
    }
  }, [p.id]);

  const now = useNow(1000, job !== null && !ENDED.includes(job.state));
  const can = me.value!.can;

  const act = async (a: Action, secrets: Record<string, string>) => {
    if (!job) return;
    setBusy(true);
    setError(null);
    try {
      if (a === 'stop' || a === 'stop-force') {
        await api('/orchestrator/v1/command/stop', { method: 'POST', body: { job: job.name, ...(a === 'stop-force' ? { force: true } : {}) } });
      } else {
        const req = rerunRequest(job, a === 'rerun-failed', secrets);
        if (!req) throw new Error(`a ${job.type} job cannot be run again from here`);
        const res = await api<{ job: { name: string } }>(req.path, { method: 'POST', body: req.body });
        setAsking(null);
        navigate(`/jobs/${encodeURIComponent(res.job.name)}`);
        return;
      }
      setAsking(null);
    } catch (err) {
      setAsking(null);
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  if (!job) {
    return (
      <section>
        <h1>Job {p.id}</h1>
        <ErrorText testid="job-error" error={error} />
        {!error && <p role="status">Loading…</p>}
      </section>
    );
  }

  const ended = ENDED.includes(job.state);
  const failed = failedCount(job);
  const list = order.current.map((name) => nodes.current.get(name)!);
  const what = job.type === 'task' ? `task ${job.options.task ?? ''}` : job.type === 'deploy' ? `Puppet run in ${job.environment.name}` : job.type === 'command' ? 'push command' : job.type;
  const masked = maskedParams(job);

  return (
    <section>
      <p class="crumbs">
        <Link to="/jobs">Jobs</Link> / {job.name}
      </p>
      <h1>
        Job {job.name}: {what}
      </h1>
      <p class="jobstate">
        State: <span class={`state s-${job.state}`} data-testid="job-state">{job.state}</span>
      </p>
      <dl class="facts">
        <dt>Owner</dt>
        <dd>{job.owner.login}</dd>
        <dt>Nodes</dt>
        <dd>{plural(job.node_count, 'node')}</dd>
        <dt>Started</dt>
        <dd>{time(job.started_timestamp ?? job.created_timestamp) || '—'}</dd>
        <dt>Duration</dt>
        <dd>{jobDuration(job, now) || '—'}</dd>
        {job.description && (
          <>
            <dt>Description</dt>
            <dd>{job.description}</dd>
          </>
        )}
        {job.options.params && Object.keys(job.options.params).length > 0 && (
          <>
            <dt>Parameters</dt>
            <dd>
              <code>{JSON.stringify(job.options.params)}</code>
            </dd>
          </>
        )}
      </dl>
      <div class="buttons">
        {can.stop_jobs && (
          <>
            <button type="button" data-testid="job-stop" disabled={ended} onClick={() => setAsking('stop')}>Stop</button>
            <button type="button" data-testid="job-stop-force" disabled={ended} onClick={() => setAsking('stop-force')}>Stop (force)</button>
          </>
        )}
        {can.run_jobs && canRerun(job) && (
          <>
            <button type="button" data-testid="job-rerun" onClick={() => setAsking('rerun')}>Re-run</button>
            <button type="button" data-testid="job-rerun-failed" disabled={failed === 0} onClick={() => setAsking('rerun-failed')}>
              Re-run failed{failed > 0 ? ` (${failed})` : ''}
            </button>
          </>
        )}
      </div>
      <ErrorText testid="job-error" error={error} />
      <NodeBar job={job} />
      <h2>Nodes</h2>
      <NodeTable job={job} nodes={list} />
      {asking && (
        <ConfirmDialog
          title={asking === 'stop' ? `Stop job ${job.name}?` : asking === 'stop-force' ? `Force-stop job ${job.name}?` : asking === 'rerun' ? `Re-run job ${job.name}?` : `Re-run job ${job.name} on its failed nodes?`}
          okLabel={asking.startsWith('stop') ? 'Stop the job' : 'Start the new job'}
          secrets={asking.startsWith('rerun') ? masked : []}
          busy={busy}
          onOk={(s) => void act(asking, s)}
          onCancel={() => setAsking(null)}
        >
          <p>
            {asking === 'stop' && 'Nodes that have not started will not run. Runs under way finish.'}
            {asking === 'stop-force' && 'Nodes that have not started will not run, and runs under way are killed.'}
            {asking === 'rerun' && `The same ${what} runs again with the same parameters and options on the same target (${plural(job.node_count, 'node')}).`}
            {asking === 'rerun-failed' && `The same ${what} runs again with the same parameters and options on the ${plural(failed, 'node')} that failed or errored.`}
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
