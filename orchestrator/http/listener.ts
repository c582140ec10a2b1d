// The edges of the orchestrator's HTTPS listener: connections that have not sent a complete
// request head yet are "pending". Each has an absolute deadline for its TLS handshake and one for
// its first request head; a source address may hold only so many at once; every open connection,
// in handshake or not, counts against max-connections. Later requests on a kept-alive connection
// are bounded by Node's own headersTimeout and requestTimeout (set by server.ts), which stop at
// the end of the request: a response that streams for hours (SSE, a blocking query) is not cut.
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../../lib/log.ts';
import type { ConnectionRefusal } from '../metrics.ts';

export interface ListenerLimits {
  /** Milliseconds from accept to the end of the TLS handshake (`tls-handshake-timeout`). */
  handshakeTimeoutMs: number;
  /** Milliseconds from the end of the handshake to a complete first request head (`headers-timeout`). */
  headersTimeoutMs: number;
  /** Open connections (0: no bound); one more is closed at accept (`max-connections`). */
  maxConnections: number;
  /** Pending connections one source address may hold (0: no bound; `max-pending-per-source`). */
  maxPendingPerSource: number;
}

type Deadline = Extract<ConnectionRefusal, 'handshake_timeout' | 'headers_timeout'>;

/**
 * The book of pending connections, keyed by the accepted (raw) socket. Two insertion-ordered maps
 * hold when each handshake and each wait for a first request head started; every entry of a map
 * has the same timeout, so a sweep walks each from its oldest entry and stops at the first in
 * time. No timer or closure per connection.
 */
export class PendingConnections {
  private readonly sources = new Map<Socket, string>();
  private readonly bySource = new Map<string, number>();
  private readonly handshaking = new Map<Socket, number>();
  private readonly awaitingHead = new Map<Socket, number>();
  private sweep: NodeJS.Timeout | null = null;
  private readonly onClose: (this: Socket) => void;
  private readonly sweepMs: number;

  constructor(
    private readonly limits: Pick<ListenerLimits, 'handshakeTimeoutMs' | 'headersTimeoutMs' | 'maxPendingPerSource'>,
    private readonly onDeadline: (reason: Deadline, remote: string) => void,
  ) {
    const book = this;
    this.onClose = function onClose(this: Socket) {
      book.leave(this);
    };
    this.sweepMs = Math.max(MIN_SWEEP_MS, Math.min(limits.handshakeTimeoutMs / 4, limits.headersTimeoutMs / 4, MAX_SWEEP_MS));
  }

  /** Connections accepted that have not sent a complete request head (nor closed). */
  get size(): number {
    return this.sources.size;
  }

  /** Enters an accepted connection (its handshake clock starts now), or says it must be refused. */
  enter(socket: Socket): 'per_source' | undefined {
    const source = socket.remoteAddress ?? '';
    const held = this.bySource.get(source) ?? 0;
    if (this.limits.maxPendingPerSource > 0 && held >= this.limits.maxPendingPerSource) return 'per_source';
    this.bySource.set(source, held + 1);
    this.sources.set(socket, source);
    this.handshaking.set(socket, performance.now());
    socket.once('close', this.onClose);
    this.arm();
    return undefined;
  }

  /** The TLS handshake succeeded: the first request head is awaited from now on. */
  secured(tls: TLSSocket): void {
    const raw = rawOf(tls);
    if (raw === undefined || !this.handshaking.delete(raw)) return;
    this.awaitingHead.set(raw, performance.now());
    this.arm();
  }

  /** A complete request head arrived over `tls` (or Node ended it): the connection is pending no more. */
  settled(tls: TLSSocket): boolean {
    const raw = rawOf(tls);
    if (raw === undefined || !this.sources.has(raw)) return false;
    this.leave(raw);
    return true;
  }

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
    this.awaitingHead.delete(socket);
    socket.off('close', this.onClose);
    const held = (this.bySource.get(source) ?? 1) - 1;
    if (held > 0) this.bySource.set(source, held);
    else this.bySource.delete(source);
  }

  private arm(): void {
    this.sweep ??= setInterval(() => this.expire(performance.now()), this.sweepMs).unref();
  }

  private expire(now: number): void {
    this.expireIn(this.handshaking, now - this.limits.handshakeTimeoutMs, 'handshake_timeout');
    this.expireIn(this.awaitingHead, now - this.limits.headersTimeoutMs, 'headers_timeout');
    if (this.sources.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  private expireIn(started: Map<Socket, number>, cutoff: number, reason: Deadline): void {
    for (const [socket, at] of started) {
      if (at > cutoff) return;
      const remote = this.sources.get(socket) ?? '';
      this.leave(socket);
      // Node's own timer (TLS handshake, headers) got there first and counted it.
      if (socket.destroyed) continue;
      this.onDeadline(reason, remote);
      // Destroying the accepted socket ends the TLS socket over it (and its HTTP parser) too.
      socket.destroy();
    }
  }
}

/** Deadlines are checked at least this often (more often for short ones), and at most this often. */
const MAX_SWEEP_MS = 250;
const MIN_SWEEP_MS = 10;
/** A listener refusing connections at accept warns at most this often per reason. */
const REFUSAL_WARNING_INTERVAL_MS = 10_000;

/** A TLSSocket made by the server over an accepted socket keeps it as its (undocumented) parent. */
function rawOf(tls: TLSSocket): Socket | undefined {
  return (tls as TLSSocket & { _parent?: Socket })._parent;
}

/**
 * Puts the limits on a (not yet listening) HTTPS server: the pending book on its connection
 * events, max-connections (Node's own, which counts every accepted socket, so also those in
 * handshake), and a count of each refusal. Returns the book (its size is in /status).
 */
export function guardListener(server: HttpsServer, limits: ListenerLimits, refused: (reason: ConnectionRefusal) => void, log: Logger): PendingConnections {
  const lastWarningMs: Partial<Record<ConnectionRefusal, number>> = {};
  const warn = (reason: ConnectionRefusal, fields: Record<string, unknown>) => {
    const now = performance.now();
    if (now - (lastWarningMs[reason] ?? -Infinity) < REFUSAL_WARNING_INTERVAL_MS) return;
    lastWarningMs[reason] = now;
    log.warn({ reason, ...fields }, 'HTTPS connections refused at accept (further ones are counted in baton_orchestrator_connections_refused_total)');
  };
  const pending = new PendingConnections(limits, (reason, remote) => {
    refused(reason);
    log.debug({ remote, reason }, 'connection closed: its TLS handshake or request head took too long');
  });
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
  server.on('drop', () => {
    refused('max_connections');
    warn('max_connections', { max_connections: limits.maxConnections });
  });
  // tls.Server wraps the raw socket in its own 'connection' listener (added first); destroying
  // the raw socket here ends that TLS socket before any handshake work.
  server.on('connection', (socket: Socket) => {
    socket.on('error', ignoreError);
    if (pending.enter(socket) === undefined) return;
    refused('per_source');
    warn('per_source', { remote: socket.remoteAddress, max_pending_per_source: limits.maxPendingPerSource });
    socket.resetAndDestroy();
  });
  server.on('secureConnection', (tls: TLSSocket) => pending.secured(tls));
  server.on('request', (req: { socket: TLSSocket }) => pending.settled(req.socket));
  server.on('tlsClientError', (err: NodeJS.ErrnoException, tls: TLSSocket) => {
    // The handshake failed and Node ends the connection: it leaves the book (counted once).
    // Node's own handshake timer (an idle one) may fire before the book's absolute deadline.
    if (pending.settled(tls) && err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') refused('handshake_timeout');
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    // Node's headersTimeout and requestTimeout both end a request as ERR_HTTP_REQUEST_TIMEOUT; on
    // a connection still pending, it was its first request head.
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') refused(pending.settled(socket) ? 'headers_timeout' : 'request_timeout');
  });
  server.on('close', () => pending.close());
  return pending;
}

function ignoreError(): void {}
