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
import { PendingConnections } from '../../lib/pending-connections.ts';
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

/** A listener refusing connections at accept warns at most this often per reason. */
const REFUSAL_WARNING_INTERVAL_MS = 10_000;

export type { PendingConnections };

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
  const pending = new PendingConnections({
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    requestTimeoutMs: limits.headersTimeoutMs,
    maxPerSource: limits.maxPendingPerSource,
    onDeadline: (phase, remote) => {
      const reason = phase === 'handshake' ? 'handshake_timeout' : 'headers_timeout';
      refused(reason);
      log.debug({ remote, reason }, 'connection closed: its TLS handshake or request head took too long');
    },
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
    if (pending.enter(socket) === undefined) return pending.handshakeStarted(socket);
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
