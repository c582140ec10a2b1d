// The broker: an HTTPS server whose WebSocket upgrades become PCP v2 sessions, plus the status
// and metrics endpoints on the same port.
import { constants as cryptoConstants, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { readConfiguredFile } from '../lib/config.ts';
import { compileGlobList, type GlobMatcher } from '../lib/glob.ts';
import { connectionBudget, openFileLimit } from '../lib/open-files.ts';
import type { Logger } from '../lib/log.ts';
import { formatUri, isValidClientType, isValidCommonName, SERVER_CLIENT_TYPE } from '../protocol/uri.ts';
import { CONTROLLER_TYPE, createAuthorizer } from './authz.ts';
import { CloseCode, DEFAULT_HEALTH_PROBE_INTERVAL_MS, MAX_CONNECTIONS_PENDING_RESERVE, MAX_V1_PENDING_REPLIES, type BrokerConfig } from './defaults.ts';
import { PendingConnections } from '../lib/pending-connections.ts';
import { DependencyProbe } from '../lib/dependency-probe.ts';
import { brokerStatus, onHttpRequest, type BrokerStatus } from './status-http.ts';
import { HandshakeGate } from './handshake-gate.ts';
export { HandshakeGate } from './handshake-gate.ts';
import { decideAssociation } from './association.ts';
import { ProtocolError, ProtocolErrorCode } from '../protocol/errors.ts';
import { decodeV1, encodeV1, type OutgoingV1 } from '../protocol/pcp-v1.ts';
import { associateResponse, errorMessageV1, ttlExpired } from '../protocol/pcp-v1-broker.ts';
import { BROKER_HANDLER_FAILED, RefusalReason, refusalForProtocolError, type ConnectionRefusal } from './errors.ts';
import { Inventory } from './inventory.ts';
import { BrokerMetrics, sessionTypeLabel, type DisconnectReason } from './metrics.ts';
import { Router } from './router.ts';
import { Session, SessionRegistry } from './sessions.ts';
import { parseSessionPath } from './paths.ts';
import { DEFAULT_FABRIC_REDIS_TIMEOUT_MS, Fabric, type FabricHost } from './fabric/member.ts';
import { hostname } from 'node:os';
import { ERROR_CODES_HEADER } from '../protocol/broker-errors.ts';

export { BROKER_SERVICE_NAME } from './status-http.ts';

/** Config after defaults were applied. */
export type ResolvedBrokerConfig = BrokerConfig & Required<Pick<BrokerConfig, 'host' | 'port' | 'controller-cns' | 'max-message-size' | 'max-connections' | 'idle-timeout' | 'ping-interval' | 'max-send-buffer-size' | 'inventory-update-interval' | 'tls-handshake-timeout' | 'upgrade-timeout' | 'max-pending-per-source' | 'max-concurrent-handshakes' | 'handshake-queue-timeout' | 'association-timeout' | 'message-ttl'>>;

export class Broker {
  readonly metrics = new BrokerMetrics();
  readonly registry = new SessionRegistry();
  readonly inventory: Inventory;
  private readonly router: Router;
  private readonly server: Server;
  /** The listening socket: hands connections to `server` (TLS) through the handshake gate. */
  private readonly front: TcpServer;
  private readonly gate: HandshakeGate;
  /** Connections accepted and not yet sessions: their deadlines and per-source counts. */
  private readonly pending: PendingConnections;
  /** Timed probes of what the broker depends on (Redis, in a fabric). */
  private readonly probes: DependencyProbe[] = [];
  private readonly lastAcceptWarningMs: Partial<Record<'max_connections' | 'per_source', number>> = {};
  /** Connections this process may hold: its open-file limit less a reserve (0: no limit known). */
  readonly connectionBudget: number;
  private readonly wss: WebSocketServer;
  private readonly isControllerCn: GlobMatcher;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly startedAtMs = Date.now();
  private closing = false;
  /** PCP v1 connections not associated yet (they count against max-connections). */
  private readonly unassociated = new Set<WebSocket>();
  /** This broker in debug hops: `pcp://<its certificate's CN>/server`. */
  readonly serverUri: string;
  /** Set when `fabric` is configured: this broker is one of several sharing a Redis. */
  readonly fabric: Fabric | null = null;

  constructor(
    private readonly config: ResolvedBrokerConfig,
    private readonly log: Logger,
  ) {
    this.isControllerCn = compileGlobList(config['controller-cns']);
    // Read in this order, so that a missing file is named as it always was: CA, certificate, key.
    const ca = readConfiguredFile(config, 'ssl-ca-cert');
    const brokerCert = readConfiguredFile(config, 'ssl-cert');
    this.serverUri = formatUri(certificateCn(brokerCert) ?? 'broker', SERVER_CLIENT_TYPE);
    if (config.fabric) {
      const f = config.fabric;
      // The default id is completed with the port once it is known (listen).
      const redisTimeoutMs = f['redis-timeout'] ?? DEFAULT_FABRIC_REDIS_TIMEOUT_MS;
      const fabric = new Fabric({ redisUrl: f.redis, brokerId: f['broker-id'] ?? '', ...(f['key-prefix'] ? { prefix: f['key-prefix'] } : {}), maxEnvelopeBytes: config['max-message-size'], redisTimeoutMs, log }, this.fabricHost());
      this.fabric = fabric;
      const m = this.metrics;
      this.probes.push(new DependencyProbe({ name: 'redis', probe: () => fabric.ping(), intervalMs: DEFAULT_HEALTH_PROBE_INTERVAL_MS, timeoutMs: redisTimeoutMs, up: m.dependencyUp, seconds: m.dependencyProbeSeconds }));
    }
    this.router = new Router({
      ...(this.fabric ? { fabric: this.fabric } : {}),
      serverUri: this.serverUri,
      messageTtlMs: config['message-ttl'],
      maxPendingReplies: MAX_V1_PENDING_REPLIES,
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
        ca,
        cert: brokerCert,
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
      (req, res) => {
        this.pending.settled(req.socket as TLSSocket);
        onHttpRequest(req, res, () => this.status(), this.metrics);
      },
    );
    const fileLimit = openFileLimit();
    this.connectionBudget = connectionBudget(fileLimit);
    this.pending = new PendingConnections({
      handshakeTimeoutMs: config['tls-handshake-timeout'],
      requestTimeoutMs: config['upgrade-timeout'],
      maxPerSource: config['max-pending-per-source'],
      onDeadline: (phase, remote) => {
        const reason = phase === 'handshake' ? 'handshake_timeout' : 'upgrade_timeout';
        this.metrics.connectionsRefused[reason].inc();
        log.debug({ remote, reason }, 'connection closed: its TLS handshake or upgrade request took too long');
      },
    });
    this.gate = new HandshakeGate(
      config['max-concurrent-handshakes'],
      config['handshake-queue-timeout'],
      (socket) => {
        this.pending.handshakeStarted(socket);
        this.server.emit('connection', socket);
      },
      this.metrics,
      this.connectionBudget,
      (refused, open) => log.warn({ refused, open, open_file_limit: fileLimit, connection_budget: this.connectionBudget }, 'connections refused: the broker holds as many as its open-file limit allows'),
      (socket) => this.pending.helloArrived(socket),
      () => log.debug({ err: 'the connection closed before its ClientHello arrived' }, 'TLS handshake failed'),
    );
    // Connections are accepted unread; the gate starts their TLS handshakes as capacity allows.
    this.front = createTcpServer({ pauseOnConnect: true }, (socket) => this.admit(socket));
    this.server.on('secureConnection', (tls: TLSSocket) => {
      this.gate.handshakeEnded(tls);
      this.pending.secured(tls);
    });
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, tls: TLSSocket) => {
      this.gate.handshakeEnded(tls);
      // Node's own (idle) handshake timer may fire before the pending book's absolute deadline.
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.metrics.connectionsRefused.handshake_timeout.inc();
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
    if (this.fabric) {
      if (!this.config.fabric?.['broker-id']) this.fabric.setBrokerId(`${hostname()}:${this.port}:${process.pid}`);
      await this.fabric.start();
    }
    await Promise.all(this.probes.map((p) => p.start()));
    this.timers.push(setInterval(() => this.keepalive(), this.config['ping-interval']).unref());
    const idleSweepMs = Math.max(10, Math.min(this.config['idle-timeout'] / 4, 30_000));
    this.timers.push(setInterval(() => this.sweepIdle(), idleSweepMs).unref());
    this.log.info({ host: this.config.host, port: this.port, connection_budget: this.connectionBudget }, 'listening');
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    this.inventory.close();
    for (const s of [...this.registry.values()]) this.drop(s, 'shutdown', CloseCode.goingAway, 'broker shutting down');
    for (const ws of this.unassociated) ws.close(CloseCode.goingAway, 'broker shutting down');
    this.unassociated.clear();
    this.gate.close();
    this.pending.close();
    for (const p of this.probes) p.stop();
    const closed = new Promise<void>((resolve) => this.front.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    await this.fabric?.stop();
    this.log.info('stopped');
  }

  /**
   * A TCP connection arrives: it is reset at once when its source holds max-pending-per-source
   * pending connections, or when sessions and pending connections fill max-connections (plus a
   * small reserve); otherwise it goes to the handshake gate (which refuses at the file limit).
   */
  private admit(socket: Socket): void {
    socket.on('error', ignoreError);
    const max = this.config['max-connections'];
    if (max > 0 && this.registry.size + this.unassociated.size + this.pending.size >= max + MAX_CONNECTIONS_PENDING_RESERVE) return this.refuseAtAccept(socket, 'max_connections');
    if (this.pending.enter(socket) !== undefined) return this.refuseAtAccept(socket, 'per_source');
    this.pending.handshakeStarted(socket);
    this.gate.admit(socket);
  }

  /** Resets a connection at accept; warns at most every ACCEPT_WARNING_INTERVAL_MS per reason. */
  private refuseAtAccept(socket: Socket, reason: 'max_connections' | 'per_source'): void {
    this.metrics.connectionsRefused[reason].inc();
    const remote = socket.remoteAddress;
    socket.resetAndDestroy();
    const now = performance.now();
    if (now - (this.lastAcceptWarningMs[reason] ?? -Infinity) < ACCEPT_WARNING_INTERVAL_MS) return;
    this.lastAcceptWarningMs[reason] = now;
    const limits = reason === 'per_source' ? { remote, max_pending_per_source: this.config['max-pending-per-source'] } : { max_connections: this.config['max-connections'], pending: this.pending.size };
    this.log.warn({ reason, ...limits }, 'connections reset at accept (further ones are counted in baton_broker_connections_refused_total)');
  }

  private onUpgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer): void {
    this.pending.settled(socket);
    socket.on('error', () => socket.destroy());
    const path = parseSessionPath(req.url ?? '/');
    if (path.kind === 'unknown') return this.refuseUpgrade(socket, 404, 'bad_path', `no PCP endpoint at ${req.url}; connect to /pcp2/<client type>`);
    const cert = socket.getPeerCertificate();
    if (!cert || Object.keys(cert).length === 0) return this.refuseUpgrade(socket, 401, 'no_certificate', 'a client certificate is required');
    if (!socket.authorized) {
      return this.refuseUpgrade(socket, 403, 'untrusted_certificate', `the client certificate is not trusted by this broker (${String(socket.authorizationError)})`);
    }
    const cn = cert.subject?.CN;
    const errorCodes = req.headers[ERROR_CODES_HEADER] === '1';
    if (typeof cn !== 'string' || !isValidCommonName(cn)) {
      return this.refuseUpgrade(socket, 403, 'bad_common_name', 'the client certificate must have exactly one common name usable in a pcp:// URI');
    }
    if (path.kind === 'v1') {
      const pathType = path.clientType;
      if (pathType !== undefined && !isValidClientType(pathType)) return this.refuseUpgrade(socket, 400, 'bad_path', `'${pathType}' is not a valid client type`);
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        if (this.atCapacity(undefined)) return this.refuseAtCapacity(ws, `pcp://${cn}/?`);
        this.awaitAssociation(ws, socket, cn, pathType, errorCodes);
      });
      return;
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
      if (this.atCapacity(uri)) return this.refuseAtCapacity(ws, uri);
      this.openSession(ws, socket, uri, cn, type, isController, 2, errorCodes);
    });
  }

  /**
   * Sessions and v1 connections awaiting association count against max-connections; a replacing
   * session does not. `self` is 1 for a connection already counted as awaiting association.
   */
  private atCapacity(uri: string | undefined, self: 0 | 1 = 0): boolean {
    const max = this.config['max-connections'];
    return this.closing || (max > 0 && this.registry.size + this.unassociated.size - self >= max && (uri === undefined || !this.registry.has(uri)));
  }

  private refuseAtCapacity(ws: WebSocket, uri: string): void {
    this.metrics.connectionsRefused.max_connections.inc();
    this.log.warn({ uri, max_connections: this.config['max-connections'] }, 'connection refused: connection limit reached');
    ws.on('error', () => {});
    ws.close(CloseCode.serverError, 'connection limit exceeded');
  }

  /**
   * A PCP v1 connection before its association (association.md): the first message must be an
   * associate_request whose sender matches the certificate; others are dropped with an
   * error_message; a refusal is answered and the connection closed; no association within
   * association-timeout closes it.
   */
  private awaitAssociation(ws: WebSocket, socket: TLSSocket, cn: string, pathType: string | undefined, errorCodes: boolean): void {
    this.unassociated.add(ws);
    const send = (msg: OutgoingV1) => {
      if (ws.readyState === ws.OPEN) ws.send(encodeV1(msg));
    };
    const done = () => {
      clearTimeout(timer);
      this.unassociated.delete(ws);
      ws.off('message', onMessage);
    };
    const timer = setTimeout(() => {
      done();
      this.metrics.connectionsRefused.association_timeout.inc();
      this.log.info({ cn, remote: socket.remoteAddress }, 'PCP v1 connection closed: no association within association-timeout');
      ws.close(CloseCode.policyViolation, 'association timeout');
    }, this.config['association-timeout']);
    const onMessage = (data: Buffer, isBinary: boolean) => {
      try {
        if (!isBinary) throw new ProtocolError(ProtocolErrorCode.textFrame, 'text frames are not PCP v1 messages; send an associate_request as a binary PCP v1 message (PCP v2 is at /pcp2/)');
        const msg = decodeV1(data, this.config['max-message-depth']);
        const env = msg.envelope;
        const decision = decideAssociation({ envelope: env, commonName: cn, pathType, isControllerCn: this.isControllerCn });
        if (decision.kind === 'drop') {
          this.metrics.refused.not_associated.inc();
          return send(errorMessageV1(undefined, decision.description, env.id));
        }
        if (msg.expiresAtMs < Date.now()) {
          this.metrics.refused.ttl_expired.inc();
          return send(ttlExpired(env.sender, env.id));
        }
        if (decision.kind === 'refuse') {
          done();
          this.metrics.connectionsRefused.association_refused.inc();
          this.log.info({ cn, sender: env.sender, reason: decision.reason }, `PCP v1 association refused: ${decision.description}`);
          send(associateResponse(env.sender, env.id, false, decision.description));
          ws.close(CloseCode.policyViolation, decision.reason);
          return;
        }
        if (this.atCapacity(decision.uri, 1)) {
          done();
          send(associateResponse(env.sender, env.id, false, 'connection limit exceeded'));
          return this.refuseAtCapacity(ws, decision.uri);
        }
        done();
        this.openSession(ws, socket, decision.uri, cn, decision.clientType, decision.isController, 1, errorCodes);
        send(associateResponse(decision.uri, env.id, true));
      } catch (err) {
        const e = err instanceof ProtocolError ? err : undefined;
        if (e === undefined) this.log.warn({ cn, err: (err as Error)?.message }, 'unexpected error during a PCP v1 association; the connection stays unassociated');
        else this.metrics.refused[refusalForProtocolError(e.code)].inc();
        send(errorMessageV1(undefined, e?.message ?? `the broker could not handle this message (${BROKER_HANDLER_FAILED})`, e?.messageId));
      }
    };
    ws.on('message', onMessage);
    ws.on('error', (err) => this.log.debug({ cn, err: err.message }, 'unassociated PCP v1 connection error'));
    ws.once('close', () => done());
  }

  private openSession(ws: WebSocket, socket: TLSSocket, uri: string, cn: string, type: string, isController: boolean, pcpVersion: 1 | 2, errorCodes: boolean): void {
    const remoteAddress = socket.remoteAddress ?? '';
    const session = new Session(uri, cn, type, isController, ws, socket, remoteAddress, Date.now(), pcpVersion);
    session.errorCodes = errorCodes;
    const replaced = this.registry.add(session);
    this.metrics.sessions[sessionTypeLabel(type)].inc();
    this.metrics.sessionsByVersion[pcpVersion].inc();
    if (replaced) {
      this.log.info({ uri, remote: remoteAddress }, 'session replaced by a newer connection');
      this.endSession(replaced, 'replaced');
      replaced.ws.close(CloseCode.replaced, 'replaced by a newer session for the same URI');
    } else {
      this.inventory.recordChange(session, 1);
    }
    this.fabric?.opened(uri).catch((err: Error) => this.log.warn({ uri, err: err.message }, 'could not enter the session in the fabric directory (written again once Redis is back)'));
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
    this.metrics.sessionsByVersion[session.pcpVersion].dec();
    this.metrics.disconnects[reason].inc();
    this.inventory.unsubscribe(session);
    if (reason !== 'replaced') {
      this.inventory.recordChange(session, -1);
      this.fabric?.closed(session.uri).catch((err: Error) => this.log.warn({ uri: session.uri, err: err.message }, 'could not remove the session from the fabric directory (swept if this broker goes)'));
    }
    this.log.info({ uri: session.uri, reason }, 'session closed');
  }

  /** Ends a session for a reason of the broker's own. */
  private drop(session: Session, reason: DisconnectReason, code: number, text: string): void {
    if (this.registry.remove(session)) this.endSession(session, reason);
    if (reason === 'slow_consumer' || reason === 'keepalive') session.ws.terminate();
    else session.ws.close(code, text);
  }

  /** What the fabric asks of this broker. */
  private fabricHost(): FabricHost {
    return {
      deliverLocal: (target, envText) => {
        const dest = this.registry.get(target);
        if (dest === undefined) return false;
        this.metrics.fabricReceived.inc();
        return this.router.deliverFromFabric(dest, envText);
      },
      undeliverable: (sender, _target, id, why) => {
        const s = this.registry.get(sender);
        if (s) this.router.refuse(s, RefusalReason.notConnected, why, id);
      },
      replacedElsewhere: (uri) => {
        const s = this.registry.get(uri);
        if (!s || !this.registry.remove(s)) return;
        this.log.info({ uri }, 'session replaced by a newer connection on another broker');
        this.endSession(s, 'replaced');
        s.ws.close(CloseCode.replaced, 'replaced by a newer session for the same URI');
      },
      remoteChange: (uri, change) => this.inventory.recordRemoteChange(uri, change),
      localUris: () => [...this.registry.values()].map((s) => s.uri),
      malformed: () => this.metrics.fabricMalformed.inc(),
    };
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

  /** The status service's view (see status-http.ts). */
  status(): BrokerStatus {
    return brokerStatus({ closing: this.closing, registry: this.registry, unassociated: this.unassociated.size, pending: this.pending.size, startedAtMs: this.startedAtMs, probes: this.probes });
  }
}

/** A broker resetting connections at accept warns at most this often (per reason). */
const ACCEPT_WARNING_INTERVAL_MS = 10_000;

function ignoreError(): void {}

/** The kernel's queue of connections not yet accepted (Node's default is 511): a storm fills it at once. */
const LISTEN_BACKLOG = 4096;

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' };

/** The common name of a PEM certificate, or undefined. */
function certificateCn(pem: Buffer | string): string | undefined {
  try {
    const line = new X509Certificate(pem).subject.split('\n').find((l) => l.startsWith('CN='));
    return line?.slice(3);
  } catch {
    return undefined;
  }
}

