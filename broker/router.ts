// The hot path: one decoded frame from a session → validation, identity, authorization, delivery.
import { WebSocket } from 'ws';
import type { Logger } from '../lib/log.ts';
import { ProtocolError, ProtocolErrorCode } from '../protocol/errors.ts';
import { decodeInventoryRequest, inventoryResponse } from '../protocol/inventory.ts';
import { BrokerMessageType } from '../protocol/message-types.ts';
import { errorMessage, unauthorized } from '../protocol/pcp-error.ts';
import { decodeV2, encodeV2, type EnvelopeV2 } from '../protocol/pcp-v2.ts';
import { BROKER_URI, hasWildcard } from '../protocol/uri.ts';
import type { Authorizer } from './authz.ts';
import { CloseCode } from './defaults.ts';
import { RefusalReason, refusalForProtocolError } from './errors.ts';
import type { Inventory } from './inventory.ts';
import type { BrokerMetrics, DisconnectReason } from './metrics.ts';
import type { Session, SessionRegistry } from './sessions.ts';

export interface RouterOptions {
  registry: SessionRegistry;
  inventory: () => Inventory;
  authorize: Authorizer;
  metrics: BrokerMetrics;
  log: Logger;
  maxSendBufferBytes: number;
  /** Ends a session for a reason of the broker's own (slow consumer). */
  drop: (session: Session, reason: DisconnectReason, code: number, text: string) => void;
}

export class Router {
  private readonly registry: SessionRegistry;
  private readonly authorize: Authorizer;
  private readonly metrics: BrokerMetrics;
  private readonly log: Logger;
  private readonly maxSendBufferBytes: number;
  /** Sockets corked during this tick; their writes go out together (fewer TLS records and syscalls). */
  private readonly corked = new Set<Session['socket']>();
  private readonly uncorkAll = () => {
    for (const socket of this.corked) socket.uncork();
    this.corked.clear();
  };

  constructor(private readonly opts: RouterOptions) {
    this.registry = opts.registry;
    this.authorize = opts.authorize;
    this.metrics = opts.metrics;
    this.log = opts.log;
    this.maxSendBufferBytes = opts.maxSendBufferBytes;
  }

  /** Handles one WebSocket message of a v2 session. */
  handle(session: Session, data: Buffer, isBinary: boolean): void {
    const startMs = performance.now();
    session.lastSeenMs = Date.now();
    let env: EnvelopeV2;
    try {
      if (isBinary) {
        throw new ProtocolError(
          ProtocolErrorCode.binaryFrame,
          'binary frames are not PCP v2 messages; send each message as a JSON text frame',
        );
      }
      env = decodeV2(data.toString('utf8'));
    } catch (err) {
      const e = err as ProtocolError;
      this.refuse(session, refusalForProtocolError(e.code), e.message, e.messageId);
      return;
    }

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
      this.refuse(session, RefusalReason.notConnected, `target '${target}' is not connected`, env.id);
      return;
    }
    if (!this.deliver(dest, encodeV2(env))) {
      this.refuse(session, RefusalReason.slowConsumer, `target '${target}' was disconnected: it did not read its messages`, env.id);
      return;
    }
    this.metrics.routed.inc();
    this.metrics.routingSeconds.observe((performance.now() - startMs) / 1000);
  }

  /** Sends an envelope from the broker to a session. */
  sendFromBroker(to: Session, env: EnvelopeV2): void {
    this.deliver(to, encodeV2(env));
  }

  /** Queues text to a session; a client whose queue is over the cap is disconnected instead. */
  deliver(dest: Session, text: string): boolean {
    const ws = dest.ws;
    if (ws.readyState !== WebSocket.OPEN) return false;
    const queued = ws.bufferedAmount;
    if (queued > 0 && queued + text.length > this.maxSendBufferBytes) {
      this.opts.drop(dest, 'slow_consumer', CloseCode.slowConsumer, 'slow consumer: send buffer limit exceeded');
      return false;
    }
    const socket = dest.socket;
    if (!this.corked.has(socket)) {
      if (this.corked.size === 0) process.nextTick(this.uncorkAll);
      this.corked.add(socket);
      socket.cork();
    }
    ws.send(text);
    return true;
  }

  private toBroker(session: Session, env: EnvelopeV2): void {
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
    this.sendFromBroker(session, inventoryResponse(session.uri, env.id, inventory.query(query.patterns)));
    if (query.subscribe) inventory.subscribe(session, query.patterns);
    else inventory.unsubscribe(session);
  }

  private denied(session: Session, env: EnvelopeV2): void {
    this.metrics.refused[RefusalReason.unauthorized].inc();
    this.log.debug({ uri: session.uri, target: env.target, message_type: env.message_type }, 'message not authorized');
    this.sendFromBroker(session, unauthorized(session.uri, env.id));
  }

  private refuse(session: Session, reason: RefusalReason, description: string, inReplyTo: string | undefined): void {
    this.metrics.refused[reason].inc();
    this.log.debug({ uri: session.uri, reason, in_reply_to: inReplyTo }, 'message refused');
    this.sendFromBroker(session, errorMessage(session.uri, description, inReplyTo));
  }
}
