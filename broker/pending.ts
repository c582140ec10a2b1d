// Connections that are not sessions yet: from TCP accept until their WebSocket upgrade (or plain
// HTTP request). Each has a deadline for its TLS handshake and one for its upgrade request; a
// source address may hold only so many at once. Half-open connections so cost a bounded number of
// file descriptors for a bounded time, whatever the client does.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConnectionRefusal } from './errors.ts';

export interface PendingOptions {
  /** Milliseconds from the start of a TLS handshake to its end (`tls-handshake-timeout`). */
  handshakeTimeoutMs: number;
  /** Milliseconds from the end of the TLS handshake to a complete upgrade request (`upgrade-timeout`). */
  upgradeTimeoutMs: number;
  /** Pending connections one source address may hold (`max-pending-per-source`; 0: no bound). */
  maxPerSource: number;
  /** A connection was closed by a deadline (counted and logged by the broker). */
  onDeadline: (reason: Extract<ConnectionRefusal, 'handshake_timeout' | 'upgrade_timeout'>, remote: string) => void;
}

/**
 * The book of pending connections, keyed by the accepted (raw) socket. Two insertion-ordered maps
 * hold the start of each handshake and of each upgrade wait; since every entry of a map has the
 * same timeout, one sweep walks each from its oldest entry and stops at the first that is in time.
 * No timer or closure per connection.
 */
export class PendingConnections {
  /** Raw socket -> its source address, from accept until upgrade, request or close. */
  private readonly sources = new Map<Socket, string>();
  private readonly bySource = new Map<string, number>();
  private readonly handshaking = new Map<Socket, number>();
  private readonly upgrading = new Map<Socket, number>();
  private sweep: NodeJS.Timeout | null = null;
  private readonly onClose: (this: Socket) => void;
  private readonly sweepMs: number;

  constructor(private readonly o: PendingOptions) {
    const book = this;
    this.onClose = function onClose(this: Socket) {
      book.leave(this);
    };
    this.sweepMs = Math.max(10, Math.min(o.handshakeTimeoutMs / 4, o.upgradeTimeoutMs / 4, SWEEP_MAX_MS));
  }

  /** Connections accepted and neither upgraded, nor past a plain HTTP request, nor closed. */
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
   * The handshake clock of an entered connection (re)starts now: at accept (for its ClientHello
   * to arrive) and again when it gets a handshake slot. Waiting for a slot has a bound of its own.
   */
  handshakeStarted(socket: Socket): void {
    if (!this.sources.has(socket)) return;
    this.handshaking.delete(socket); // re-entered at the end, keeping the map in time order
    this.handshaking.set(socket, performance.now());
    this.arm();
  }

  /** The ClientHello arrived: the connection waits for a handshake slot, with the gate's bound. */
  helloArrived(socket: Socket): void {
    this.handshaking.delete(socket);
  }

  /** The TLS handshake succeeded: the upgrade request is awaited from now on. */
  secured(tls: TLSSocket): void {
    const raw = rawOf(tls);
    if (raw === undefined || !this.handshaking.delete(raw)) return;
    this.upgrading.set(raw, performance.now());
    this.arm();
  }

  /** The connection is a WebSocket now, or sent a complete HTTP request: it is pending no more. */
  settled(tls: TLSSocket): void {
    const raw = rawOf(tls);
    if (raw !== undefined) this.leave(raw);
  }

  /** Stops the deadlines and closes every pending connection (the broker is shutting down). */
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
    this.upgrading.delete(socket);
    socket.off('close', this.onClose);
    const held = (this.bySource.get(source) ?? 1) - 1;
    if (held > 0) this.bySource.set(source, held);
    else this.bySource.delete(source);
  }

  private arm(): void {
    this.sweep ??= setInterval(() => this.expire(performance.now()), this.sweepMs).unref();
  }

  private expire(now: number): void {
    this.expireIn(this.handshaking, now - this.o.handshakeTimeoutMs, 'handshake_timeout');
    this.expireIn(this.upgrading, now - this.o.upgradeTimeoutMs, 'upgrade_timeout');
    if (this.handshaking.size === 0 && this.upgrading.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  private expireIn(started: Map<Socket, number>, cutoff: number, reason: 'handshake_timeout' | 'upgrade_timeout'): void {
    for (const [socket, at] of started) {
      if (at > cutoff) return;
      const remote = this.sources.get(socket) ?? '';
      this.leave(socket);
      this.o.onDeadline(reason, remote);
      // Destroying the accepted socket ends the TLS socket over it (and its HTTP parser) too.
      socket.destroy();
    }
  }
}

/** Deadlines are checked at least this often (more often for short ones). */
const SWEEP_MAX_MS = 250;

/** A TLSSocket made by the server over an accepted socket keeps it as its (undocumented) parent. */
function rawOf(tls: TLSSocket): Socket | undefined {
  return (tls as TLSSocket & { _parent?: Socket })._parent;
}
