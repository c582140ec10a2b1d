// The PCP client's transport: connecting over the broker URIs in order (failover), reconnecting
// forever after a pause (backoff.ts) until stopped, the v1 association of each new connection,
// and the keepalive of the connection in use (heartbeats.ts). Frames go to and come from the
// client through `TransportHooks`; what they mean is not the transport's business.
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import { SESSION_REPLACED_CLOSE_CODE } from '../message-types.ts';
import { INITIAL_BACKOFF_STATE, nextReconnect, withBusy, type BackoffOptions, type ConnectOutcome } from './backoff.ts';
import { ClientErrorCode, PcpClientError, PcpVersion, sessionUrl } from './broker-uri.ts';
import { keepAlive } from './heartbeats.ts';
import { associateV1, type Association, type FrameHandler } from './v1-association.ts';
import { openWebSocket } from './wire.ts';

/** How long `stop()` waits for the broker to answer the closing handshake before it terminates the connection. */
export const STOP_CLOSE_WAIT_MS = 2_000;

/** Everything resolved: the client fills in the defaults. */
export interface TransportOptions {
  brokerUris: readonly string[];
  clientType: string;
  version: PcpVersion;
  /** The client's URI: the sender of the v1 association. */
  uri: string;
  tls: { ca: Buffer; cert: Buffer; key: Buffer; crl?: Buffer | undefined };
  log: Logger;
  pingIntervalMs: number;
  allowedKeepaliveTimeouts: number;
  connectionTimeoutMs: number;
  admissionWaitMs: number;
  maxMessageBytes: number;
  maxMessageDepth: number;
  associationTimeoutMs: number;
  messageTtlMs: number;
  backoff: BackoffOptions;
}

export interface TransportHooks {
  /** A frame received on the connection in use. */
  onFrame: FrameHandler;
  /** A session is established and usable (sends succeed). */
  onConnected(brokerUri: string): void;
  /** A connection attempt failed (the broker is down, or refused us: the error says why). */
  onConnectError(brokerUri: string, err: PcpClientError): void;
  /** The session ended; `why` says how (`closed (<code> <reason>)`). */
  onClosed(why: string): void;
}

export class Transport {
  private ws: WebSocket | null = null;
  private currentBroker: string | null = null;
  private stopped = true;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  /** v1: a connection being associated (stop() ends it). */
  private associating: WebSocket | null = null;
  /** Parsed once: building it from PEM on every attempt costs more CPU than the handshake in a storm. */
  private readonly secureContext: SecureContext;
  private readonly v1: boolean;
  private sessionSinceMs = 0;
  private lastPongMs: number | null = null;

  constructor(
    private readonly opts: TransportOptions,
    private readonly hooks: TransportHooks,
  ) {
    this.v1 = opts.version === PcpVersion.v1;
    const { ca, cert, key, crl } = opts.tls;
    this.secureContext = createSecureContext({ ca, cert, key, ...(crl ? { crl } : {}) });
  }

  /** The connection in use when it is open, else null. */
  get openSocket(): WebSocket | null {
    const ws = this.ws;
    return ws !== null && ws.readyState === WebSocket.OPEN ? ws : null;
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  get broker(): string | null {
    return this.connected ? this.currentBroker : null;
  }

  /** The open session: when it was established and when the broker last answered a ping (epoch ms). */
  get session(): { broker: string; sinceMs: number; lastPongMs: number | null } | null {
    const ws = this.openSocket;
    return ws && this.currentBroker !== null ? { broker: this.currentBroker, sinceMs: this.sessionSinceMs, lastPongMs: this.lastPongMs } : null;
  }

  /** A WebSocket ping over the open session; resolves at its pong, rejects without a session or after `timeoutMs`. */
  ping(timeoutMs: number): Promise<void> {
    const ws = this.openSocket;
    if (!ws) return Promise.reject(new PcpClientError(ClientErrorCode.notConnected, 'not connected to a broker'));
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        ws.off('pong', onPong);
        ws.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onPong = () => done();
      const onClose = () => done(new PcpClientError(ClientErrorCode.notConnected, 'the session closed before the pong'));
      const timer = setTimeout(() => done(new PcpClientError(ClientErrorCode.timeout, `no pong within ${timeoutMs} ms`)), timeoutMs);
      ws.on('pong', onPong);
      ws.once('close', onClose);
      ws.ping();
    });
  }

  /** Starts connecting (and reconnecting, forever) until `stop()`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.connectLoop();
  }

  /** Ends the connection (closing it cleanly when it can) and the reconnection loop. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.associating?.terminate();
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close(1000, 'client stopping');
      const timer = setTimeout(() => ws.terminate(), STOP_CLOSE_WAIT_MS);
      await closed;
      clearTimeout(timer);
    }
    await this.loop;
  }

  private async connectLoop(): Promise<void> {
    let state = INITIAL_BACKOFF_STATE;
    const log = this.opts.log;
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
            log.debug({ broker: brokerUri, err: e.message }, 'the broker is busy');
          } else {
            log.warn({ broker: brokerUri, err: e.message }, 'cannot connect to broker');
          }
          this.hooks.onConnectError(brokerUri, e);
        }
      }
      if (this.stopped) return;
      const next = nextReconnect(state, outcome, this.opts.backoff);
      state = next.state;
      const delayMs = next.delayMs;
      log.info({ delay_ms: delayMs, after: outcome.kind }, 'reconnecting after a pause');
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
    const opts = this.opts;
    const ws = await openWebSocket(sessionUrl(brokerUri, opts.clientType, opts.version), {
      secureContext: this.secureContext,
      connectionTimeoutMs: opts.connectionTimeoutMs,
      admissionWaitMs: opts.admissionWaitMs,
      maxPayloadBytes: opts.maxMessageBytes,
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
        uri: opts.uri,
        timeoutMs: opts.associationTimeoutMs,
        messageTtlMs: opts.messageTtlMs,
        maxDepth: opts.maxMessageDepth,
        log: opts.log,
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
    const log = this.opts.log;
    this.ws = ws;
    this.currentBroker = brokerUri;
    this.sessionSinceMs = Date.now();
    this.lastPongMs = null;
    ws.on('pong', () => (this.lastPongMs = Date.now()));
    const keepalive = keepAlive(ws, this.opts.pingIntervalMs, this.opts.allowedKeepaliveTimeouts, (missed) =>
      log.warn({ broker: brokerUri, missed }, 'no pong from the broker; reconnecting'),
    );
    const onFrame = this.hooks.onFrame;
    if (association) association.handOver(onFrame);
    else ws.on('message', onFrame);
    ws.on('error', (err) => log.debug({ err: err.message }, 'connection error'));
    log.info({ broker: brokerUri, connect_ms: Math.round(connectMs * 10) / 10 }, 'connected to broker');
    this.hooks.onConnected(brokerUri);
    return new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        clearInterval(keepalive);
        this.ws = null;
        const why = `closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
        log.info({ broker: brokerUri, code }, 'disconnected from broker');
        this.hooks.onClosed(why);
        resolve(code);
      });
    });
  }
}
