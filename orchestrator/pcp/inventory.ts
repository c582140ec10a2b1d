// Who is connected, kept current by an inventory subscription (not by polling).
import type { Logger } from '../../lib/log.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { InventoryChange } from '../../protocol/inventory.ts';
import { parseUri } from '../../protocol/uri.ts';

export const AGENT_QUERY = ['pcp://*/agent'];

export interface NodeConnection {
  name: string;
  connected: boolean;
  broker: string | null;
  timestamp: string | null;
}

export class InventoryTracker {
  private readonly nodes = new Map<string, { connected: boolean; since: string }>();

  constructor(
    private readonly client: PcpClient,
    private readonly log: Logger,
  ) {
    client.on('inventory', (changes) => this.apply(changes));
    client.on('inventorySnapshot', (uris) => this.reset(uris));
    client.on('disconnected', () => {
      const now = new Date().toISOString();
      for (const [, n] of this.nodes) if (n.connected) Object.assign(n, { connected: false, since: now });
    });
  }

  /** Subscribes (once connected); renewed by the client after every reconnection. */
  async start(): Promise<void> {
    this.reset(await this.client.subscribeInventory(AGENT_QUERY));
  }

  isConnected(node: string): boolean {
    return this.nodes.get(node)?.connected === true;
  }

  get(node: string): NodeConnection {
    const n = this.nodes.get(node);
    return { name: node, connected: n?.connected === true, broker: n?.connected ? this.client.broker : null, timestamp: n?.since ?? null };
  }

  all(): NodeConnection[] {
    return [...this.nodes.keys()].sort().map((n) => this.get(n));
  }

  connectedNodes(): string[] {
    return [...this.nodes].filter(([, n]) => n.connected).map(([name]) => name).sort();
  }

  private reset(uris: string[]): void {
    const now = new Date().toISOString();
    const connected = new Set(uris.map((u) => parseUri(u).commonName));
    for (const [name, n] of this.nodes) if (n.connected !== connected.has(name)) Object.assign(n, { connected: connected.has(name), since: now });
    for (const name of connected) if (!this.nodes.has(name)) this.nodes.set(name, { connected: true, since: now });
    this.log.debug({ connected: connected.size }, 'inventory snapshot');
  }

  private apply(changes: InventoryChange[]): void {
    const now = new Date().toISOString();
    for (const c of changes) {
      const name = parseUri(c.client).commonName;
      this.nodes.set(name, { connected: c.change === 1, since: now });
    }
    this.log.debug({ changes: changes.length }, 'inventory changed');
  }
}
