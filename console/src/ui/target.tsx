// The target picker of the run forms: nodes, a PQL query (with a live "matches N nodes" preview
// from /orchestrator/v1/inventory?query=), or a node group; Puppet runs may also take the whole
// environment.
import { useEffect, useState } from 'preact/hooks';
import { api, isAbort, me, messageOf } from '../api.ts';
import { plural } from '../format.ts';
import { navigate } from '../router.ts';
import { useDebounced } from './common.tsx';

export type TargetKind = 'nodes' | 'query' | 'node_group' | 'whole_environment';

export interface Target {
  kind: TargetKind;
  nodes: string;
  query: string;
  group: string;
}

export const emptyTarget = (kind: TargetKind = 'nodes'): Target => ({ kind, nodes: '', query: '', group: '' });

const PREVIEW_DEBOUNCE_MS = 300;

export function scopeOf(t: Target): Record<string, unknown> {
  switch (t.kind) {
    case 'nodes': return { nodes: t.nodes.split(/[\s,]+/).filter(Boolean) };
    case 'query': return { query: t.query.trim() };
    case 'node_group': return { node_group: t.group.trim() };
    case 'whole_environment': return { whole_environment: true };
  }
}

function QueryPreview(p: { query: string }) {
  const q = useDebounced(p.query.trim(), PREVIEW_DEBOUNCE_MS);
  const [text, setText] = useState('');
  const allowed = me.value?.can.view_inventory === true;
  useEffect(() => {
    if (!allowed) return setText('No preview: this token may not view the inventory.');
    if (q === '') return setText('Type a query to see which nodes it matches.');
    const ctl = new AbortController();
    setText('Counting…');
    api<{ items: unknown[] }>(`/orchestrator/v1/inventory?query=${encodeURIComponent(q)}`, { signal: ctl.signal }).then(
      (r) => setText(`matches ${plural(r.items.length, 'node')}`),
      (err) => !isAbort(err) && setText(`Query error: ${messageOf(err)}`),
    );
    return () => ctl.abort();
  }, [q, allowed]);
  return (
    <p class="hint" data-testid="run-query-preview" aria-live="polite">
      {text}
    </p>
  );
}

export function TargetPicker(p: { value: Target; onChange(t: Target): void; wholeEnvironment?: boolean }) {
  const t = p.value;
  const set = (patch: Partial<Target>) => p.onChange({ ...t, ...patch });
  return (
    <fieldset class="target">
      <legend>Target</legend>
      <p class="field">
        <label for="run-target-kind">Run on</label>
        <select id="run-target-kind" data-testid="run-target-kind" value={t.kind} onChange={(e) => set({ kind: (e.target as HTMLSelectElement).value as TargetKind })}>
          <option value="nodes">nodes</option>
          <option value="query">query</option>
          <option value="node_group">node_group</option>
          {p.wholeEnvironment && <option value="whole_environment">whole environment</option>}
        </select>
      </p>
      {t.kind === 'nodes' && (
        <p class="field">
          <label for="run-target-nodes">Node names (separated by commas or spaces) *</label>
          <input id="run-target-nodes" data-testid="run-target-nodes" aria-required="true" value={t.nodes} onInput={(e) => set({ nodes: (e.target as HTMLInputElement).value })} />
        </p>
      )}
      {t.kind === 'query' && (
        <div class="field">
          <label for="run-target-query">PQL query *</label>
          <input id="run-target-query" data-testid="run-target-query" aria-required="true" placeholder={'nodes[certname] { }'} value={t.query} onInput={(e) => set({ query: (e.target as HTMLInputElement).value })} />
          <QueryPreview query={t.query} />
        </div>
      )}
      {t.kind === 'node_group' && (
        <p class="field">
          <label for="run-target-group">Node group *</label>
          <input id="run-target-group" data-testid="run-target-group" aria-required="true" value={t.group} onInput={(e) => set({ group: (e.target as HTMLInputElement).value })} />
        </p>
      )}
    </fieldset>
  );
}

/** Concurrency and timeout fields; empty means the orchestrator's default. */
export function RunLimits(p: Limits & { onChange(v: Limits): void }) {
  return (
    <fieldset>
      <legend>Limits</legend>
      <p class="field">
        <label for="run-concurrency">Concurrency (nodes at once; empty: no limit)</label>
        <input id="run-concurrency" data-testid="run-concurrency" type="number" min="1" step="1" value={p.concurrency} onInput={(e) => p.onChange({ concurrency: (e.target as HTMLInputElement).value, timeout: p.timeout })} />
      </p>
      <p class="field">
        <label for="run-timeout">Timeout per node in seconds (empty: the default)</label>
        <input id="run-timeout" data-testid="run-timeout" type="number" min="1" step="1" value={p.timeout} onInput={(e) => p.onChange({ concurrency: p.concurrency, timeout: (e.target as HTMLInputElement).value })} />
      </p>
    </fieldset>
  );
}

/** A number field's value for the API: a number when it reads as one, else the text (the API refuses it with its own message). */
export function numberOrText(s: string): number | string | undefined {
  const v = s.trim();
  if (v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : v;
}

export interface Limits {
  concurrency: string;
  timeout: string;
}

/**
 * Starting a job from a run form: `start` POSTs the body (with the limits given) to `path` and goes
 * to the new job's page; the API's refusal is `error`, in its own words.
 */
export function useStartJob(): { busy: boolean; error: string | null; start(path: string, body: Record<string, unknown>, limits: Limits): Promise<void> } {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const start = async (path: string, body: Record<string, unknown>, limits: Limits) => {
    setBusy(true);
    setError(null);
    const c = numberOrText(limits.concurrency);
    const t = numberOrText(limits.timeout);
    const all = { ...body, ...(c !== undefined ? { concurrency: c } : {}), ...(t !== undefined ? { timeout: t } : {}) };
    try {
      const res = await api<{ job: { name: string } }>(path, { method: 'POST', body: all });
      navigate(`/jobs/${encodeURIComponent(res.job.name)}`);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, start };
}
