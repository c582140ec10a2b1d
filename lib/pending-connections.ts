// Connections a TLS server has accepted that have not yet sent a complete request (the broker's
// WebSocket upgrade, the orchestrator's first request head): each has a deadline for its TLS
// handshake and one for that request, and a source address may hold only so many at once. So
// half-open connections cost a bounded number of file descriptors for a bounded time, whatever the
// client does. Used by broker/server.ts and orchestrator/http/listener.ts.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** Which deadline closed a connection. */
export type PendingPhase = 'handshake' | 'request';

export interface PendingOptions {
  /** Milliseconds from the start of a TLS handshake to its end (`tls-handshake-timeout`). */
  handshakeTimeoutMs: number;
  /** Milliseconds from the end of the TLS handshake to a complete request (the broker's `upgrade-timeout`, the orchestrator's `headers-timeout`). */
  requestTimeoutMs: number;
  /** Pending connections one source address may hold (`max-pending-per-source`; 0: no bound). */
  maxPerSource: number;
  /** A connection was closed by a deadline (the server counts and logs it). */
  onDeadline: (phase: PendingPhase, remote: string) => void;
}

/** Deadlines are checked at least this often (more often for short ones), and at most every 10 ms. */
const SWEEP_MAX_MS = 250;
const SWEEP_MIN_MS = 10;

/**
 * The book of pending connections, keyed by the accepted (raw) socket. Two insertion-ordered maps
 * hold the start of each handshake and of each request wait; since every entry of a map has the
 * same timeout, one sweep walks each from its oldest entry and stops at the first that is in time.
 * No timer or closure per connection.
 */
export class PendingConnections {
  /** Raw socket -> its source address, from accept until its request, or its close. */
  private readonly sources = new Map<Socket, string>();
  private readonly bySource = new Map<string, number>();
  private readonly handshaking = new Map<Socket, number>();
  private readonly requesting = new Map<Socket, number>();
  private sweep: NodeJS.Timeout | null = null;
  private readonly onClose: (this: Socket) => void;
  private readonly sweepMs: number;

  constructor(private readonly o: PendingOptions) {
    const book = this;
    this.onClose = function onClose(this: Socket) {
      book.leave(this);
    };
    this.sweepMs = Math.max(SWEEP_MIN_MS, Math.min(o.handshakeTimeoutMs / 4, o.requestTimeoutMs / 4, SWEEP_MAX_MS));
  }

  /** Connections accepted that have neither sent their request nor closed. */
  get size(): number {
    return this.sources.size;
  }

  /** Enters an accepted connection, or says why it must be refused (it then is not entered). */
  enter(socket: Socket): 'per_source' | undefined {
    const source = socket.remoteAddress ?? '';
    const held = this.bySource.get(source) ?? 0;
    if (this.o.maxPerSource > 0 && held >= this.o.maxPerSource) return 'per_source';
    this.bySource.set(source, held + 1);
    this.sources.set(socket, source);
    socket.once('close', this.onClose);
    return undefined;
  }

  /**
   * The handshake clock of an entered connection (re)starts now: at accept, and (the broker) again
   * when it gets a handshake slot. Waiting for a slot has a bound of its own.
   */
  handshakeStarted(socket: Socket): void {
    if (!this.sources.has(socket)) return;
    this.handshaking.delete(socket); // re-entered at the end, keeping the map in time order
    this.handshaking.set(socket, performance.now());
    this.arm();
  }

  /** The ClientHello arrived (the broker): the connection waits for a handshake slot, with the gate's bound. */
  helloArrived(socket: Socket): void {
    this.handshaking.delete(socket);
  }

  /** The TLS handshake succeeded: the request is awaited from now on. */
  secured(tls: TLSSocket): void {
    const raw = rawOf(tls);
    if (raw === undefined || !this.handshaking.delete(raw)) return;
    this.requesting.set(raw, performance.now());
    this.arm();
  }

  /** The connection sent its request (or ended): it is pending no more. False if it was not. */
  settled(tls: TLSSocket): boolean {
    const raw = rawOf(tls);
    if (raw === undefined || !this.sources.has(raw)) return false;
    this.leave(raw);
    return true;
  }

  /** Stops the deadlines and closes every pending connection (the server is shutting down). */
  close(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
    for (const socket of [...this.sources.keys()]) socket.destroy();
  }

  private leave(socket: Socket): void {
    const source = this.sources.get(socket);
    if (source === undefined) return;
    this.sources.delete(socket);
    this.handshaking.delete(socket);
    this.requesting.delete(socket);
    socket.off('close', this.onClose);
    const held = (this.bySource.get(source) ?? 1) - 1;
    if (held > 0) this.bySource.set(source, held);
    else this.bySource.delete(source);
  }

  private arm(): void {
    this.sweep ??= setInterval(() => this.expire(performance.now()), this.sweepMs).unref();
  }

  private expire(now: number): void {
    this.expireIn(this.handshaking, now - this.o.handshakeTimeoutMs, 'handshake');
    this.expireIn(this.requesting, now - this.o.requestTimeoutMs, 'request');
    if (this.handshaking.size === 0 && this.requesting.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  private expireIn(started: Map<Socket, number>, cutoff: number, phase: PendingPhase): void {
    for (const [socket, at] of started) {
      if (at > cutoff) return;
      const remote = this.sources.get(socket) ?? '';
      this.leave(socket);
      // A timer of Node's own (TLS handshake, headers) got there first, and was counted.
      if (socket.destroyed) continue;
      this.o.onDeadline(phase, remote);
      // Destroying the accepted socket ends the TLS socket over it (and its HTTP parser) too.
      socket.destroy();
    }
  }
}

/** A TLSSocket made by the server over an accepted socket keeps it as its (undocumented) parent. */
function rawOf(tls: TLSSocket): Socket | undefined {
  return (tls as TLSSocket & { _parent?: Socket })._parent;
}
