// The PCP client's wire: opening the TLS WebSocket of one connection attempt, and the per-version
// framing of envelopes (v2: JSON text frames; v1: binary chunks, translated to and from the v2
// envelope the rest of the client handles). Opening is effects; the framing is pure.
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type SecureContext } from 'node:tls';
import { WebSocket, type ClientOptions } from 'ws';
import type { InventoryChange } from '../inventory.ts';
import { InventoryChangeKind } from '../inventory.ts';
import { ProtocolError, ProtocolErrorCode } from '../errors.ts';
import { decodeV1, encodeV1, expiresIn, v1JsonData } from '../pcp-v1.ts';
import { decodeV2, type EnvelopeV2 } from '../pcp-v2.ts';
import { v1ToV2, v2ToV1 } from '../pcp-translate.ts';
import { parseRetryAfterMs } from './backoff.ts';
import { ClientErrorCode, PcpClientError } from './broker-uri.ts';
import { ERROR_CODES_HEADER } from '../broker-errors.ts';

export interface OpenOptions {
  secureContext: SecureContext;
  /** Each phase (TCP connect; TLS and upgrade once the broker answers) must end within this. */
  connectionTimeoutMs: number;
  /** Accepted but not yet answered: how long to wait for the broker to start the TLS handshake. */
  admissionWaitMs: number;
  maxPayloadBytes: number;
}

/**
 * One connection attempt: resolves with the open WebSocket (no listeners left on it). Rejects
 * with a typed error: `busy` when the broker is up but shed the attempt (HTTP 503/429 on the
 * upgrade, or the connection reset before the TLS handshake completed: the broker's cheapest
 * refusal), `refused` for another HTTP answer, `timeout` for a phase that took too long, else the cause.
 */
export function openWebSocket(url: string, opts: OpenOptions): Promise<WebSocket> {
  const { connectionTimeoutMs, admissionWaitMs } = opts;
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
    const socket = tlsConnect({ ...options, servername, secureContext: opts.secureContext });
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
      maxPayload: opts.maxPayloadBytes,
      // Baton's broker then gives its error_messages a stable code (other brokers ignore the header).
      headers: { [ERROR_CODES_HEADER]: '1' },
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

/** A received v2 frame as its envelope. Throws `ProtocolError` (`pcp/binary-frame` and decodeV2's). */
export function decodeV2Frame(data: Buffer, isBinary: boolean, maxDepth: number): EnvelopeV2 {
  if (isBinary) throw new ProtocolError(ProtocolErrorCode.binaryFrame, 'a binary frame on a PCP v2 session (v2 messages are JSON text)');
  return decodeV2(data.toString('utf8'), maxDepth);
}

/**
 * A received v1 frame as the v2 envelope delivered to `self` (the client's URI); the v1
 * `error_message`'s `{id, description}` become `in_reply_to` and the description. Throws
 * `ProtocolError` (`pcp/text-frame` and decodeV1's or v1JsonData's).
 */
export function decodeV1Frame(data: Buffer, isBinary: boolean, self: string, maxDepth: number): EnvelopeV2 {
  if (!isBinary) throw new ProtocolError(ProtocolErrorCode.textFrame, 'a text frame on a PCP v1 session (v1 messages are binary)');
  const msg = decodeV1(data, maxDepth);
  return v1ToV2(msg.envelope, self, v1JsonData(msg, maxDepth));
}

/** An outgoing envelope as a v1 frame from `self`, expiring `ttlMs` from `nowMs`. */
export function encodeV1Frame(env: EnvelopeV2, self: string, ttlMs: number, nowMs: number = Date.now()): Buffer {
  const msg = v2ToV1(env, expiresIn(ttlMs, nowMs));
  msg.envelope.sender = self;
  return encodeV1(msg);
}

/**
 * PCP v1 has no inventory subscriptions: the client polls and derives the changes from two
 * answers. Connected URIs first, then disconnected ones, each in the order given.
 */
export function inventoryChanges(known: ReadonlySet<string>, now: readonly string[]): InventoryChange[] {
  const current = new Set(now);
  const changes: InventoryChange[] = [];
  for (const uri of current) if (!known.has(uri)) changes.push({ client: uri, change: InventoryChangeKind.connected });
  for (const uri of known) if (!current.has(uri)) changes.push({ client: uri, change: InventoryChangeKind.disconnected });
  return changes;
}

/**
 * A v1 inventory "subscription": asks for the inventory every `everyMs` (`ask` gives null when it
 * cannot ask now) and hands the changes since the last answer to `onChanges`.
 */
export class InventoryPoll {
  private known: Set<string>;
  private readonly timer: NodeJS.Timeout;

  constructor(ask: () => Promise<string[]> | null, uris: readonly string[], everyMs: number, onChanges: (changes: InventoryChange[]) => void, onError: (err: Error) => void) {
    this.known = new Set(uris);
    this.timer = setInterval(() => {
      ask()?.then((now) => {
        const changes = inventoryChanges(this.known, now);
        this.known = new Set(now);
        if (changes.length > 0) onChanges(changes);
      }, onError);
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** A string property of a message's data, if it has one. */
export function stringField(data: unknown, key: string): string | undefined {
  const v = typeof data === 'object' && data !== null ? (data as Record<string, unknown>)[key] : undefined;
  return typeof v === 'string' ? v : undefined;
}
