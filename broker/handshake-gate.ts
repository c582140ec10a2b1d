// Admission of TCP connections to the broker's TLS server: a bound on concurrent handshakes.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { MAX_HANDSHAKE_QUEUE_LENGTH } from './defaults.ts';
import type { BrokerMetrics } from './metrics.ts';

/**
 * Admission of TCP connections to the TLS server. A connection takes a handshake slot only once
 * its first TLS record (the ClientHello) has arrived whole: a client that connects and sends
 * nothing, or a part of a ClientHello, costs no handshake slot (and is closed by the pending
 * book's handshake deadline). At most `max` handshakes in progress at once
 * (0: unlimited); others wait, unread, in arrival order for up to `queueTimeoutMs`, then are
 * reset before any TLS work (clients take that as "busy, retry soon"). A slot frees when the
 * handshake ends either way. At most `maxOpen` connections are open at once (0: unlimited; the
 * process's open-file budget): one more is reset at once, so that a broker at its file limit
 * refuses instead of leaving clients waiting. Allocation-light: no closure or object per connection.
 */
export class HandshakeGate {
  private readonly inProgress = new Set<Socket>();
  private readonly queued: Socket[] = [];
  private readonly queuedAt: number[] = [];
  private head = 0;
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly onClose: (this: Socket) => void;
  private readonly onGone: (this: Socket) => void;
  private readonly onReadable: (this: Socket) => void;
  /** The first record's header (5 bytes), read while its body is awaited. */
  private readonly headers = new Map<Socket, Buffer>();
  /** Connections whose ClientHello has not arrived whole yet. */
  private readonly awaitingHello = new Set<Socket>();
  /** Connections admitted and not closed yet. */
  private open = 0;
  private refusedAtLimitSince = 0;
  private lastLimitWarningMs = -Infinity;

  constructor(
    private readonly max: number,
    private readonly queueTimeoutMs: number,
    private readonly startHandshake: (socket: Socket) => void,
    private readonly metrics: BrokerMetrics,
    private readonly maxOpen = 0,
    private readonly onLimit: (refused: number, open: number) => void = () => {},
    /** The ClientHello of `socket` arrived (or its first bytes are not TLS): it stops waiting for it. */
    private readonly onHello: (socket: Socket) => void = () => {},
    /** A connection closed before its ClientHello arrived whole (its TLS handshake failed). */
    private readonly onNoHello: () => void = () => {},
  ) {
    const gate = this;
    this.onClose = function onClose(this: Socket) {
      gate.release(this);
    };
    this.onGone = function onGone(this: Socket) {
      gate.open--;
      gate.headers.delete(this);
      if (gate.awaitingHello.delete(this)) gate.onNoHello();
    };
    this.onReadable = function onReadable(this: Socket) {
      gate.readHello(this);
    };
  }

  /** Connections open now (handshaking, waiting or in session). */
  get openConnections(): number {
    return this.open;
  }

  get waiting(): number {
    return this.queued.length - this.head;
  }

  admit(socket: Socket): void {
    socket.on('error', ignoreError);
    if (this.closed) return this.shed(socket);
    if (this.maxOpen > 0 && this.open >= this.maxOpen) return this.refuseAtLimit(socket);
    this.open++;
    socket.once('close', this.onGone);
    // Reading starts with the listener; the bytes stay buffered for the TLS socket.
    this.awaitingHello.add(socket);
    socket.on('readable', this.onReadable);
  }

  /** Reads the first TLS record's header, then waits until its body is buffered too. */
  private readHello(socket: Socket): void {
    let header = this.headers.get(socket);
    if (header === undefined) {
      const h = socket.read(TLS_RECORD_HEADER_BYTES) as Buffer | null;
      if (h === null) return;
      header = h;
      if (header[0] !== TLS_HANDSHAKE_RECORD) return this.helloDone(socket, header);
      this.headers.set(socket, header);
    }
    const body = socket.read(header.readUInt16BE(3)) as Buffer | null;
    if (body === null) return;
    this.helloDone(socket, Buffer.concat([header, body]));
  }

  private helloDone(socket: Socket, bytes: Buffer): void {
    this.headers.delete(socket);
    this.awaitingHello.delete(socket);
    socket.off('readable', this.onReadable);
    socket.unshift(bytes);
    this.onHello(socket);
    this.enqueue(socket);
  }

  private enqueue(socket: Socket): void {
    if (this.closed || socket.destroyed) return;
    if (this.max === 0 || (this.inProgress.size < this.max && this.waiting === 0)) return this.begin(socket, 0);
    if (this.queueTimeoutMs === 0 || this.waiting >= MAX_HANDSHAKE_QUEUE_LENGTH) return this.shed(socket);
    this.queued.push(socket);
    this.queuedAt.push(performance.now());
    this.metrics.handshakeQueue.set(this.waiting);
    this.sweep ??= setInterval(() => this.expire(performance.now()), Math.max(10, Math.min(this.queueTimeoutMs / 4, 250))).unref();
  }

  /** The TLS handshake of `tls` succeeded or failed: its slot goes to the next waiting connection. */
  handshakeEnded(tls: TLSSocket): void {
    // A TLSSocket made by the server over an accepted socket keeps it as its (undocumented) parent.
    const raw = (tls as TLSSocket & { _parent?: Socket })._parent;
    if (raw) this.release(raw);
  }

  close(): void {
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
    while (this.waiting > 0) this.shed(this.take());
    for (const socket of this.awaitingHello) socket.destroy();
    this.metrics.handshakeQueue.set(0);
  }

  private begin(socket: Socket, waitedMs: number): void {
    this.inProgress.add(socket);
    this.metrics.handshakesInProgress.inc();
    this.metrics.handshakeWaitSeconds.observe(waitedMs / 1000);
    socket.once('close', this.onClose);
    this.startHandshake(socket);
  }

  private release(socket: Socket): void {
    if (!this.inProgress.delete(socket)) return;
    socket.off('close', this.onClose);
    this.metrics.handshakesInProgress.dec();
    if (this.waiting === 0 || this.closed) return;
    const now = this.expire(performance.now());
    while (this.waiting > 0 && this.inProgress.size < this.max) {
      const since = this.queuedAt[this.head]!;
      const next = this.take();
      if (next.destroyed) continue;
      this.begin(next, now - since);
    }
    this.metrics.handshakeQueue.set(this.waiting);
  }

  /** Sheds connections that have waited longer than the queue timeout (the oldest are first). */
  private expire(now: number): number {
    while (this.waiting > 0 && now - this.queuedAt[this.head]! > this.queueTimeoutMs) this.shed(this.take());
    if (this.waiting === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
    this.metrics.handshakeQueue.set(this.waiting);
    return now;
  }

  private take(): Socket {
    const socket = this.queued[this.head]!;
    this.queued[this.head] = undefined as unknown as Socket;
    this.head++;
    if (this.head === this.queued.length) {
      this.queued.length = this.queuedAt.length = this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queued.length) {
      this.queued.splice(0, this.head);
      this.queuedAt.splice(0, this.head);
      this.head = 0;
    }
    return socket;
  }

  /** Resets a connection beyond the open-connection budget; tells `onLimit` at most every 10 s. */
  private refuseAtLimit(socket: Socket): void {
    this.metrics.connectionsAtFileLimit.inc();
    this.metrics.connectionsRefused.file_limit.inc();
    this.refusedAtLimitSince++;
    socket.resetAndDestroy();
    const now = performance.now();
    if (now - this.lastLimitWarningMs < LIMIT_WARNING_INTERVAL_MS) return;
    this.lastLimitWarningMs = now;
    this.onLimit(this.refusedAtLimitSince, this.open);
    this.refusedAtLimitSince = 0;
  }

  private shed(socket: Socket): void {
    this.metrics.connectionsShed.inc();
    this.metrics.connectionsRefused.busy.inc();
    socket.resetAndDestroy();
  }
}

/** A broker refusing connections at its file limit says so at most this often. */
const LIMIT_WARNING_INTERVAL_MS = 10_000;

function ignoreError(): void {}

const TLS_RECORD_HEADER_BYTES = 5;
/** The content type of a TLS handshake record (the ClientHello comes in one). */
const TLS_HANDSHAKE_RECORD = 0x16;
