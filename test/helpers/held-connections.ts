// Connections that stop half-way, for the edges tests of the broker and the orchestrator: TCP
// connections that send nothing or part of a ClientHello, and when each was closed.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** A TLS record header announcing a 512-byte handshake record, then the start of a ClientHello. */
export const PARTIAL_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

export interface Held {
  socket: Socket;
  /** When the deadline's clock started, seen from here (connected, or TLS done). */
  since: number;
  closedAt: Promise<number>;
}

/** When `socket` closes (performance.now()). What comes is read (a 408 before the close): an unread socket never sees the end. */
export function closedAt(socket: Socket): Promise<number> {
  socket.on('error', () => {});
  socket.resume();
  return new Promise((resolve) => socket.once('close', () => resolve(performance.now())));
}

/** Opens a TCP connection that stops mid-handshake: it sends nothing, or part of a ClientHello. */
export async function holdHandshake(port: number, partial: boolean, localAddress?: string): Promise<Held> {
  const socket = tcpConnect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
  const closed = closedAt(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
  if (partial) socket.write(PARTIAL_CLIENT_HELLO);
  return { socket, since: performance.now(), closedAt: closed };
}

/** Finishes TLS (with `tls`'s options), then sends `head`, the start of a request that never ends. */
export async function holdRequestHead(port: number, tls: ConnectionOptions, head: string): Promise<Held> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ...tls });
  const closed = closedAt(socket);
  await new Promise((resolve, reject) => {
    const bound = setTimeout(() => reject(new Error('no TLS handshake of a held connection within 30 s')), HANDSHAKE_BOUND_MS);
    socket.once('secureConnect', () => resolve(clearTimeout(bound)));
    socket.once('error', (err) => {
      clearTimeout(bound);
      reject(err);
    });
  });
  const since = performance.now();
  socket.write(head);
  return { socket, since, closedAt: closed };
}

/** A held connection's own TLS handshake must end within this. */
const HANDSHAKE_BOUND_MS = 30_000;
