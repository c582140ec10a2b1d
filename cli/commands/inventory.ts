// `baton inventory`: the nodes the orchestrator knows (GET /orchestrator/v1/inventory).
// --query is filtered here, and only for the simple form `certname ~ "regex"` (or `= "name"`):
// the orchestrator has no query endpoint for the inventory; other queries go with task/job run.
import type { Command } from 'commander';
import { action } from '../action.ts';
import { addApiOptions, apiClient, type ApiOptions } from '../client.ts';
import { usageError } from '../errors.ts';
import { green, out, printJson, red, table } from '../format.ts';

interface InventoryItem {
  name: string;
  connected: boolean;
  broker?: string | null;
  timestamp?: string | null;
}

/** A predicate for `certname ~ "re"`, `certname = "name"` (optionally inside `nodes[certname] { ... }`). */
export function certnameFilter(query: string): (name: string) => boolean {
  const inner = /^\s*nodes\s*\[[^\]]*\]\s*\{(.*)\}\s*$/s.exec(query)?.[1] ?? query;
  const m = /^\s*certname\s*(~|=)\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')\s*$/.exec(inner);
  if (!m) {
    throw usageError(
      `baton inventory --query understands only certname ~ "regex" and certname = "name": the orchestrator has no inventory query endpoint yet. ` +
        'Other queries (facts, environment, and/or) work as the scope of a job: baton task run ... --query \'...\'',
    );
  }
  const value = m[2] !== undefined ? (JSON.parse(`"${m[2]}"`) as string) : m[3]!;
  if (m[1] === '=') return (name) => name === value;
  let re: RegExp;
  try {
    re = new RegExp(value);
  } catch (err) {
    throw usageError(`--query: bad regular expression: ${(err as Error).message}`);
  }
  return (name) => re.test(name);
}

export function registerInventory(program: Command): void {
  addApiOptions(
    program
      .command('inventory')
      .description('list the nodes the orchestrator knows and whether they are connected')
      .option('--query <query>', 'only nodes whose certname matches: certname ~ "regex" or certname = "name"'),
  ).action(
    action(async (o: ApiOptions & { query?: string }) => {
      const keep = o.query === undefined ? () => true : certnameFilter(o.query);
      const res = (await apiClient(o).get('/orchestrator/v1/inventory')) as { items: InventoryItem[] };
      const items = res.items.filter((i) => keep(i.name)).sort((a, b) => a.name.localeCompare(b.name));
      if (o.json) return printJson({ items });
      if (items.length === 0) return out(o.query ? 'No node matches.' : 'No nodes have connected yet.');
      out(table(['node', 'connected', 'broker', 'since'], items.map((i) => [i.name, i.connected ? green('yes') : red('no'), i.broker ?? '', i.timestamp ?? ''])));
      out(`${items.filter((i) => i.connected).length}/${items.length} connected`);
    }),
  );
}
