// Sessions: one per connected client URI. A newer session for a URI replaces the older one.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { InventoryChange } from '../protocol/inventory.ts';
import type { UriPattern } from '../protocol/uri.ts';
import type { Principal } from './authz.ts';

export class Session implements Principal {
  /** Set when the broker has pinged and no pong has come back yet. */
  awaitingPong = false;
  /** Set once the session has left the registry (closed or replaced). */
  ended = false;
  lastSeenMs: number;
  /** Inventory subscription patterns, and changes waiting for the next batch. */
  subscription: UriPattern[] | null = null;
  pendingChanges: InventoryChange[] | null = null;
  /** The client asked for error codes at its upgrade (ERROR_CODES_HEADER): its error_messages carry them. */
  errorCodes = false;

  constructor(
    readonly uri: string,
    readonly commonName: string,
    readonly clientType: string,
    readonly isController: boolean,
    readonly ws: WebSocket,
    /** The TLS socket under `ws`, corked by the router while it batches writes. */
    readonly socket: Socket,
    readonly remoteAddress: string,
    readonly connectedAtMs: number,
    /** The PCP version the session speaks: 2 (JSON text frames) or 1 (binary chunks). */
    readonly pcpVersion: 1 | 2 = 2,
  ) {
    this.lastSeenMs = connectedAtMs;
  }
}

export class SessionRegistry {
  private readonly byUri = new Map<string, Session>();

  get size(): number {
    return this.byUri.size;
  }

  get(uri: string): Session | undefined {
    return this.byUri.get(uri);
  }

  has(uri: string): boolean {
    return this.byUri.has(uri);
  }

  /** Adds a session; returns the session it replaced, if any. */
  add(session: Session): Session | undefined {
    const previous = this.byUri.get(session.uri);
    this.byUri.set(session.uri, session);
    if (previous) previous.ended = true;
    return previous;
  }

  /** Removes a session only if it is still the current one for its URI (a late close of a replaced socket is a no-op). */
  remove(session: Session): boolean {
    if (this.byUri.get(session.uri) !== session) return false;
    this.byUri.delete(session.uri);
    session.ended = true;
    return true;
  }

  values(): IterableIterator<Session> {
    return this.byUri.values();
  }
}
