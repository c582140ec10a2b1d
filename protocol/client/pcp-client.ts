// The PCP client used by the agent and the orchestrator, over PCP v2 (default) or v1: TLS with a
// client certificate, failover across brokers, reconnection with jittered exponential backoff,
// WebSocket keepalive, and correlation of replies by message id (`in_reply_to`) and by PXP
// transaction id. No business logic. This module composes the parts, as nats.js does its
// transport, heartbeats and protocol: transport.ts (connections, failover, reconnection, the v1
// association of v1-association.ts), heartbeats.ts (keepalive), correlation.ts (replies and
// transactions), wire.ts (opening a connection, per-version framing); what is left here is the
// public API, decoding received frames and the inventory subscription.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { inventoryRequest, isInventoryUpdateData, type InventoryChange } from '../inventory.ts';
import { BrokerMessageType } from '../message-types.ts';
import { ProtocolError, ProtocolErrorCode } from '../errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH } from '../json-depth.ts';
import { errorMessage } from '../pcp-error.ts';
import { encodeV2, newMessageId, type EnvelopeV2 } from '../pcp-v2.ts';
import { BROKER_URI, formatUri } from '../uri.ts';
import { DEFAULT_RECONNECT_INITIAL_MS, DEFAULT_RECONNECT_JITTER, DEFAULT_RECONNECT_MAX_MS, type BackoffOptions } from './backoff.ts';
import { certificateCommonName, ClientErrorCode, DEFAULT_PCP_VERSION, PcpClientError, PcpVersion, sessionUrl } from './broker-uri.ts';
import { Correlation } from './correlation.ts';
import { DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS, DEFAULT_PING_INTERVAL_MS } from './heartbeats.ts';
import { Transport } from './transport.ts';
import { DEFAULT_ASSOCIATION_TIMEOUT_MS, DEFAULT_MESSAGE_TTL_MS } from './v1-association.ts';
import { decodeV1Frame, decodeV2Frame, encodeV1Frame, InventoryPoll } from './wire.ts';

export { certificateCommonName } from './broker-uri.ts';
export { DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS, DEFAULT_PING_INTERVAL_MS } from './heartbeats.ts';

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
  private readonly transport: Transport;
  private readonly correlation: Correlation;
  private readonly v1: boolean;
  private readonly maxDepth: number;
  private readonly messageTtlMs: number;
  /** v1: the subscribed inventory, asked for again now and then. */
  private poll: InventoryPoll | null = null;
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
    this.log = opts.log.child({ uri: this.uri });
    this.correlation = new Correlation(this.log);
    const lostText = 'connection to the broker lost before the reply: ';
    this.transport = new Transport(
      {
        brokerUris: opts.brokerUris,
        clientType: opts.clientType,
        version: this.version,
        uri: this.uri,
        tls: opts.tls,
        log: this.log,
        pingIntervalMs: opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS,
        allowedKeepaliveTimeouts: opts.allowedKeepaliveTimeouts ?? DEFAULT_ALLOWED_KEEPALIVE_TIMEOUTS,
        connectionTimeoutMs: opts.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
        admissionWaitMs: opts.admissionWaitMs ?? DEFAULT_ADMISSION_WAIT_MS,
        maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_CLIENT_MAX_MESSAGE_BYTES,
        maxMessageDepth: this.maxDepth,
        associationTimeoutMs: opts.associationTimeoutMs ?? DEFAULT_ASSOCIATION_TIMEOUT_MS,
        messageTtlMs: this.messageTtlMs,
        backoff: {
          initialMs: opts.backoff?.initialMs ?? DEFAULT_RECONNECT_INITIAL_MS,
          maxMs: opts.backoff?.maxMs ?? DEFAULT_RECONNECT_MAX_MS,
          jitter: opts.backoff?.jitter ?? DEFAULT_RECONNECT_JITTER,
        },
      },
      {
        onFrame: (data, isBinary) => this.onMessage(data, isBinary),
        onConnected: (brokerUri) => {
          this.emit('connected', brokerUri);
          this.resubscribe();
        },
        onConnectError: (brokerUri, err) => this.emit('connectError', brokerUri, err),
        onClosed: (why) => {
          this.correlation.rejectReplies(new PcpClientError(ClientErrorCode.notConnected, lostText + why));
          this.emit('disconnected', why);
        },
      },
    );
  }

  get version(): PcpVersion {
    return this.v1 ? PcpVersion.v1 : PcpVersion.v2;
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  get broker(): string | null {
    return this.transport.broker;
  }

  /** The open session (its broker, since when, the last pong), or null. */
  get session(): { broker: string; sinceMs: number; lastPongMs: number | null } | null {
    return this.transport.session;
  }

  /** A WebSocket ping to the broker, answered within `timeoutMs` (a health probe). */
  ping(timeoutMs: number): Promise<void> {
    return this.transport.ping(timeoutMs);
  }

  /** Starts connecting (and reconnecting, forever) until `stop()`. */
  start(): void {
    this.transport.start();
  }

  async stop(): Promise<void> {
    const stopping = this.transport.stop();
    this.stopPolling();
    await stopping;
    this.correlation.rejectAll(new PcpClientError(ClientErrorCode.stopped, 'the PCP client was stopped'));
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
    const full = (env.id === undefined ? { ...env, id: newMessageId() } : env) as EnvelopeV2;
    this.sendEnvelope(full);
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
    const full = { ...env, id: env.id ?? newMessageId() } as EnvelopeV2;
    const reply = this.correlation.expectReply(full, timeoutMs);
    try {
      this.sendEnvelope(full);
    } catch (err) {
      this.correlation.failReply(full.id, err as Error);
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
    return this.correlation.expectTransaction(transactionId, timeoutMs, signal);
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

  /** The one place frames are written: throws `pcp-client/not-connected` when there is no open connection. */
  private sendEnvelope(full: EnvelopeV2): void {
    const ws = this.transport.openSocket;
    if (ws === null) throw new PcpClientError(ClientErrorCode.notConnected, 'not connected to a broker');
    ws.send(this.v1 ? encodeV1Frame(full, this.uri, this.messageTtlMs) : encodeV2(full));
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
    if (this.correlation.deliver(env)) return;
    if (env.message_type === BrokerMessageType.inventoryUpdate && isInventoryUpdateData(env.data)) {
      this.emit('inventory', env.data.changes);
      return;
    }
    this.emit('message', env);
  }
}
