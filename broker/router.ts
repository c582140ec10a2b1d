// The hot path: one decoded frame from a session → validation, identity, authorization, delivery.
import { WebSocket } from 'ws';
import type { Logger } from '../lib/log.ts';
import { brokerErrorCode } from '../protocol/broker-errors.ts';
import { ProtocolError, ProtocolErrorCode } from '../protocol/errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH } from '../protocol/json-depth.ts';
import { decodeInventoryRequest, inventoryResponse } from '../protocol/inventory.ts';
import { BrokerMessageType } from '../protocol/message-types.ts';
import { errorMessage, unauthorized } from '../protocol/pcp-error.ts';
import { decodeV2, encodeV2, type EnvelopeV2 } from '../protocol/pcp-v2.ts';
import { encodeV1, expiresIn, hopChunk, IsoClock, type OutgoingV1 } from '../protocol/pcp-v1.ts';
import { v2ToV1, v2ToV1Frame } from '../protocol/pcp-translate.ts';
import { PxpMessageType } from '../protocol/pxp.ts';
import { BROKER_URI, hasWildcard } from '../protocol/uri.ts';
import type { Authorizer } from './authz.ts';
import { CloseCode } from './defaults.ts';
import { BROKER_HANDLER_FAILED, RefusalReason, refusalForProtocolError } from './errors.ts';
import type { Inventory } from './inventory.ts';
import type { BrokerMetrics, DisconnectReason } from './metrics.ts';
import type { Session, SessionRegistry } from './sessions.ts';
import { PendingReplies, V1Router, type RouterCore } from './router-v1.ts';

export interface RouterOptions {
  registry: SessionRegistry;
  inventory: () => Inventory;
  authorize: Authorizer;
  metrics: BrokerMetrics;
  log: Logger;
  maxSendBufferBytes: number;
  /** Deepest nesting of a message, envelope and data together (`max-message-depth`); default DEFAULT_MAX_MESSAGE_DEPTH. */
  maxMessageDepth?: number;
  /** Ends a session for a reason of the broker's own (slow consumer). */
  drop: (session: Session, reason: DisconnectReason, code: number, text: string) => void;
  /** This broker's URI in PCP v1 debug hops (`pcp://<broker cn>/server`). */
  serverUri: string;
  /** Time to live (`expires`) of v2 messages delivered to v1 clients (`message-ttl`). */
  messageTtlMs: number;
  /** PXP requests from v2 to v1 clients remembered for the replies' `in_reply_to`. */
  maxPendingReplies: number;
  /** Several brokers as one: targets on other brokers, and the fabric-wide inventory. */
  fabric?: FabricRouting;
}

/** What the router asks of the fabric (broker/fabric/member.ts). */
export interface FabricRouting {
  /** Sends a v2 envelope's text towards `target` on another broker: null once sent, or why not. */
  forward(target: string, envText: string): Promise<string | null>;
  /** URIs connected to the fabric's other brokers. */
  remoteUris(): Promise<string[]>;
}

export class Router implements RouterCore {
  private readonly registry: SessionRegistry;
  private readonly authorize: Authorizer;
  private readonly metrics: BrokerMetrics;
  private readonly log: Logger;
  private readonly maxSendBufferBytes: number;
  private readonly maxMessageDepth: number;
  /** Sockets corked during this tick; their writes go out together (fewer TLS records and syscalls). */
  private readonly corked = new Set<Session['socket']>();
  private readonly uncorkAll = () => {
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };

  private readonly v1: V1Router;
  private readonly pendingReplies: PendingReplies;
  private readonly clock = new IsoClock();
  private readonly serverUriJson: string;
  private hopMs = Number.NaN;
  private hopText = '';

  constructor(private readonly opts: RouterOptions) {
    this.registry = opts.registry;
    this.authorize = opts.authorize;
    this.metrics = opts.metrics;
    this.log = opts.log;
    this.maxSendBufferBytes = opts.maxSendBufferBytes;
    this.maxMessageDepth = opts.maxMessageDepth ?? DEFAULT_MAX_MESSAGE_DEPTH;
    this.pendingReplies = new PendingReplies(opts.maxPendingReplies);
    this.serverUriJson = JSON.stringify(opts.serverUri);
    this.v1 = new V1Router(this, {
      registry: opts.registry,
      authorize: opts.authorize,
      metrics: opts.metrics,
      log: opts.log,
      maxMessageDepth: this.maxMessageDepth,
      serverUri: opts.serverUri,
      replies: this.pendingReplies,
    });
  }

  /**
   * Handles one WebSocket message of a v2 session. Never throws: a message nested deeper than
   * max-message-depth is refused before it is parsed, and an unexpected exception is contained to
   * the session (logged as BROKER_HANDLER_FAILED, counted as refused `internal_error`, answered
   * with an error_message); the session stays open.
   */
  handle(session: Session, data: Buffer, isBinary: boolean): void {
    this.metrics.received[session.pcpVersion].inc();
    if (session.pcpVersion === 1) {
      session.lastSeenMs = Date.now();
      this.v1.handle(session, data, isBinary);
      return;
    }
    const startMs = performance.now();
    let env: EnvelopeV2 | undefined;
    try {
      session.lastSeenMs = Date.now();
      try {
        if (isBinary) {
          throw new ProtocolError(
            ProtocolErrorCode.binaryFrame,
            'binary frames are not PCP v2 messages; send each message as a JSON text frame',
          );
        }
        env = decodeV2(data.toString('utf8'), this.maxMessageDepth);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.refuse(session, refusalForProtocolError(err.code), err.message, err.messageId);
        return;
      }
      this.route(session, env, startMs, data);
    } catch (err) {
      this.contain(session, err, env?.id);
    }
  }

  /** `frame` is the UTF-8 text `env` was parsed from (its data goes to a v1 target as it is). */
  private route(session: Session, env: EnvelopeV2, startMs: number, frame: Buffer): void {
    if (env.sender === undefined) {
      env.sender = session.uri;
    } else if (env.sender !== session.uri) {
      this.refuse(
        session,
        RefusalReason.senderMismatch,
        `sender '${env.sender}' does not match this session's identity '${session.uri}'; the message was not delivered`,
        env.id,
      );
      return;
    }

    const target = env.target;
    if (target === undefined || target === BROKER_URI) {
      this.toBroker(session, env);
      return;
    }
    if (hasWildcard(target)) {
      this.refuse(
        session,
        RefusalReason.wildcardTarget,
        `target '${target}' has a wildcard; wildcards are allowed only in inventory queries`,
        env.id,
      );
      return;
    }
    if (!this.authorize(session, target, env.message_type)) {
      this.denied(session, env);
      return;
    }
    const dest = this.registry.get(target);
    if (dest === undefined) {
      if (this.inFabric) this.forwardRemote(session, target, encodeV2(env), env.id, startMs);
      else this.refuse(session, RefusalReason.notConnected, `target '${target}' is not connected`, env.id);
      return;
    }
    if (!this.deliver(dest, dest.pcpVersion === 2 ? encodeV2(env) : this.toV1(dest, env, frame))) {
      this.refuse(session, RefusalReason.slowConsumer, `target '${target}' was disconnected: it did not read its messages`, env.id);
      return;
    }
    this.metrics.routed.inc();
    this.metrics.routingSeconds.observe((performance.now() - startMs) / 1000);
  }

  /** Whether this broker is in a fabric (a target not here may be on another broker). */
  get inFabric(): boolean {
    return this.opts.fabric !== undefined;
  }

  /** A target on no session here, in a fabric: its envelope goes to the target's broker, or the sender hears why not. */
  forwardRemote(session: Session, target: string, envText: string, id: string, startMs: number): void {
    this.opts.fabric!.forward(target, envText).then(
      (why) => {
        if (why === null) {
          this.metrics.fabricForwarded.inc();
          this.metrics.routingSeconds.observe((performance.now() - startMs) / 1000);
        } else if (!session.ended) this.refuse(session, RefusalReason.notConnected, why, id);
      },
      (err: Error) => {
        // Redis away or slow (bounded): the target may be anywhere; say so, as "not connected".
        if (!session.ended) this.refuse(session, RefusalReason.notConnected, `target '${target}' is not connected here, and the fabric could not be asked where it is (${err.message}); nothing was delivered`, id);
      },
    );
  }

  /** An envelope from another broker of the fabric for local session `dest`, in its PCP version. */
  deliverFromFabric(dest: Session, envText: string): boolean {
    if (dest.pcpVersion === 2) return this.deliver(dest, envText);
    return this.deliver(dest, this.toV1(dest, decodeV2(envText, this.maxMessageDepth), Buffer.from(envText, 'utf8')));
  }

  /**
   * A v2 envelope as the v1 frame for `dest`, with this broker's hop in a debug chunk. A PXP
   * request is booked so that the v1 client's replies (transaction id only) get `in_reply_to`.
   * `frame`, the UTF-8 text `env` was parsed from, gives the data chunk as it arrived.
   */
  private toV1(dest: Session, env: EnvelopeV2, frame: Buffer): Buffer {
    if (env.message_type === PxpMessageType.nonBlockingRequest || env.message_type === PxpMessageType.blockingRequest) {
      const tx = (env.data as { transaction_id?: unknown } | undefined)?.transaction_id;
      if (typeof tx === 'string') this.pendingReplies.remember(dest.uri, tx, env.id);
    }
    const nowMs = Date.now();
    return v2ToV1Frame(env, expiresIn(this.opts.messageTtlMs, nowMs), [this.hop(nowMs)], frame);
  }

  /** The debug chunk of this broker's hop at `nowMs`, the same text for every message of a millisecond. */
  private hop(nowMs: number): string {
    if (nowMs !== this.hopMs) {
      this.hopMs = nowMs;
      this.hopText = hopChunk(this.serverUriJson, 'accepted', this.clock.at(nowMs));
    }
    return this.hopText;
  }

  /** Sends an envelope from the broker to a session, in the session's PCP version. */
  sendFromBroker(to: Session, env: EnvelopeV2): void {
    this.deliver(to, to.pcpVersion === 2 ? encodeV2(env) : encodeV1(v2ToV1(env, expiresIn(this.opts.messageTtlMs))));
  }

  /** Sends a v1 message of the broker's own to a v1 session. */
  deliverV1(dest: Session, msg: OutgoingV1): boolean {
    return this.deliver(dest, encodeV1(msg));
  }

  /** Queues a frame (text: v2, binary: v1) to a session; a client whose queue is over the cap is disconnected instead. */
  deliver(dest: Session, payload: string | Buffer): boolean {
    const ws = dest.ws;
    if (ws.readyState !== WebSocket.OPEN) return false;
    const queued = ws.bufferedAmount;
    if (queued > 0 && queued + payload.length > this.maxSendBufferBytes) {
      this.opts.drop(dest, 'slow_consumer', CloseCode.slowConsumer, 'slow consumer: send buffer limit exceeded');
      return false;
    }
    const socket = dest.socket;
    if (!this.corked.has(socket)) {
      if (this.corked.size === 0) process.nextTick(this.uncorkAll);
      this.corked.add(socket);
      socket.cork();
    }
    ws.send(payload);
    return true;
  }

  toBroker(session: Session, env: EnvelopeV2): void {
    if (!this.authorize(session, BROKER_URI, env.message_type)) {
      this.denied(session, env);
      return;
    }
    if (env.message_type !== BrokerMessageType.inventoryRequest) {
      this.refuse(
        session,
        RefusalReason.unknownMessageType,
        `the broker (${BROKER_URI}) does not handle message type '${env.message_type}'`,
        env.id,
      );
      return;
    }
    let query;
    try {
      query = decodeInventoryRequest(env);
    } catch (err) {
      this.refuse(session, RefusalReason.invalidData, (err as Error).message, env.id);
      return;
    }
    const inventory = this.opts.inventory();
    const answer = (uris: string[]) => {
      this.sendFromBroker(session, inventoryResponse(session.uri, env.id, uris));
      if (query.subscribe) inventory.subscribe(session, query.patterns);
      else inventory.unsubscribe(session);
    };
    const fabric = this.opts.fabric;
    if (!fabric) return answer(inventory.query(query.patterns));
    // Fabric-wide: this broker's sessions and those the directory has on the others.
    fabric.remoteUris().then(
      (remote) => {
        if (!session.ended) answer(inventory.query(query.patterns, remote));
      },
      (err: Error) => {
        if (!session.ended) this.refuse(session, RefusalReason.fabricUnavailable, `the fabric's session directory could not be read (${err.message}); ask again`, env.id);
      },
    );
  }

  private denied(session: Session, env: EnvelopeV2): void {
    this.metrics.refused[RefusalReason.unauthorized].inc();
    this.log.debug({ uri: session.uri, target: env.target, message_type: env.message_type }, 'message not authorized');
    this.sendFromBroker(session, unauthorized(session.uri, env.id));
  }

  /** An unexpected exception while handling one message: the session is answered and goes on. */
  contain(session: Session, err: unknown, inReplyTo: string | undefined): void {
    try {
      this.metrics.refused[RefusalReason.internalError].inc();
      this.log.warn(
        { code: BROKER_HANDLER_FAILED, uri: session.uri, in_reply_to: inReplyTo, err: err instanceof Error ? err.message : String(err) },
        'unexpected error while handling a message; it was not delivered and the session goes on',
      );
      this.sendFromBroker(
        session,
        withCode(session, errorMessage(session.uri, `the broker could not handle this message (${BROKER_HANDLER_FAILED}); it was not delivered`, inReplyTo), RefusalReason.internalError),
      );
    } catch {
      // Nothing more can be done for this message; the session and the process go on.
    }
  }

  refuse(session: Session, reason: RefusalReason, description: string, inReplyTo: string | undefined): void {
    this.metrics.refused[reason].inc();
    this.log.debug({ uri: session.uri, reason, in_reply_to: inReplyTo }, 'message refused');
    this.sendFromBroker(session, withCode(session, errorMessage(session.uri, description, inReplyTo), reason));
  }
}

/**
 * An error_message with the refusal's stable code, for a client that asked for codes at its
 * upgrade (ERROR_CODES_HEADER; Baton's PCP client does): a v2 envelope field beside `in_reply_to`
 * (the data stays the description string), in the data for v1 sessions (v2ToV1). Others get
 * none: Puppet's pxp-agent (cpp-pcp-client 1.7.7, whose valijson refuses properties a
 * schema does not name) drops a v2 envelope with a field it does not know and v1 error data with
 * a key it does not know, and would lose the error (interop-pxp-agent-errors.test.ts), and
 * Puppet's own controllers are built on the same kind of schemas.
 */
function withCode(session: Session, env: EnvelopeV2, reason: RefusalReason): EnvelopeV2 {
  if (session.errorCodes) env.code = brokerErrorCode(reason);
  return env;
}
