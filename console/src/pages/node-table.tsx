// The nodes of a job, 100 a page: state, duration, a one-line result; each row expands to the
// full result, stdout/stderr (followed live while a push command runs) and the node's events.
import { useEffect, useState } from 'preact/hooks';
import { api, isAbort, messageOf, request } from '../api.ts';
import { duration, orgOf, pretty, resultLine, time } from '../format.ts';
import type { EventJson, JobJson, NodeJson } from '../types.ts';
import { TableHead, useLoad, useOpenSet } from '../ui/common.tsx';

export const NODES_PAGE_SIZE = 100;

/** A push job's output channel, from the Chef face (followed while the node runs). */
function ChefOutput(p: { job: JobJson; node: NodeJson; channel: 'stdout' | 'stderr' }) {
  const [text, setText] = useState('');
  const [note, setNote] = useState('Loading…');
  const running = p.node.state === 'running';
  useLoad(async (signal) => {
    setText('');
    setNote(running ? 'Following…' : 'Loading…');
    try {
      const path = `/organizations/${encodeURIComponent(orgOf(p.job))}/pushy/jobs/${encodeURIComponent(p.job.name)}/output/${encodeURIComponent(p.node.name)}/${p.channel}${running ? '?follow=true' : ''}`;
      const res = await request(path, { signal, headers: { Accept: 'application/octet-stream' } });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let all = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        all += value;
        setText(all);
      }
      setNote(all === '' ? '(empty)' : '');
    } catch (err) {
      if (!isAbort(err) && !signal.aborted) setNote(messageOf(err));
    }
  }, [p.job.name, p.node.name, p.channel, running]);
  return <OutputBlock channel={p.channel} text={text} note={note} />;
}

function OutputBlock(p: { channel: 'stdout' | 'stderr'; text: string; note: string }) {
  return (
    <div class="output">
      <h4>{p.channel}</h4>
      <pre data-testid={`node-${p.channel}`}>{p.text}{p.note ? (p.text ? `\n${p.note}` : p.note) : ''}</pre>
    </div>
  );
}

/** A task's output is in its result (`_output`; `_stderr` when the agent gives it). */
function TaskOutput(p: { node: NodeJson }) {
  const r = (typeof p.node.result === 'object' && p.node.result !== null ? p.node.result : {}) as Record<string, unknown>;
  const out = typeof r._output === 'string' ? r._output : typeof r.stdout === 'string' ? r.stdout : '';
  const err = typeof r._stderr === 'string' ? r._stderr : typeof r.stderr === 'string' ? r.stderr : '';
  return (
    <>
      <OutputBlock channel="stdout" text={out} note={out ? '' : '(none)'} />
      <OutputBlock channel="stderr" text={err} note={err ? '' : '(none)'} />
    </>
  );
}

function NodeEvents(p: { job: string; node: string; latest: number | null }) {
  const [events, setEvents] = useState<EventJson[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useLoad(async (signal) => {
    try {
      // The API gives a job's events a page at a time (a large job has more than one): read on to the end.
      const mine: EventJson[] = [];
      for (let start = 1; ;) {
        const r = await api<{ items: EventJson[] }>(`/orchestrator/v1/jobs/${encodeURIComponent(p.job)}/events?start=${start}`, { signal });
        if (r.items.length === 0) break;
        for (const e of r.items) if (e.details?.node === p.node) mine.push(e);
        start = Number(r.items.at(-1)!.id) + 1;
      }
      setEvents(mine);
    } catch (err) {
      if (!isAbort(err)) setError(messageOf(err));
    }
  }, [p.job, p.node, p.latest]);
  return (
    <div data-testid="node-events">
      <h4>Events</h4>
      {error ? <p class="error">{`Error: ${error}`}</p> : !events ? <p>Loading…</p> : events.length === 0 ? <p>No events yet.</p> : (
        <ol class="events">
          {events.map((e) => (
            <li key={e.id}>
              <time dateTime={e.timestamp}>{time(e.timestamp)}</time> <span class="etype">{e.type}</span> {e.message}
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function NodeRow(p: { job: JobJson; node: NodeJson; open: boolean; onToggle(): void }) {
  const n = p.node;
  const id = `node-detail-${n.name}`;
  return (
    <>
      <tr data-testid="node-row" data-node={n.name} data-state={n.state}>
        <td>{n.name}</td>
        <td>
          <span class={`state s-${n.state}`}>{n.state}</span>
        </td>
        <td>{duration(n.duration)}</td>
        <td class="summary" data-testid="node-summary">{resultLine(p.job.type, n)}</td>
        <td>
          <button type="button" data-testid="node-expand" aria-expanded={p.open} aria-controls={p.open ? id : undefined} onClick={p.onToggle}>
            {p.open ? 'Less' : 'More'}
            <span class="sr-only"> about {n.name}</span>
          </button>
        </td>
      </tr>
      {p.open && (
        <tr class="detail" id={id}>
          <td colSpan={5}>
            <div data-testid="node-detail">
              <h4>Result</h4>
              <pre>{n.result === null || n.result === undefined ? '(no result yet)' : pretty(n.result)}</pre>
              {Object.keys(n.details ?? {}).length > 0 && (
                <>
                  <h4>Details</h4>
                  <pre>{pretty(n.details)}</pre>
                </>
              )}
              <p>
                Started {time(n.start_timestamp) || '—'}, finished {time(n.finish_timestamp) || '—'}
              </p>
            </div>
            {p.job.type === 'command' ? (
              <>
                <ChefOutput job={p.job} node={n} channel="stdout" />
                <ChefOutput job={p.job} node={n} channel="stderr" />
              </>
            ) : (
              <TaskOutput node={n} />
            )}
            <NodeEvents job={p.job.name} node={n.name} latest={n['latest-event-id']} />
          </td>
        </tr>
      )}
    </>
  );
}

export function NodeTable(p: { job: JobJson; nodes: NodeJson[] }) {
  const [page, setPage] = useState(1);
  const [open, toggle] = useOpenSet();
  const pages = Math.max(1, Math.ceil(p.nodes.length / NODES_PAGE_SIZE));
  useEffect(() => {
    if (page > pages) setPage(pages);
  }, [pages]);
  const shown = p.nodes.slice((page - 1) * NODES_PAGE_SIZE, page * NODES_PAGE_SIZE);
  return (
    <>
      <table class="nodes">
        <TableHead caption="Nodes of the job" columns={['Node', 'State', 'Duration', 'Result', 'Details']} />
        <tbody>
          {shown.map((n) => <NodeRow key={n.name} job={p.job} node={n} open={open.has(n.name)} onToggle={() => toggle(n.name)} />)}
        </tbody>
      </table>
      {p.nodes.length === 0 && <p>No nodes yet.</p>}
      <nav class="pager" aria-label="Node pages">
        <button type="button" data-testid="nodes-prev-page" disabled={page <= 1} onClick={() => setPage(page - 1)}>
          Previous nodes
        </button>
        <span data-testid="nodes-page">{`Nodes ${p.nodes.length ? (page - 1) * NODES_PAGE_SIZE + 1 : 0}–${Math.min(page * NODES_PAGE_SIZE, p.nodes.length)} of ${p.nodes.length}`}</span>
        <button type="button" data-testid="nodes-next-page" disabled={page >= pages} onClick={() => setPage(page + 1)}>
          Next nodes
        </button>
      </nav>
    </>
  );
}
