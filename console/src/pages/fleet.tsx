// Fleet: every node the orchestrator knows, connected or not, its broker and since when; a name
// filter (in the page) and a PQL query (the API's ?query=); facts on demand.
import { useState } from 'preact/hooks';
import { api, isAbort, messageOf } from '../api.ts';
import { pretty, time } from '../format.ts';
import { loc, navigate, qs } from '../router.ts';
import type { InventoryNode } from '../types.ts';
import { ErrorText, TableHead, useLoad, useOpenSet } from '../ui/common.tsx';

function FactsRow(p: { node: string; colSpan: number }) {
  const [facts, setFacts] = useState<string | null>(null);
  useLoad(async (signal) => {
    try {
      const r = await api<{ items: InventoryNode[] }>('/orchestrator/v1/inventory?facts=true', { signal });
      const n = r.items.find((i) => i.name === p.node);
      setFacts(n?.facts && Object.keys(n.facts).length > 0 ? pretty(n.facts) : 'No facts known for this node.');
    } catch (err) {
      if (!isAbort(err)) setFacts(`Error: ${messageOf(err)}`);
    }
  }, [p.node]);
  return (
    <tr class="detail">
      <td colSpan={p.colSpan}>
        <pre data-testid="fleet-facts" aria-label={`Facts of ${p.node}`}>{facts ?? 'Loading facts…'}</pre>
      </td>
    </tr>
  );
}

export function Fleet() {
  const q = loc.value.query;
  const name = q.get('name') ?? '';
  const query = q.get('query') ?? '';
  const [queryInput, setQueryInput] = useState(query);
  const [nodes, setNodes] = useState<InventoryNode[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, toggle] = useOpenSet();

  useLoad(async (signal) => {
    try {
      const r = await api<{ items: InventoryNode[] }>(`/orchestrator/v1/inventory${qs({ query })}`, { signal });
      setNodes(r.items);
      setError(null);
    } catch (err) {
      if (!isAbort(err)) setError(messageOf(err));
    }
  }, [query]);

  const setUrl = (v: { name?: string; query?: string }) => navigate(`/fleet${qs({ name, query, ...v })}`, { replace: true });
  const shown = (nodes ?? []).filter((n) => n.name.toLowerCase().includes(name.toLowerCase()));
  const connected = shown.filter((n) => n.connected).length;

  return (
    <section>
      <h1>Fleet</h1>
      <p class="counts" data-testid="fleet-counts" aria-live="polite">
        {nodes ? `${shown.length} ${shown.length === 1 ? 'node' : 'nodes'} · ${connected} connected` : 'Loading…'}
      </p>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setUrl({ query: queryInput.trim() });
        }}
      >
        <p class="field">
          <label for="fleet-filter-name">Name contains</label>
          <input id="fleet-filter-name" data-testid="fleet-filter-name" value={name} onInput={(e) => setUrl({ name: (e.target as HTMLInputElement).value })} />
        </p>
        <p class="field wide">
          <label for="fleet-filter-query">PQL query (Enter to apply)</label>
          <input id="fleet-filter-query" data-testid="fleet-filter-query" value={queryInput} placeholder={'inventory[certname] { facts.os.family = "Debian" }'} onInput={(e) => setQueryInput((e.target as HTMLInputElement).value)} />
        </p>
        <button type="submit" data-testid="fleet-filter-apply">Apply</button>
      </form>
      <ErrorText testid="fleet-error" error={error} />
      <table>
        <TableHead caption="Nodes" columns={['Name', 'Connected', 'Broker', 'Since', 'Facts']} />
        <tbody>
          {shown.map((n) => [
            <tr key={n.name} data-testid="fleet-row" data-node={n.name} data-connected={String(n.connected)}>
              <td>{n.name}</td>
              <td>
                <span class={`state ${n.connected ? 'ok' : 'bad'}`}>{n.connected ? 'connected' : 'not connected'}</span>
              </td>
              <td>{n.broker ?? '—'}</td>
              <td>{time(n.timestamp)}</td>
              <td>
                <button type="button" data-testid="fleet-facts-button" aria-expanded={open.has(n.name)} onClick={() => toggle(n.name)}>
                  {open.has(n.name) ? 'Hide facts' : 'Facts'}
                  <span class="sr-only"> of {n.name}</span>
                </button>
              </td>
            </tr>,
            open.has(n.name) ? <FactsRow key={`${n.name}-facts`} node={n.name} colSpan={5} /> : null,
          ])}
        </tbody>
      </table>
      {nodes && shown.length === 0 && <p>No nodes{name || query ? ' match these filters' : ''}.</p>}
    </section>
  );
}
