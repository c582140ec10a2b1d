// `baton inventory`: the nodes the orchestrator knows (GET /orchestrator/v1/inventory), or those a
// query selects (?query=, PQL or a PuppetDB AST, answered by the orchestrator over facts).
import type { Command } from 'commander';
import { action } from '../action.ts';
import { addApiOptions, apiClient, type ApiOptions } from '../client.ts';
import { green, out, printJson, red, table } from '../format.ts';

interface InventoryItem {
  name: string;
  connected: boolean;
  broker?: string | null;
  timestamp?: string | null;
}

/** A bare condition (`certname ~ "web"`) is the condition of a nodes query; PQL and ASTs go as they are. */
export function inventoryQuery(q: string): string {
  return /^\s*(nodes|inventory)\b|^\s*\[/.test(q) ? q : `nodes { ${q} }`;
}

export function registerInventory(program: Command): void {
  addApiOptions(
    program
      .command('inventory')
      .description('list the nodes the orchestrator knows and whether they are connected')
      .option('--query <query>', 'only the nodes a query selects: PQL (nodes[certname] { facts.os.family = "Debian" }, or just the condition) or a PuppetDB AST as JSON'),
  ).action(
    action(async (o: ApiOptions & { query?: string }) => {
      const path = o.query === undefined ? '/orchestrator/v1/inventory' : `/orchestrator/v1/inventory?query=${encodeURIComponent(inventoryQuery(o.query))}`;
      const res = (await apiClient(o).get(path)) as { items: InventoryItem[] };
      const items = [...res.items].sort((a, b) => a.name.localeCompare(b.name));
      if (o.json) return printJson({ items });
      if (items.length === 0) return out(o.query ? 'No node matches.' : 'No nodes have connected yet.');
      out(table(['node', 'connected', 'broker', 'since'], items.map((i) => [i.name, i.connected ? green('yes') : red('no'), i.broker ?? '', i.timestamp ?? ''])));
      out(`${items.filter((i) => i.connected).length}/${items.length} connected`);
    }),
  );
}
