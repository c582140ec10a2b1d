// Who is connected, kept current by an inventory subscription (not by polling).
import { EventEmitter } from 'node:events';
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

export class InventoryTracker extends EventEmitter<{ down: [node: string]; up: [node: string] }> {
  private readonly nodes = new Map<string, { connected: boolean; since: string }>();

  constructor(
    private readonly client: PcpClient,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
    client.on('inventory', (changes) => this.apply(changes));
    client.on('inventorySnapshot', (uris) => this.reset(uris));
    client.on('disconnected', () => {
      const now = new Date().toISOString();
      for (const [name, n] of this.nodes) {
        if (!n.connected) continue;
        Object.assign(n, { connected: false, since: now });
        this.emit('down', name);
      }
    });
  }

  /** Subscribes (once connected); renewed by the client after every reconnection. */
  async start(): Promise<void> {
    this.reset(await this.client.subscribeInventory(AGENT_QUERY));
  }

  /** Resolves when the node's session goes (now, if it is not connected); cancel when no longer needed. */
  whenDisconnected(node: string): { promise: Promise<void>; cancel: () => void } {
    let cancel = () => {};
    const promise = new Promise<void>((resolve) => {
      if (!this.isConnected(node)) return resolve();
      const onDown = (n: string) => {
        if (n === node) resolve();
      };
      this.on('down', onDown);
      cancel = () => this.off('down', onDown);
    });
    void promise.then(() => cancel());
    return { promise, cancel };
  }

  /**
   * Resolves true at the node's next `up` (at once when `now` and it is connected), false after
   * `timeoutMs`. Every wait is bounded; the listener goes either way.
   */
  nextUp(node: string, timeoutMs: number, opts: { now?: boolean } = {}): Promise<boolean> {
    if (opts.now && this.isConnected(node)) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = (up: boolean) => {
        clearTimeout(timer);
        this.off('up', onUp);
        resolve(up);
      };
      const onUp = (n: string) => {
        if (n === node) done(true);
      };
      const timer = setTimeout(() => done(false), Math.max(0, timeoutMs));
      this.on('up', onUp);
    });
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
    for (const [name, n] of this.nodes) {
      if (n.connected === connected.has(name)) continue;
      Object.assign(n, { connected: connected.has(name), since: now });
      this.emit(n.connected ? 'up' : 'down', name);
    }
    for (const name of connected) {
      if (this.nodes.has(name)) continue;
      this.nodes.set(name, { connected: true, since: now });
      this.emit('up', name);
    }
    this.log.debug({ connected: connected.size }, 'inventory snapshot');
  }

  private apply(changes: InventoryChange[]): void {
    const now = new Date().toISOString();
    for (const c of changes) {
      const name = parseUri(c.client).commonName;
      this.nodes.set(name, { connected: c.change === 1, since: now });
      this.emit(c.change === 1 ? 'up' : 'down', name);
    }
    this.log.debug({ changes: changes.length }, 'inventory changed');
  }
}
