// The PCP client used by the agent and the orchestrator, over PCP v2 (default) or v1: TLS with a
// client certificate, failover across brokers, reconnection with jittered exponential backoff,
// WebSocket keepalive, and correlation of replies by message id (`in_reply_to`) and by PXP
// transaction id. No business logic. The per-version framing is in wire.ts, the v1 association
// in v1-association.ts.
import { EventEmitter } from 'node:events';
import { createSecureContext, type SecureContext } from 'node:tls';
import { WebSocket } from 'ws';
import type { Logger } from '../../lib/log.ts';
import { inventoryRequest, isInventoryUpdateData, type InventoryChange } from '../inventory.ts';
import { BrokerMessageType, SESSION_REPLACED_CLOSE_CODE } from '../message-types.ts';
import { ProtocolError, ProtocolErrorCode } from '../errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH } from '../json-depth.ts';
import { errorMessage } from '../pcp-error.ts';
import { encodeV2, newMessageId, type EnvelopeV2 } from '../pcp-v2.ts';
import { isPxpRequest, PXP_REPLY_TYPES, PxpMessageType } from '../pxp.ts';
import { BROKER_URI, formatUri } from '../uri.ts';
import {
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_JITTER,
  DEFAULT_RECONNECT_MAX_MS,
  INITIAL_BACKOFF_STATE,
  nextReconnect,
  withBusy,
  type BackoffOptions,
  type ConnectOutcome,
} from './backoff.ts';
import { certificateCommonName, ClientErrorCode, DEFAULT_PCP_VERSION, PcpClientError, PcpVersion, replyError, sessionUrl } from './broker-uri.ts';
import { associateV1, DEFAULT_ASSOCIATION_TIMEOUT_MS, DEFAULT_MESSAGE_TTL_MS, type Association } from './v1-association.ts';
import { decodeV1Frame, decodeV2Frame, encodeV1Frame, InventoryPoll, keepAlive, openWebSocket, stringField } from './wire.ts';

export { certificateCommonName } from './broker-uri.ts';

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
  /** PCP version of the sessions (`pcp-version`); default '2'. The broker URIs' paths must agree. */
  pcpVersion?: PcpVersion | undefined;
  /** v1: how long the broker may take to answer the `associate_request`. */
  associationTimeoutMs?: number;
  /** v1: time to live of the messages sent (their `expires`). */
  messageTtlMs?: number;
  /** v1 (no inventory subscriptions there): how often a subscribed inventory is asked for again. */
  inventoryPollIntervalMs?: number;
}

export const DEFAULT_INVENTORY_POLL_INTERVAL_MS = 5_000;

/** Stable code in the warn log line of a received message whose handling threw (the connection goes on). */
export const CLIENT_HANDLER_FAILED = 'pcp-client/handler-failed';

export type PendingEnvelope = Omit<EnvelopeV2, 'id'> & { id?: string };

interface Waiter {
  resolve: (env: EnvelopeV2) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** A PXP request's target and transaction id, by which replies without `in_reply_to` are matched. */
  target?: string | undefined;
  transactionId?: string | undefined;
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

export class PcpClient extends EventEmitter<PcpClientEvents> {
  readonly uri: string;
  private ws: WebSocket | null = null;
  private currentBroker: string | null = null;
  private stopped = true;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  /** `request()` waiters by message id. */
  private readonly replies = new Map<string, Waiter>();
  /** Message ids of PXP requests waiting in `replies`, by transaction id. */
  private readonly pxpRequests = new Map<string, string>();
  /** `expectTransaction()` waiters by transaction id. */
  private readonly transactions = new Map<string, Waiter>();
  private readonly v1: boolean;
  private readonly maxDepth: number;
  private readonly messageTtlMs: number;
  /** v1: a connection being associated (stop() ends it). */
  private associating: WebSocket | null = null;
  /** v1: the subscribed inventory, asked for again now and then. */
  private poll: InventoryPoll | null = null;
  private readonly backoff: BackoffOptions;
  /** Parsed once: building it from PEM on every attempt costs more CPU than the handshake in a storm. */
  private readonly secureContext: SecureContext;
  private readonly log: Logger;
  private subscription: string[] | null = null;

  constructor(private readonly opts: PcpClientOptions) {
    super();
    if (opts.brokerUris.length === 0) throw new PcpClientError(ClientErrorCode.badBrokerUri, 'broker-ws-uris is empty');
    this.v1 = (opts.pcpVersion ?? DEFAULT_PCP_VERSION) === PcpVersion.v1;
    this.maxDepth = opts.maxMessageDepth ?? DEFAULT_MAX_MESSAGE_DEPTH;
    this.messageTtlMs = opts.messageTtlMs ?? DEFAULT_MESSAGE_TTL_MS;
    for (const u of opts.brokerUris) sessionUrl(u, opts.clientType, this.version); // fail early on a bad URI
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

  get version(): PcpVersion {
    return this.v1 ? PcpVersion.v1 : PcpVersion.v2;
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
    this.stopPolling();
    this.associating?.terminate();
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
    this.pxpRequests.clear();
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
    ws.send(this.v1 ? encodeV1Frame(full, this.uri, this.messageTtlMs) : encodeV2(full));
    return full.id;
  }

  /**
   * Sends and resolves with the first message that replies to it: by `in_reply_to`, or, for a
   * PXP request, the first PXP reply from its target with its `transaction_id` (Puppet's
   * pxp-agent sets no `in_reply_to`, and PCP v1 has none) or an `rpc_error_message` naming its
   * id. An `error_message` or `unauthorized` reply rejects with a typed error, a v1
   * `ttl_expired` with `pcp-client/ttl-expired`.
   */
  request(env: PendingEnvelope, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<EnvelopeV2> {
    const id = env.id ?? newMessageId();
    const reply = this.wait(this.replies, id, timeoutMs, `no reply to ${env.message_type} within ${timeoutMs} ms`);
    const tx = isPxpRequest(env as EnvelopeV2) ? (env.data as { transaction_id?: unknown } | undefined)?.transaction_id : undefined;
    if (typeof tx === 'string') {
      const w = this.replies.get(id)!;
      w.target = env.target;
      w.transactionId = tx;
      this.pxpRequests.set(tx, id);
    }
    try {
      this.send({ ...env, id });
    } catch (err) {
      this.settleReply(id)?.reject(err as Error);
    }
    return reply;
  }

  /**
   * Resolves with the PXP message that ends a transaction: the `rpc_non_blocking_response` or
   * `rpc_error_message` whose data names `transactionId`. Survives reconnections. One wait per
   * transaction: a second call replaces the first (which then ends by its timeout or signal).
   * `signal` ends the wait early (`pcp-client/aborted`).
   */
  expectTransaction(transactionId: string, timeoutMs: number, signal?: AbortSignal): Promise<EnvelopeV2> {
    if (signal?.aborted) return Promise.reject(new PcpClientError(ClientErrorCode.aborted, `the wait for transaction ${transactionId} was aborted`));
    const ends = this.wait(this.transactions, transactionId, timeoutMs, `transaction ${transactionId} did not end within ${timeoutMs} ms`);
    if (!signal) return ends;
    const waiter = this.transactions.get(transactionId)!;
    const onAbort = () => {
      if (this.transactions.get(transactionId) !== waiter) return;
      this.settle(this.transactions, transactionId);
      waiter.reject(new PcpClientError(ClientErrorCode.aborted, `the wait for transaction ${transactionId} was aborted`));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => signal.removeEventListener('abort', onAbort);
    ends.then(done, done);
    return ends;
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
    return this.subscribe(query, timeoutMs);
  }

  async unsubscribeInventory(timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<void> {
    const query = this.subscription;
    this.subscription = null;
    this.stopPolling();
    if (query && this.connected) await this.request(inventoryRequest(query, false), timeoutMs);
  }

  /**
   * PCP v1 has no subscriptions. Baton's broker takes `subscribe` from v1 clients as well; a
   * broker that refuses it (an error_message) is asked for the inventory now and then instead,
   * and the changes are derived.
   */
  private async subscribe(query: string[], timeoutMs: number): Promise<string[]> {
    try {
      const res = await this.request(inventoryRequest(query, true), timeoutMs);
      this.stopPolling();
      return (res.data as { uris: string[] }).uris;
    } catch (err) {
      if (!this.v1 || !(err instanceof PcpClientError) || err.code !== ClientErrorCode.errorMessage) throw err;
      const uris = await this.inventory(query, timeoutMs);
      this.startPolling(query, uris);
      return uris;
    }
  }

  private resubscribe(): void {
    const query = this.subscription;
    if (!query) return;
    this.subscribe(query, DEFAULT_REQUEST_TIMEOUT_MS).then(
      (uris) => this.emit('inventorySnapshot', uris),
      (err: Error) => this.log.warn({ err: err.message }, 'cannot renew the inventory subscription'),
    );
  }

  private startPolling(query: string[], uris: string[]): void {
    this.poll?.stop();
    const everyMs = this.opts.inventoryPollIntervalMs ?? DEFAULT_INVENTORY_POLL_INTERVAL_MS;
    const ask = () => (this.connected ? this.inventory(query, everyMs * 2) : null);
    const failed = (err: Error) => this.log.debug({ err: err.message }, 'inventory poll failed');
    this.poll = new InventoryPoll(ask, uris, everyMs, (changes) => this.emit('inventory', changes), failed);
  }

  private stopPolling(): void {
    this.poll?.stop();
    this.poll = null;
  }

  private wait(map: Map<string, Waiter>, key: string, timeoutMs: number, timeoutText: string): Promise<EnvelopeV2> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          // Only its own entry: a later wait under the same key may have replaced it.
          if (map.get(key) === waiter) {
            if (map === this.replies) this.settleReply(key);
            else map.delete(key);
          }
          reject(new PcpClientError(ClientErrorCode.timeout, timeoutText));
        }, timeoutMs),
      };
      map.set(key, waiter);
    });
  }

  private settle(map: Map<string, Waiter>, key: string): Waiter | undefined {
    const w = map.get(key);
    if (!w) return undefined;
    map.delete(key);
    clearTimeout(w.timer);
    return w;
  }

  /** Takes the `request()` waiter of message `id`, and its transaction's entry. */
  private settleReply(id: string): Waiter | undefined {
    const w = this.settle(this.replies, id);
    if (w?.transactionId !== undefined && this.pxpRequests.get(w.transactionId) === id) this.pxpRequests.delete(w.transactionId);
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
          const { ws, association } = await this.connectOnce(brokerUri);
          const code = await this.serve(ws, brokerUri, performance.now() - started, association);
          // Replaced by a newer session for the same identity: two clients share a certificate.
          // Coming straight back would only replace the other, so the pauses grow instead.
          outcome = code === SESSION_REPLACED_CLOSE_CODE ? { kind: 'replaced' } : { kind: 'lost' };
          break; // lost: start again from the first broker, after a pause
        } catch (err) {
          if (this.stopped) return;
          const e = err as PcpClientError;
          if (e.code === ClientErrorCode.busy) {
            outcome = withBusy(outcome, e.details?.retryAfterMs as number | undefined, e.details?.heldMs as number | undefined);
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

  /** One connection attempt (see `openWebSocket`), associated when the session is v1 (see `associateV1`). */
  private async connectOnce(brokerUri: string): Promise<{ ws: WebSocket; association: Association | null }> {
    const ws = await openWebSocket(sessionUrl(brokerUri, this.opts.clientType, this.version), {
      secureContext: this.secureContext,
      connectionTimeoutMs: this.opts.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
      admissionWaitMs: this.opts.admissionWaitMs ?? DEFAULT_ADMISSION_WAIT_MS,
      maxPayloadBytes: this.opts.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES,
    });
    const drop = () => {
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
    };
    if (this.stopped) {
      drop();
      throw new PcpClientError(ClientErrorCode.stopped, 'the PCP client was stopped');
    }
    if (!this.v1) return { ws, association: null };
    this.associating = ws;
    try {
      const association = await associateV1(ws, {
        uri: this.uri,
        timeoutMs: this.opts.associationTimeoutMs ?? DEFAULT_ASSOCIATION_TIMEOUT_MS,
        messageTtlMs: this.messageTtlMs,
        maxDepth: this.maxDepth,
        log: this.log,
      });
      return { ws, association };
    } catch (err) {
      drop();
      throw err;
    } finally {
      this.associating = null;
    }
  }

  /** Runs one connection until it closes; resolves with the close code. */
  private serve(ws: WebSocket, brokerUri: string, connectMs: number, association: Association | null): Promise<number> {
    this.ws = ws;
    this.currentBroker = brokerUri;
    const pingIntervalMs = this.opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    const allowedMisses = this.opts.allowedKeepaliveTimeouts ?? DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS;
    const keepalive = keepAlive(ws, pingIntervalMs, allowedMisses, (missed) => this.log.warn({ broker: brokerUri, missed }, 'no pong from the broker; reconnecting'));
    const onFrame = (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary);
    if (association) association.handOver(onFrame);
    else ws.on('message', onFrame);
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
        this.pxpRequests.clear();
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
      env = this.v1 ? decodeV1Frame(data, isBinary, this.uri, this.maxDepth) : decodeV2Frame(data, isBinary, this.maxDepth);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, code: (err as ProtocolError).code }, 'ignoring an undecodable message from the broker');
      // A message too deep to read is answered to its sender, as the broker answers its own.
      const sender = err instanceof ProtocolError && err.code === ProtocolErrorCode.tooDeep ? err.details?.sender : undefined;
      if (typeof sender === 'string' && sender !== BROKER_URI && this.connected) {
        this.send(errorMessage(sender, (err as ProtocolError).message, (err as ProtocolError).messageId, null));
      }
      return;
    }
    const type = env.message_type;
    let consumed = false;
    let replyTo = env.in_reply_to;
    // v1: a `ttl_expired` names the expired message in its data.
    if (replyTo === undefined && type === BrokerMessageType.ttlExpired) replyTo = stringField(env.data, 'id');
    if (replyTo !== undefined) {
      const w = this.settleReply(replyTo);
      if (w) {
        consumed = true;
        const refusal = replyError(env);
        if (refusal) w.reject(refusal);
        else w.resolve(env);
      }
    }
    if (PXP_REPLY_TYPES.has(type)) {
      const tx = stringField(env.data, 'transaction_id');
      if (!consumed) {
        // No (known) in_reply_to: an rpc_error_message's data names the request; otherwise the
        // request of this transaction to this sender is the one answered.
        let id = type === PxpMessageType.errorMessage ? stringField(env.data, 'id') : undefined;
        let w = id === undefined ? undefined : this.replies.get(id);
        if (!w && tx !== undefined) {
          id = this.pxpRequests.get(tx);
          const candidate = id === undefined ? undefined : this.replies.get(id);
          if (candidate?.target === env.sender) w = candidate;
        }
        if (w) {
          consumed = true;
          this.settleReply(id!);
          w.resolve(env);
        }
      }
      // A transaction ends with its non-blocking response or an rpc_error_message, which may also
      // have been the immediate reply to the request.
      if (tx !== undefined && (type === PxpMessageType.nonBlockingResponse || type === PxpMessageType.errorMessage)) {
        const w = this.settle(this.transactions, tx);
        if (w) {
          consumed = true;
          w.resolve(env);
        }
      }
      if (!consumed) this.log.debug({ message_type: type, sender: env.sender, transaction_id: tx, in_reply_to: env.in_reply_to }, 'a PXP reply matched no request or transaction');
    }
    if (!consumed && type === BrokerMessageType.inventoryUpdate && isInventoryUpdateData(env.data)) {
      this.emit('inventory', env.data.changes);
      return;
    }
    if (!consumed) this.emit('message', env);
  }
}
