// The inventory as PuppetDB has it: every node PuppetDB knows, with its environment and facts,
// and every node connected to the broker (which PuppetDB may not know yet), each marked
// connected or not. The same shape as FactsStore's, so that scopes and the classifier read either.
import type { NodeFacts } from '../query/index.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import type { PuppetDbClient } from './client.ts';

export class PuppetDbNodes {
  constructor(
    private readonly puppetdb: PuppetDbClient,
    private readonly inventory: InventoryTracker,
  ) {}

  async nodes(opts: { facts: boolean }): Promise<NodeFacts[]> {
    const known = await this.puppetdb.nodes(opts);
    const out = new Map<string, NodeFacts>();
    for (const n of known) out.set(n.certname, { certname: n.certname, environment: n.environment, connected: this.inventory.isConnected(n.certname), facts: n.facts });
    for (const name of this.inventory.connectedNodes()) {
      if (!out.has(name)) out.set(name, { certname: name, environment: null, connected: true, facts: {} });
    }
    return [...out.values()].sort((a, b) => (a.certname < b.certname ? -1 : a.certname > b.certname ? 1 : 0));
  }
}
