// The broker: an HTTPS server whose WebSocket upgrades become PCP v2 sessions, plus the status
// and metrics endpoints on the same port.
import { constants as cryptoConstants } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { readConfiguredFile } from '../lib/config.ts';
import { compileGlobList, type GlobMatcher } from '../lib/glob.ts';
import type { Logger } from '../lib/log.ts';
import { formatUri, isValidClientType, isValidCommonName, SERVER_CLIENT_TYPE } from '../protocol/uri.ts';
import { CONTROLLER_TYPE, createAuthorizer } from './authz.ts';
import { CloseCode, MAX_HANDSHAKE_QUEUE_LENGTH, type BrokerConfig } from './defaults.ts';
import type { ConnectionRefusal } from './errors.ts';
import { Inventory } from './inventory.ts';
import { BrokerMetrics, sessionTypeLabel, type DisconnectReason } from './metrics.ts';
import { Router } from './router.ts';
import { Session, SessionRegistry } from './sessions.ts';
import { parseSessionPath } from './paths.ts';

export const BROKER_SERVICE_NAME = 'broker-service';
const SERVICE_VERSION = '0.1.0';

/** Config after defaults were applied. */
export type ResolvedBrokerConfig = BrokerConfig & Required<Pick<BrokerConfig, 'host' | 'port' | 'controller-cns' | 'max-message-size' | 'max-connections' | 'idle-timeout' | 'ping-interval' | 'max-send-buffer-size' | 'inventory-update-interval' | 'tls-handshake-timeout' | 'max-concurrent-handshakes' | 'handshake-queue-timeout'>>;

export class Broker {
  readonly metrics = new BrokerMetrics();
  readonly registry = new SessionRegistry();
  readonly inventory: Inventory;
  private readonly router: Router;
  private readonly server: Server;
  /** The listening socket: hands connections to `server` (TLS) through the handshake gate. */
  private readonly front: TcpServer;
  private readonly gate: HandshakeGate;
  private readonly wss: WebSocketServer;
  private readonly isControllerCn: GlobMatcher;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly startedAtMs = Date.now();
  private closing = false;

  constructor(
    private readonly config: ResolvedBrokerConfig,
    private readonly log: Logger,
  ) {
    this.isControllerCn = compileGlobList(config['controller-cns']);
    this.router = new Router({
      registry: this.registry,
      inventory: () => this.inventory,
      authorize: createAuthorizer(config.authorization?.rules),
      metrics: this.metrics,
      log,
      maxSendBufferBytes: config['max-send-buffer-size'],
      maxMessageDepth: config['max-message-depth'],
      drop: (s, reason, code, text) => this.drop(s, reason, code, text),
    });
    this.inventory = new Inventory(this.registry, (to, env) => this.router.sendFromBroker(to, env), config['inventory-update-interval']);
    this.server = createServer(
      {
        ca: readConfiguredFile(config, 'ssl-ca-cert'),
        cert: readConfiguredFile(config, 'ssl-cert'),
        key: readConfiguredFile(config, 'ssl-key'),
        ...(config['ssl-crl-path'] ? { crl: readConfiguredFile(config, 'ssl-crl-path') } : {}),
        requestCert: true,
        // Verified per upgrade below, so that a refused client gets an HTTP answer naming the reason.
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
        // No session tickets: each one keeps ~12 KB per idle session alive, and agents reconnect
        // rarely (after a broker restart the ticket keys are new anyway).
        secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
        handshakeTimeout: config['tls-handshake-timeout'],
      },
      (req, res) => this.onHttpRequest(req, res),
    );
    this.gate = new HandshakeGate(config['max-concurrent-handshakes'], config['handshake-queue-timeout'], (socket) => this.server.emit('connection', socket), this.metrics);
    // Connections are accepted unread; the gate starts their TLS handshakes as capacity allows.
    this.front = createTcpServer({ pauseOnConnect: true }, (socket) => this.gate.admit(socket));
    this.server.on('secureConnection', (tls: TLSSocket) => this.gate.handshakeEnded(tls));
    this.server.on('tlsClientError', (err, tls: TLSSocket) => {
      this.gate.handshakeEnded(tls);
      log.debug({ err: err.message }, 'TLS handshake failed');
    });
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: config['max-message-size'],
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket as TLSSocket, head));
  }

  get port(): number {
    return (this.front.address() as AddressInfo).port;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen({ port: this.config.port, host: this.config.host, backlog: LISTEN_BACKLOG }, () => {
        this.front.off('error', reject);
        resolve();
      });
    });
    this.timers.push(setInterval(() => this.keepalive(), this.config['ping-interval']).unref());
    const idleSweepMs = Math.max(10, Math.min(this.config['idle-timeout'] / 4, 30_000));
    this.timers.push(setInterval(() => this.sweepIdle(), idleSweepMs).unref());
    this.log.info({ host: this.config.host, port: this.port }, 'listening');
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    this.inventory.close();
    for (const s of [...this.registry.values()]) this.drop(s, 'shutdown', CloseCode.goingAway, 'broker shutting down');
    this.gate.close();
    const closed = new Promise<void>((resolve) => this.front.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    this.log.info('stopped');
  }

  private onUpgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = parseSessionPath(req.url ?? '/');
    if (path.kind === 'unknown') return this.refuseUpgrade(socket, 404, 'bad_path', `no PCP endpoint at ${req.url}; connect to /pcp2/<client type>`);
    if (path.kind === 'v1') return this.refuseUpgrade(socket, 501, 'pcp_v1_unsupported', 'PCP v1 is not supported by this broker yet; connect with PCP v2 at /pcp2/<client type>');
    const cert = socket.getPeerCertificate();
    if (!cert || Object.keys(cert).length === 0) return this.refuseUpgrade(socket, 401, 'no_certificate', 'a client certificate is required');
    if (!socket.authorized) {
      return this.refuseUpgrade(socket, 403, 'untrusted_certificate', `the client certificate is not trusted by this broker (${String(socket.authorizationError)})`);
    }
    const cn = cert.subject?.CN;
    if (typeof cn !== 'string' || !isValidCommonName(cn)) {
      return this.refuseUpgrade(socket, 403, 'bad_common_name', 'the client certificate must have exactly one common name usable in a pcp:// URI');
    }
    const type = path.clientType;
    if (!isValidClientType(type)) return this.refuseUpgrade(socket, 400, 'bad_path', `'${type}' is not a valid client type`);
    if (type === SERVER_CLIENT_TYPE) return this.refuseUpgrade(socket, 403, 'reserved_type', `client type '${SERVER_CLIENT_TYPE}' is reserved for brokers`);
    const isController = type === CONTROLLER_TYPE;
    if (isController && !this.isControllerCn(cn)) {
      return this.refuseUpgrade(socket, 403, 'not_a_controller', `'${cn}' is not allowed to connect as a controller (see controller-cns)`);
    }
    const uri = formatUri(cn, type);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const max = this.config['max-connections'];
      if (this.closing || (max > 0 && this.registry.size >= max && !this.registry.has(uri))) {
        this.metrics.connectionsRefused.max_connections.inc();
        this.log.warn({ uri, max_connections: max }, 'connection refused: connection limit reached');
        ws.on('error', () => {});
        ws.close(CloseCode.serverError, 'connection limit exceeded');
        return;
      }
      this.openSession(ws, socket, uri, cn, type, isController);
    });
  }

  private openSession(ws: WebSocket, socket: TLSSocket, uri: string, cn: string, type: string, isController: boolean): void {
    const remoteAddress = socket.remoteAddress ?? '';
    const session = new Session(uri, cn, type, isController, ws, socket, remoteAddress, Date.now());
    const replaced = this.registry.add(session);
    this.metrics.sessions[sessionTypeLabel(type)].inc();
    if (replaced) {
      this.log.info({ uri, remote: remoteAddress }, 'session replaced by a newer connection');
      this.endSession(replaced, 'replaced');
      replaced.ws.close(CloseCode.replaced, 'replaced by a newer session for the same URI');
    } else {
      this.inventory.recordChange(session, 1);
    }
    this.log.info({ uri, remote: remoteAddress }, 'session opened');
    ws.on('message', (data: Buffer, isBinary: boolean) => this.router.handle(session, data, isBinary));
    ws.on('pong', () => {
      session.awaitingPong = false;
    });
    ws.on('ping', () => {
      session.lastSeenMs = Date.now();
    });
    ws.on('error', (err) => this.log.debug({ uri, err: err.message }, 'session error'));
    ws.on('close', (code: number) => {
      if (this.registry.remove(session)) this.endSession(session, code === CloseCode.messageTooBig ? 'error' : 'closed');
      else this.log.debug({ uri, code }, 'socket of an ended session closed');
    });
  }

  /** Book-keeping when a session leaves the registry (by close, replacement or drop). */
  private endSession(session: Session, reason: DisconnectReason): void {
    this.metrics.sessions[sessionTypeLabel(session.clientType)].dec();
    this.metrics.disconnects[reason].inc();
    this.inventory.unsubscribe(session);
    if (reason !== 'replaced') this.inventory.recordChange(session, -1);
    this.log.info({ uri: session.uri, reason }, 'session closed');
  }

  /** Ends a session for a reason of the broker's own. */
  private drop(session: Session, reason: DisconnectReason, code: number, text: string): void {
    if (this.registry.remove(session)) this.endSession(session, reason);
    if (reason === 'slow_consumer' || reason === 'keepalive') session.ws.terminate();
    else session.ws.close(code, text);
  }

  private keepalive(): void {
    for (const s of this.registry.values()) {
      if (s.awaitingPong) {
        this.log.info({ uri: s.uri }, 'no pong since the last ping; dropping the session');
        this.drop(s, 'keepalive', CloseCode.goingAway, 'keepalive timeout');
        continue;
      }
      s.awaitingPong = true;
      s.ws.ping();
    }
  }

  private sweepIdle(): void {
    const cutoff = Date.now() - this.config['idle-timeout'];
    for (const s of this.registry.values()) {
      if (s.lastSeenMs < cutoff) this.drop(s, 'idle_timeout', CloseCode.goingAway, 'idle timeout');
    }
  }

  private refuseUpgrade(socket: TLSSocket, status: number, reason: ConnectionRefusal, message: string): void {
    this.metrics.connectionsRefused[reason].inc();
    this.log.info({ remote: socket.remoteAddress, reason }, `connection refused: ${message}`);
    const body = `${message}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  private onHttpRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
    if (path === '/status/v1/services' || path === `/status/v1/services/${BROKER_SERVICE_NAME}`) {
      const status = this.status();
      return sendJson(res, 200, path === '/status/v1/services' ? { [BROKER_SERVICE_NAME]: status } : status);
    }
    if (path === '/metrics') {
      this.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
          res.end(text);
        },
        (err: Error) => sendJson(res, 500, { error: err.message }),
      );
      return;
    }
    sendJson(res, 404, { error: `not found: ${path}` });
  }

  status(): Record<string, unknown> {
    return {
      service_version: SERVICE_VERSION,
      service_status_version: 1,
      detail_level: 'info',
      state: this.closing ? 'stopping' : 'running',
      status: { sessions: this.registry.size, uptime_ms: Date.now() - this.startedAtMs },
      active_alerts: [],
    };
  }
}

/** The kernel's queue of connections not yet accepted (Node's default is 511): a storm fills it at once. */
const LISTEN_BACKLOG = 4096;

/**
 * Admission of TCP connections to the TLS server: at most `max` handshakes in progress at once
 * (0: unlimited); others wait, unread, in arrival order for up to `queueTimeoutMs`, then are
 * reset before any TLS work (clients take that as "busy, retry soon"). A slot frees when the
 * handshake ends either way. Allocation-light: no closure or object per connection.
 */
export class HandshakeGate {
  private readonly inProgress = new Set<Socket>();
  private readonly queued: Socket[] = [];
  private readonly queuedAt: number[] = [];
  private head = 0;
  private sweep: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly onClose: (this: Socket) => void;

  constructor(
    private readonly max: number,
    private readonly queueTimeoutMs: number,
    private readonly startHandshake: (socket: Socket) => void,
    private readonly metrics: BrokerMetrics,
  ) {
    const gate = this;
    this.onClose = function onClose(this: Socket) {
      gate.release(this);
    };
  }

  get waiting(): number {
    return this.queued.length - this.head;
  }

  admit(socket: Socket): void {
    socket.on('error', ignoreError);
    if (this.closed) return this.shed(socket);
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

  private shed(socket: Socket): void {
    this.metrics.connectionsShed.inc();
    socket.resetAndDestroy();
  }
}

function ignoreError(): void {}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 501: 'Not Implemented' };

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
