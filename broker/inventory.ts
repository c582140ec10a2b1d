// Inventory: queries over connected sessions, and subscriptions that receive batched changes.
import { inventoryUpdate, type InventoryChange } from '../protocol/inventory.ts';
import type { EnvelopeV2 } from '../protocol/pcp-v2.ts';
import { matchesUriPattern, parseUri, type UriPattern } from '../protocol/uri.ts';
import type { Session, SessionRegistry } from './sessions.ts';

export class Inventory {
  private readonly subscribers = new Set<Session>();
  private readonly dirty = new Set<Session>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly registry: SessionRegistry,
    private readonly send: (to: Session, env: EnvelopeV2) => void,
    private readonly updateIntervalMs: number,
  ) {}

  /** URIs of connected sessions matching any pattern (and of `remote` ones: elsewhere in the fabric), sorted. */
  query(patterns: readonly UriPattern[], remote: readonly string[] = []): string[] {
    const found = new Set<string>();
    for (const uri of remote) {
      let parsed;
      try {
        parsed = parseUri(uri);
      } catch {
        continue; // not a URI (the directory is only written by brokers; nothing to show)
      }
      if (patterns.some((p) => matchesUriPattern(p, parsed.commonName, parsed.clientType))) found.add(uri);
    }
    const scan: UriPattern[] = [];
    for (const p of patterns) {
      if (p.commonName !== null && p.clientType !== null) {
        if (this.registry.has(p.source)) found.add(p.source);
      } else {
        scan.push(p);
      }
    }
    if (scan.length > 0) {
      for (const s of this.registry.values()) {
        if (scan.some((p) => matchesUriPattern(p, s.commonName, s.clientType))) found.add(s.uri);
      }
    }
    return [...found].sort();
  }

  /** Starts (or replaces) a subscription. Call after the response has been sent. */
  subscribe(session: Session, patterns: UriPattern[]): void {
    session.subscription = patterns;
    this.subscribers.add(session);
  }

  unsubscribe(session: Session): void {
    session.subscription = null;
    session.pendingChanges = null;
    this.subscribers.delete(session);
    this.dirty.delete(session);
  }

  /** Records that `session` connected (1) or disconnected (-1). */
  recordChange(session: Session, change: 1 | -1): void {
    this.record(session.uri, session.commonName, session.clientType, change, session);
  }

  /** Records that a session on another broker of the fabric connected (1) or disconnected (-1). */
  recordRemoteChange(uri: string, change: 1 | -1): void {
    if (this.subscribers.size === 0) return;
    let parsed;
    try {
      parsed = parseUri(uri);
    } catch {
      return;
    }
    this.record(uri, parsed.commonName, parsed.clientType, change, null);
  }

  private record(uri: string, commonName: string, clientType: string, change: 1 | -1, self: Session | null): void {
    if (this.subscribers.size === 0) return;
    const entry: InventoryChange = { client: uri, change };
    for (const sub of this.subscribers) {
      if (sub === self || !sub.subscription) continue;
      if (!sub.subscription.some((p) => matchesUriPattern(p, commonName, clientType))) continue;
      (sub.pendingChanges ??= []).push(entry);
      this.dirty.add(sub);
    }
    if (this.dirty.size > 0 && this.timer === null) {
      this.timer = setTimeout(() => this.flush(), this.updateIntervalMs);
    }
  }

  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const sub of this.dirty) {
      const changes = sub.pendingChanges;
      sub.pendingChanges = null;
      if (changes && changes.length > 0 && !sub.ended) this.send(sub, inventoryUpdate(sub.uri, changes));
    }
    this.dirty.clear();
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.subscribers.clear();
    this.dirty.clear();
  }
}
