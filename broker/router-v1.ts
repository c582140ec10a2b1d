// Routing of messages from PCP v1 sessions (pcp-specifications 1.0, delivery.md): several and
// wildcard targets, each delivery authorized on its own, `expires` (ttl_expired), destination
// reports, debug hops, and translation to v2 for v2 recipients. Also the book of PXP requests
// sent from v2 to v1 clients, which gives v1 replies their `in_reply_to`.
import type { Logger } from '../lib/log.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { BrokerMessageType } from '../protocol/message-types.ts';
import { decodeV1, encodeV1, hopChunk, IsoClock, readV1Data, v1JsonData, withDebugChunk, withHops, type MessageV1, type V1Data } from '../protocol/pcp-v1.ts';
import { associateResponse, destinationReport, ttlExpired } from '../protocol/pcp-v1-broker.ts';
import { v1ToV2, v1ToV2Text } from '../protocol/pcp-translate.ts';
import { PXP_REPLY_TYPES, PxpMessageType } from '../protocol/pxp.ts';
import { BROKER_URI, compileUriPattern, hasWildcard, matchesUriPattern } from '../protocol/uri.ts';
import type { Authorizer } from './authz.ts';
import { RefusalReason, refusalForProtocolError } from './errors.ts';
import type { BrokerMetrics } from './metrics.ts';
import type { Session, SessionRegistry } from './sessions.ts';

/** What the v1 router needs of the v2 router it sits beside. */
export interface RouterCore {
  deliver(dest: Session, payload: string | Buffer): boolean;
  deliverV1(dest: Session, msg: ReturnType<typeof associateResponse>): boolean;
  /** A message to the broker itself, as a v2 envelope (inventory). */
  toBroker(session: Session, env: ReturnType<typeof v1ToV2>): void;
  refuse(session: Session, reason: RefusalReason, description: string, inReplyTo: string | undefined): void;
  contain(session: Session, err: unknown, inReplyTo: string | undefined): void;
  /** Sends a v2 envelope's text to `target` on another broker of the fabric (only when `inFabric`). */
  forwardRemote(session: Session, target: string, envText: string, id: string, startMs: number): void;
  /** Whether this broker is in a fabric (targets not here may be elsewhere). */
  readonly inFabric: boolean;
}

export interface V1RouterOptions {
  registry: SessionRegistry;
  authorize: Authorizer;
  metrics: BrokerMetrics;
  log: Logger;
  maxMessageDepth: number;
  /** This broker's own URI in debug hops (`pcp://<broker cn>/server`). */
  serverUri: string;
  replies: PendingReplies;
}

/**
 * PXP requests delivered from v2 senders to v1 clients, by `<v1 uri> <transaction id>`, so that
 * the v1 client's replies (which carry only the transaction id) reach the v2 sender with
 * `in_reply_to`. Bounded: the oldest entries go first.
 */
export class PendingReplies {
  private readonly byKey = new Map<string, string>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.byKey.size;
  }

  remember(v1Uri: string, transactionId: string, requestId: string): void {
    const key = `${v1Uri} ${transactionId}`;
    this.byKey.delete(key);
    this.byKey.set(key, requestId);
    if (this.byKey.size > this.max) this.byKey.delete(this.byKey.keys().next().value as string);
  }

  /** The request a reply answers; a final reply (anything but provisional) forgets it. */
  take(v1Uri: string, transactionId: string, final: boolean): string | undefined {
    const key = `${v1Uri} ${transactionId}`;
    const id = this.byKey.get(key);
    if (id !== undefined && final) this.byKey.delete(key);
    return id;
  }
}

export class V1Router {
  private readonly registry: SessionRegistry;
  private readonly authorize: Authorizer;
  private readonly metrics: BrokerMetrics;
  private readonly clock = new IsoClock();
  private readonly serverUriJson: string;

  constructor(
    private readonly core: RouterCore,
    private readonly opts: V1RouterOptions,
  ) {
    this.serverUriJson = JSON.stringify(opts.serverUri);
    this.registry = opts.registry;
    this.authorize = opts.authorize;
    this.metrics = opts.metrics;
  }

  /** One WebSocket message of an associated v1 session. Never throws. */
  handle(session: Session, data: Buffer, isBinary: boolean): void {
    const startMs = performance.now();
    let id: string | undefined;
    try {
      if (!isBinary) {
        this.core.refuse(session, RefusalReason.textFrame, 'text frames are not PCP v1 messages; this session speaks PCP v1 (binary chunks); PCP v2 is at /pcp2/', undefined);
        return;
      }
      let msg: MessageV1;
      try {
        msg = decodeV1(data, this.opts.maxMessageDepth);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this.core.refuse(session, refusalForProtocolError(err.code), err.message, err.messageId);
        return;
      }
      id = msg.envelope.id;
      this.route(session, msg, data, startMs);
    } catch (err) {
      this.core.contain(session, err, id);
    }
  }

  private route(session: Session, msg: MessageV1, frame: Buffer, startMs: number): void {
    const env = msg.envelope;
    if (env.sender !== session.uri) {
      this.core.refuse(session, RefusalReason.senderMismatch, `sender '${env.sender}' does not match this session's identity '${session.uri}'; the message was not delivered`, env.id);
      return;
    }
    if (msg.expiresAtMs < Date.now()) {
      this.metrics.refused[RefusalReason.ttlExpired].inc();
      this.core.deliverV1(session, ttlExpired(session.uri, env.id));
      return;
    }
    let toBroker = false;
    let dests: Iterable<Session>;
    let missing: string[] | undefined;
    const only = env.targets.length === 1 ? env.targets[0]! : undefined;
    if (only !== undefined && only !== BROKER_URI && !hasWildcard(only)) {
      // The common case, one named target: no set to build.
      const s = this.registry.get(only);
      if (s === undefined) missing = [only];
      dests = s === undefined ? [] : [s];
    } else {
      const found = new Set<Session>();
      for (const target of env.targets) {
        if (target === BROKER_URI) {
          toBroker = true;
        } else if (hasWildcard(target)) {
          let pattern;
          try {
            pattern = compileUriPattern(target);
          } catch (err) {
            this.core.refuse(session, RefusalReason.invalidEnvelope, `envelope.targets: ${(err as Error).message}; the message was not delivered`, env.id);
            return;
          }
          for (const s of this.registry.values()) if (matchesUriPattern(pattern, s.commonName, s.clientType)) found.add(s);
        } else {
          const s = this.registry.get(target);
          if (s === undefined) (missing ??= []).push(target);
          else found.add(s);
        }
      }
      dests = found;
    }
    if (toBroker) this.toBroker(session, msg);
    const allowed: Session[] = [];
    let denied: string[] | undefined;
    for (const dest of dests) {
      if (this.authorize(session, dest.uri, env.message_type)) allowed.push(dest);
      else (denied ??= []).push(dest.uri);
    }
    if (env.destination_report === true) this.core.deliverV1(session, destinationReport(session.uri, env.id, allowed.map((s) => s.uri)));
    if (allowed.length > 0) this.deliverAll(session, msg, frame, allowed, startMs);
    if (missing && this.core.inFabric) {
      // Not here, maybe on another broker of the fabric: authorized here like the rest.
      const elsewhere: string[] = [];
      for (const target of missing) (this.authorize(session, target, env.message_type) ? elsewhere : (denied ??= [])).push(target);
      if (elsewhere.length > 0) this.forwardAll(session, msg, elsewhere, startMs);
      missing = undefined;
    }
    if (denied) {
      this.core.refuse(session, RefusalReason.unauthorized, `not authorized to send ${env.message_type} to ${denied.join(', ')}; not delivered there`, env.id);
    }
    if (missing) {
      this.core.refuse(session, RefusalReason.notConnected, `${missing.length === 1 ? 'target' : 'targets'} ${missing.map((t) => `'${t}'`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not connected`, env.id);
    }
  }

  private deliverAll(session: Session, msg: MessageV1, frame: Buffer, dests: Session[], startMs: number): void {
    const env = msg.envelope;
    let v1Frame: Buffer | undefined;
    let v2Data: V1Data | undefined;
    let v2DataRead = false;
    let inReplyTo: string | undefined;
    for (const dest of dests) {
      let ok: boolean;
      if (dest.pcpVersion === 1) {
        v1Frame ??= this.forwardFrame(msg, frame);
        ok = this.core.deliver(dest, v1Frame);
      } else {
        if (!v2DataRead) {
          v2DataRead = true;
          try {
            v2Data = readV1Data(msg, this.opts.maxMessageDepth);
          } catch (err) {
            if (!(err instanceof ProtocolError)) throw err;
            this.core.refuse(session, refusalForProtocolError(err.code), `${err.message}; it cannot be delivered to PCP v2 clients`, env.id);
            return;
          }
          inReplyTo = this.replyTo(session, env.message_type, v2Data?.value);
        }
        // The data's text goes into the v2 envelope as it came (it parsed as JSON).
        ok = this.core.deliver(dest, v1ToV2Text(env, dest.uri, v2Data, inReplyTo));
      }
      if (!ok) {
        this.core.refuse(session, RefusalReason.slowConsumer, `target '${dest.uri}' was disconnected: it did not read its messages`, env.id);
        continue;
      }
      this.metrics.routed.inc();
    }
    this.metrics.routingSeconds.observe((performance.now() - startMs) / 1000);
  }

  /** Targets on no session here, authorized: the message goes, as v2, to each one's broker (which translates again for a v1 target). */
  private forwardAll(session: Session, msg: MessageV1, targets: string[], startMs: number): void {
    const env = msg.envelope;
    let v2Data: V1Data | undefined;
    try {
      v2Data = readV1Data(msg, this.opts.maxMessageDepth);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.core.refuse(session, refusalForProtocolError(err.code), `${err.message}; it cannot be delivered to another broker`, env.id);
      return;
    }
    const inReplyTo = this.replyTo(session, env.message_type, v2Data?.value);
    for (const target of targets) this.core.forwardRemote(session, target, v1ToV2Text(env, target, v2Data, inReplyTo), env.id, startMs);
  }

  /**
   * The v1 frame for v1 recipients, with this broker's hop: the frame as received with a debug
   * chunk appended (one copy) when it has none, else encoded afresh with the hop added to the first.
   */
  private forwardFrame(msg: MessageV1, frame: Buffer): Buffer {
    if (msg.debug.length === 0) {
      const out = withDebugChunk(frame, hopChunk(this.serverUriJson, 'accepted', this.clock.at(Date.now())));
      if (out !== undefined) return out;
    }
    return encodeV1({ envelope: msg.envelope, data: msg.data, debug: this.debugWithHop(msg.debug) });
  }

  /** The request a PXP reply from a v1 client answers, when a v2 sender's request was booked. */
  private replyTo(session: Session, messageType: string, data: unknown): string | undefined {
    if (!PXP_REPLY_TYPES.has(messageType)) return undefined;
    const d = data as { transaction_id?: unknown; id?: unknown } | undefined;
    if (messageType === PxpMessageType.errorMessage && typeof d?.id === 'string') {
      if (typeof d.transaction_id === 'string') this.opts.replies.take(session.uri, d.transaction_id, true);
      return d.id;
    }
    if (typeof d?.transaction_id !== 'string') return undefined;
    return this.opts.replies.take(session.uri, d.transaction_id, messageType !== PxpMessageType.provisionalResponse);
  }

  private toBroker(session: Session, msg: MessageV1): void {
    const env = msg.envelope;
    if (env.message_type === BrokerMessageType.associateRequest) {
      // Already associated: the session stays as it is (association.md).
      this.core.deliverV1(session, associateResponse(session.uri, env.id, true));
      return;
    }
    let data: unknown;
    try {
      data = v1JsonData(msg, this.opts.maxMessageDepth);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.core.refuse(session, refusalForProtocolError(err.code), err.message, env.id);
      return;
    }
    this.core.toBroker(session, v1ToV2(env, BROKER_URI, data));
  }

  /** The message's debug chunks with this broker's hop appended (a chunk of its own when there are none). */
  private debugWithHop(debug: Buffer[]): (Buffer | string)[] {
    const time = this.clock.at(Date.now());
    if (debug.length === 0) return [hopChunk(this.serverUriJson, 'accepted', time)];
    return withHops(debug, [{ server: this.opts.serverUri, stage: 'accepted', time }]);
  }
}
