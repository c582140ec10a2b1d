// The PCP v2 client used by the agent and the orchestrator: TLS with a client certificate,
// failover across brokers, reconnection with jittered exponential backoff, WebSocket keepalive,
// and correlation of replies by message id and by PXP transaction id. No business logic.
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import { WebSocket, type ClientOptions } from 'ws';
import type { Logger } from '../../lib/log.ts';
import { inventoryRequest, isInventoryUpdateData, type InventoryChange } from '../inventory.ts';
import { BrokerMessageType, SESSION_REPLACED_CLOSE_CODE } from '../message-types.ts';
import { ProtocolError, ProtocolErrorCode } from '../errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH } from '../json-depth.ts';
import { errorMessage } from '../pcp-error.ts';
import { decodeV2, encodeV2, newMessageId, type EnvelopeV2 } from '../pcp-v2.ts';
import { PxpMessageType } from '../pxp.ts';
import { BROKER_URI, formatUri } from '../uri.ts';
import {
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_JITTER,
  DEFAULT_RECONNECT_MAX_MS,
  INITIAL_BACKOFF_STATE,
  nextReconnect,
  parseRetryAfterMs,
  type BackoffOptions,
  type ConnectOutcome,
} from './backoff.ts';
import { ClientErrorCode, PcpClientError, sessionUrl } from './broker-uri.ts';

export const DEFAULT_PING_INTERVAL_MS = 120_000;
export const DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS = 1;
export const DEFAULT_CONNECTION_TIMEOUT_MS = 5_000;
/**
 * How long a broker that accepted the TCP connection may keep it waiting before it starts the
 * TLS handshake: a broker at its handshake capacity queues connections (see the broker's
 * handshake-queue-timeout, shorter than this), and a queued client that gave up would only
 * come back later and queue again.
 */
export const DEFAULT_ADMISSION_WAIT_MS = 20_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_CLIENT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface PcpClientOptions {
  brokerUris: string[];
  clientType: string;
  tls: { ca: Buffer; cert: Buffer; key: Buffer; crl?: Buffer };
  log: Logger;
  pingIntervalMs?: number;
  /** Missed pongs in a row after which the connection is taken for dead. */
  allowedKeepaliveTimeouts?: number;
  /** Each phase of a connection attempt (TCP connect; TLS and upgrade once the broker answers) must end within this. */
  connectionTimeoutMs?: number;
  /** Accepted but not yet answered: how long to wait for the broker to start the TLS handshake. */
  admissionWaitMs?: number;
  backoff?: Partial<BackoffOptions>;
  maxMessageBytes?: number;
  /** Deepest nesting of a received message (`max-message-depth`); default DEFAULT_MAX_MESSAGE_DEPTH. */
  maxMessageDepth?: number;
}

/** Stable code in the warn log line of a received message whose handling threw (the connection goes on). */
export const CLIENT_HANDLER_FAILED = 'pcp-client/handler-failed';

export type PendingEnvelope = Omit<EnvelopeV2, 'id'> & { id?: string };

interface Waiter {
  resolve: (env: EnvelopeV2) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface PcpClientEvents {
  connected: [brokerUri: string];
  /** A connection attempt failed (the broker is down, or refused us: the error says why). */
  connectError: [brokerUri: string, err: Error];
  disconnected: [reason: string];
  message: [env: EnvelopeV2];
  /** Batched changes of a subscribed inventory (see `subscribeInventory`). */
  inventory: [changes: InventoryChange[]];
  /** The full set of matching URIs after (re)subscribing: on every (re)connection. */
  inventorySnapshot: [uris: string[]];
}

/** The common name of a PEM certificate. */
export function certificateCommonName(certPem: Buffer | string): string {
  const subject = new X509Certificate(certPem).subject;
  const cn = subject.split('\n').find((line) => line.startsWith('CN='));
  if (!cn) throw new PcpClientError(ClientErrorCode.badBrokerUri, 'the client certificate has no common name');
  return cn.slice(3);
}

export class PcpClient extends EventEmitter<PcpClientEvents> {
  readonly uri: string;
  private ws: WebSocket | null = null;
  private currentBroker: string | null = null;
  private stopped = true;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly replies = new Map<string, Waiter>();
  private readonly transactions = new Map<string, Waiter>();
  private readonly backoff: BackoffOptions;
  /** Parsed once: building it from PEM on every attempt costs more CPU than the handshake in a storm. */
  private readonly secureContext: SecureContext;
  private readonly log: Logger;
  private subscription: string[] | null = null;

  constructor(private readonly opts: PcpClientOptions) {
    super();
    if (opts.brokerUris.length === 0) throw new PcpClientError(ClientErrorCode.badBrokerUri, 'broker-ws-uris is empty');
    for (const u of opts.brokerUris) sessionUrl(u, opts.clientType); // fail early on a bad URI
    this.uri = formatUri(certificateCommonName(opts.tls.cert), opts.clientType);
    this.backoff = {
      initialMs: opts.backoff?.initialMs ?? DEFAULT_RECONNECT_INITIAL_MS,
      maxMs: opts.backoff?.maxMs ?? DEFAULT_RECONNECT_MAX_MS,
      jitter: opts.backoff?.jitter ?? DEFAULT_RECONNECT_JITTER,
    };
    const { ca, cert, key, crl } = opts.tls;
    this.secureContext = createSecureContext({ ca, cert, key, ...(crl ? { crl } : {}) });
    this.log = opts.log.child({ uri: this.uri });
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  get broker(): string | null {
    return this.connected ? this.currentBroker : null;
  }

  /** Starts connecting (and reconnecting, forever) until `stop()`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.connectLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close(1000, 'client stopping');
      const timer = setTimeout(() => ws.terminate(), 2_000);
      await closed;
      clearTimeout(timer);
    }
    await this.loop;
    const err = new PcpClientError(ClientErrorCode.stopped, 'the PCP client was stopped');
    for (const map of [this.replies, this.transactions]) {
      for (const w of map.values()) {
        clearTimeout(w.timer);
        w.reject(err);
      }
      map.clear();
    }
  }

  /** Resolves once connected (at once when already connected). */
  waitConnected(timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('connected', onConnected);
        reject(new PcpClientError(ClientErrorCode.timeout, `not connected to a broker within ${timeoutMs} ms`));
      }, timeoutMs);
      const onConnected = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once('connected', onConnected);
    });
  }

  /** Sends an envelope; throws `pcp-client/not-connected` when there is no connection. Returns the id. */
  send(env: PendingEnvelope): string {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      throw new PcpClientError(ClientErrorCode.notConnected, 'not connected to a broker');
    }
    const full = { ...env, id: env.id ?? newMessageId() } as EnvelopeV2;
    ws.send(encodeV2(full));
    return full.id;
  }

  /**
   * Sends and resolves with the first message that replies to it (`in_reply_to`). An
   * `error_message` or `unauthorized` reply rejects with a typed error.
   */
  request(env: PendingEnvelope, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<EnvelopeV2> {
    const id = env.id ?? newMessageId();
    const reply = this.wait(this.replies, id, timeoutMs, `no reply to ${env.message_type} within ${timeoutMs} ms`);
    try {
      this.send({ ...env, id });
    } catch (err) {
      this.settle(this.replies, id)?.reject(err as Error);
    }
    return reply;
  }

  /**
   * Resolves with the PXP message that ends a transaction: the `rpc_non_blocking_response` or
   * `rpc_error_message` whose data names `transactionId`. Survives reconnections.
   */
  expectTransaction(transactionId: string, timeoutMs: number): Promise<EnvelopeV2> {
    return this.wait(this.transactions, transactionId, timeoutMs, `transaction ${transactionId} did not end within ${timeoutMs} ms`);
  }

  /** The broker's inventory: URIs of connected clients matching the patterns. */
  async inventory(query: string[], timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<string[]> {
    const res = await this.request(inventoryRequest(query), timeoutMs);
    return (res.data as { uris: string[] }).uris;
  }

  /**
   * Subscribes to inventory changes of the URIs matching `query`: resolves with the URIs connected
   * now, then emits `inventory` with batched changes. The subscription is renewed after every
   * reconnection (emitting `inventorySnapshot`), since a broker forgets it with the session.
   */
  async subscribeInventory(query: string[], timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<string[]> {
    this.subscription = query;
    const res = await this.request(inventoryRequest(query, true), timeoutMs);
    return (res.data as { uris: string[] }).uris;
  }

  async unsubscribeInventory(timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<void> {
    const query = this.subscription;
    this.subscription = null;
    if (query && this.connected) await this.request(inventoryRequest(query, false), timeoutMs);
  }

  private resubscribe(): void {
    const query = this.subscription;
    if (!query) return;
    this.request(inventoryRequest(query, true)).then(
      (res) => this.emit('inventorySnapshot', (res.data as { uris: string[] }).uris),
      (err: Error) => this.log.warn({ err: err.message }, 'cannot renew the inventory subscription'),
    );
  }

  private wait(map: Map<string, Waiter>, key: string, timeoutMs: number, timeoutText: string): Promise<EnvelopeV2> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        map.delete(key);
        reject(new PcpClientError(ClientErrorCode.timeout, timeoutText));
      }, timeoutMs);
      map.set(key, { resolve, reject, timer });
    });
  }

  private settle(map: Map<string, Waiter>, key: string): Waiter | undefined {
    const w = map.get(key);
    if (!w) return undefined;
    map.delete(key);
    clearTimeout(w.timer);
    return w;
  }

  private async connectLoop(): Promise<void> {
    let state = INITIAL_BACKOFF_STATE;
    while (!this.stopped) {
      let outcome: ConnectOutcome = { kind: 'failed' };
      for (const brokerUri of this.opts.brokerUris) {
        if (this.stopped) return;
        try {
          const started = performance.now();
          const ws = await this.connectOnce(brokerUri);
          const code = await this.serve(ws, brokerUri, performance.now() - started);
          // Replaced by a newer session for the same identity: two clients share a certificate.
          // Coming straight back would only replace the other, so the pauses grow instead.
          outcome = code === SESSION_REPLACED_CLOSE_CODE ? { kind: 'replaced' } : { kind: 'lost' };
          break; // lost: start again from the first broker, after a pause
        } catch (err) {
          const e = err as PcpClientError;
          if (e.code === ClientErrorCode.busy) {
            // Any broker that is up but busy makes the round "busy": come back soon, not later and later.
            const said = e.details?.retryAfterMs as number | undefined;
            const before: number | undefined = outcome.kind === 'busy' ? outcome.retryAfterMs : undefined;
            const soonest: number | undefined = said === undefined ? before : before === undefined ? said : Math.min(said, before);
            const heldMs = Math.max((e.details?.heldMs as number | undefined) ?? 0, outcome.kind === 'busy' ? (outcome.heldMs ?? 0) : 0);
            outcome = { kind: 'busy', ...(soonest === undefined ? {} : { retryAfterMs: soonest }), ...(heldMs > 0 ? { heldMs } : {}) };
            this.log.debug({ broker: brokerUri, err: e.message }, 'the broker is busy');
          } else {
            this.log.warn({ broker: brokerUri, err: e.message }, 'cannot connect to broker');
          }
          this.emit('connectError', brokerUri, e);
        }
      }
      if (this.stopped) return;
      const next = nextReconnect(state, outcome, this.backoff);
      state = next.state;
      const delayMs = next.delayMs;
      this.log.info({ delay_ms: delayMs, after: outcome.kind }, 'reconnecting after a pause');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /**
   * One connection attempt. Rejects with a typed error: `busy` when the broker is up but shed the
   * attempt (HTTP 503/429 on the upgrade, or the connection reset before the TLS handshake
   * completed: the broker's cheapest refusal), `refused` for another HTTP answer, else the cause.
   */
  private connectOnce(brokerUri: string): Promise<WebSocket> {
    const url = sessionUrl(brokerUri, this.opts.clientType);
    const connectionTimeoutMs = this.opts.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS;
    const admissionWaitMs = this.opts.admissionWaitMs ?? DEFAULT_ADMISSION_WAIT_MS;
    let tlsEstablished = false;
    let acceptedAt = 0;
    let timer: NodeJS.Timeout | undefined;
    let onTimeout: (text: string) => void = () => {};
    const phase = (ms: number, text: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => onTimeout(text), ms);
    };
    const createConnection = (options: ConnectionOptions) => {
      // As ws's own tlsConnect: SNI for a host name, none for an IP address.
      const servername = options.servername || (isIP(options.host ?? '') ? '' : options.host);
      const socket = tlsConnect({ ...options, servername, secureContext: this.secureContext });
      // Phases: TCP connect; waiting for the broker to take the handshake up (it may queue us);
      // the handshake and upgrade, which 'keylog' (first secret: the broker's hello) starts.
      socket.once('connect', () => {
        acceptedAt = performance.now();
        phase(admissionWaitMs, `the broker accepted the connection but did not start the TLS handshake within ${admissionWaitMs} ms`);
      });
      socket.once('keylog', () => phase(connectionTimeoutMs, `the TLS handshake and upgrade did not complete within ${connectionTimeoutMs} ms`));
      socket.once('secureConnect', () => (tlsEstablished = true));
      return socket;
    };
    return new Promise((resolve, reject) => {
      phase(connectionTimeoutMs, `no connection to the broker within ${connectionTimeoutMs} ms`);
      const ws = new WebSocket(url, {
        createConnection: createConnection as unknown as ClientOptions['createConnection'],
        perMessageDeflate: false,
        maxPayload: this.opts.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES,
      });
      onTimeout = (text) => fail(new PcpClientError(ClientErrorCode.timeout, text));
      const fail = (err: Error) => {
        clearTimeout(timer);
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.terminate();
        reject(err);
      };
      ws.once('open', () => {
        clearTimeout(timer);
        ws.removeAllListeners();
        resolve(ws);
      });
      ws.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNRESET' && !tlsEstablished) {
          const heldMs = acceptedAt > 0 ? Math.round(performance.now() - acceptedAt) : 0;
          fail(new PcpClientError(ClientErrorCode.busy, 'the broker closed the connection before the TLS handshake (it is shedding load)', { cause: err, details: { heldMs } }));
        } else {
          fail(err);
        }
      });
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = `the broker refused the connection: HTTP ${status} ${body.trim()}`;
          if (status === 503 || status === 429) {
            const retryAfterMs = parseRetryAfterMs(res.headers['retry-after']);
            fail(new PcpClientError(ClientErrorCode.busy, text, { details: { status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) } }));
          } else {
            fail(new PcpClientError(ClientErrorCode.refused, text, { details: { status } }));
          }
        });
      });
    });
  }

  /** Runs one connection until it closes; resolves with the close code. */
  private serve(ws: WebSocket, brokerUri: string, connectMs: number): Promise<number> {
    this.ws = ws;
    this.currentBroker = brokerUri;
    const pingIntervalMs = this.opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    const allowedMisses = this.opts.allowedKeepaliveTimeouts ?? DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS;
    let awaitingPong = false;
    let missed = 0;
    const keepalive = setInterval(() => {
      if (awaitingPong && ++missed >= allowedMisses) {
        this.log.warn({ broker: brokerUri, missed }, 'no pong from the broker; reconnecting');
        ws.terminate();
        return;
      }
      awaitingPong = true;
      ws.ping();
    }, pingIntervalMs);
    ws.on('pong', () => {
      awaitingPong = false;
      missed = 0;
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('error', (err) => this.log.debug({ err: err.message }, 'connection error'));
    this.log.info({ broker: brokerUri, connect_ms: Math.round(connectMs * 10) / 10 }, 'connected to broker');
    this.emit('connected', brokerUri);
    this.resubscribe();
    return new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        clearInterval(keepalive);
        this.ws = null;
        const why = `closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
        this.log.info({ broker: brokerUri, code }, 'disconnected from broker');
        const lost = new PcpClientError(ClientErrorCode.notConnected, `connection to the broker lost before the reply: ${why}`);
        for (const w of this.replies.values()) {
          clearTimeout(w.timer);
          w.reject(lost);
        }
        this.replies.clear();
        this.emit('disconnected', why);
        resolve(code);
      });
    });
  }

  /** Never throws: an undecodable or too-deep message is answered or dropped, and a failing listener is contained. */
  private onMessage(data: Buffer, isBinary: boolean): void {
    try {
      this.handleMessage(data, isBinary);
    } catch (err) {
      this.log.warn({ code: CLIENT_HANDLER_FAILED, err: (err as Error)?.message ?? String(err) }, 'unexpected error while handling a message; the connection goes on');
    }
  }

  private handleMessage(data: Buffer, isBinary: boolean): void {
    let env: EnvelopeV2;
    try {
      if (isBinary) throw new Error('binary frame');
      env = decodeV2(data.toString('utf8'), this.opts.maxMessageDepth ?? DEFAULT_MAX_MESSAGE_DEPTH);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'ignoring an undecodable message from the broker');
      // A message too deep to read is answered to its sender, as the broker answers its own.
      const sender = err instanceof ProtocolError && err.code === ProtocolErrorCode.tooDeep ? err.details?.sender : undefined;
      if (typeof sender === 'string' && sender !== BROKER_URI && this.connected) {
        this.send(errorMessage(sender, (err as ProtocolError).message, (err as ProtocolError).messageId, null));
      }
      return;
    }
    let consumed = false;
    if (env.in_reply_to !== undefined) {
      const w = this.settle(this.replies, env.in_reply_to);
      if (w) {
        consumed = true;
        if (env.message_type === BrokerMessageType.errorMessage) {
          w.reject(new PcpClientError(ClientErrorCode.errorMessage, String(env.data), { details: { envelope: env } }));
        } else if (env.message_type === BrokerMessageType.unauthorized) {
          w.reject(new PcpClientError(ClientErrorCode.unauthorized, 'the broker refused the message: unauthorized', { details: { envelope: env } }));
        } else {
          w.resolve(env);
        }
      }
    }
    // A transaction ends with its non-blocking response or an rpc_error_message, which may also
    // have been the immediate reply to the request.
    if (env.message_type === PxpMessageType.nonBlockingResponse || env.message_type === PxpMessageType.errorMessage) {
      const tx = (env.data as { transaction_id?: unknown } | undefined)?.transaction_id;
      const w = typeof tx === 'string' ? this.settle(this.transactions, tx) : undefined;
      if (w) {
        consumed = true;
        w.resolve(env);
      }
    }
    if (!consumed && env.message_type === BrokerMessageType.inventoryUpdate && isInventoryUpdateData(env.data)) {
      this.emit('inventory', env.data.changes);
      return;
    }
    if (!consumed) this.emit('message', env);
  }
}
