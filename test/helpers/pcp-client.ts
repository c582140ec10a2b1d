// A bare PCP v2 test client over real TLS WebSockets: it sends exactly what a test tells it to,
// keeps everything it receives, and lets tests wait for messages and closes as events.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { WebSocket, type ClientOptions } from 'ws';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import type { TestPki } from './pki.ts';

export const DEFAULT_WAIT_MS = 10_000;

export interface Identity {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** A bounded wait: rejects naming `what` when `p` has not settled within `ms`. */
export function within<T>(p: Promise<T>, what: string, ms = DEFAULT_WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}

export function identity(pki: TestPki, name: string, ca = pki.ca): Identity {
  return { cert: readFileSync(pki.cert(name)), key: readFileSync(pki.key(name)), ca: readFileSync(ca) };
}

/**
 * What a test client received: kept in `received` until taken; `next` takes the first match,
 * past or future, or rejects after a bound naming what did arrive.
 */
export class Inbox<T> {
  readonly received: T[] = [];
  private waiters: { pred: (m: T) => boolean; resolve: (m: T) => void }[] = [];

  constructor(private readonly what: string) {}

  put(m: T): void {
    const i = this.waiters.findIndex((w) => w.pred(m));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    else this.received.push(m);
  }

  next(pred: (m: T) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS, shownChars = 500): Promise<T> {
    const i = this.received.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching ${this.what} within ${timeoutMs} ms; received: ${JSON.stringify(this.received).slice(0, shownChars)}`));
      }, timeoutMs);
      const done = (m: T) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }
}

export class TestClient {
  private readonly inbox = new Inbox<EnvelopeV2>('message');
  readonly received = this.inbox.received;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) throw new Error('the broker sent a binary frame on a v2 session');
      this.inbox.put(JSON.parse(data.toString()) as EnvelopeV2);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => {});
  }

  static async connect(url: string, id: Identity, options: ClientOptions = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { ...id, ...options });
    const client = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      // A connection that never opens fails the test here, naming the URL, instead of hanging it.
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`no WebSocket session with ${url} within ${DEFAULT_WAIT_MS} ms`));
      }, DEFAULT_WAIT_MS);
      const settle = (err?: Error) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      ws.once('open', () => settle());
      ws.once('error', settle);
      ws.once('unexpected-response', (_req, res) => settle(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    return client;
  }

  /** Sends an envelope; fills in an id when missing. Returns the id. */
  send(env: Partial<EnvelopeV2> & { message_type: string }): string {
    const full = { id: randomUUID(), ...env };
    this.ws.send(JSON.stringify(full));
    return full.id;
  }

  sendText(text: string): void {
    this.ws.send(text);
  }

  /** Takes the first received message (past or future) that matches. */
  next(pred: (e: EnvelopeV2) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<EnvelopeV2> {
    return this.inbox.next(pred, timeoutMs);
  }

  /** The reply (any message with in_reply_to === id). */
  reply(id: string): Promise<EnvelopeV2> {
    return this.next((e) => e.in_reply_to === id);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await within(this.closed, 'the closing handshake').catch((err: Error) => {
      this.ws.terminate();
      throw err;
    });
  }
}

/** Connects and expects the upgrade to be refused; resolves with the HTTP status and body. */
export function expectRefused(url: string, options: ClientOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the connection was accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', (err) => reject(err));
  });
}

export const MessageTypes = {
  pxpRequest: 'http://puppetlabs.com/rpc_blocking_request',
  pxpResponse: 'http://puppetlabs.com/rpc_blocking_response',
  errorMessage: 'http://puppetlabs.com/error_message',
  unauthorized: 'http://puppetlabs.com/unauthorized',
  inventoryRequest: 'http://puppetlabs.com/inventory_request',
  inventoryResponse: 'http://puppetlabs.com/inventory_response',
  inventoryUpdate: 'http://puppetlabs.com/inventory_update',
} as const;
