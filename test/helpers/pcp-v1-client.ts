// A bare PCP v1 test client over real TLS WebSockets: binary chunked frames made with Baton's v1
// codec, sent exactly as a test says; everything received is decoded and kept.
import { randomUUID } from 'node:crypto';
import { WebSocket, type ClientOptions } from 'ws';
import { decodeV1, encodeV1, expiresIn, type EnvelopeV1 } from '../../protocol/pcp-v1.ts';
import { DEFAULT_WAIT_MS, Inbox, type Identity } from './pcp-client.ts';

export interface ReceivedV1 {
  envelope: EnvelopeV1;
  data: unknown;
  debug: unknown[];
}

export const V1Types = {
  associateRequest: 'http://puppetlabs.com/associate_request',
  associateResponse: 'http://puppetlabs.com/associate_response',
  errorMessage: 'http://puppetlabs.com/error_message',
  ttlExpired: 'http://puppetlabs.com/ttl_expired',
  destinationReport: 'http://puppetlabs.com/destination_report',
  inventoryRequest: 'http://puppetlabs.com/inventory_request',
  inventoryResponse: 'http://puppetlabs.com/inventory_response',
} as const;

export class TestClientV1 {
  private readonly inbox = new Inbox<ReceivedV1>('v1 message');
  readonly received = this.inbox.received;
  /** Text frames received (a v1 session should never get one). */
  readonly textFrames: string[] = [];
  /** Binary frames received that are not valid PCP v1 messages (a broker should never deliver one). */
  undecodable = 0;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(
    readonly ws: WebSocket,
    /** This client's URI, as it will associate (`pcp://<cn>/<type>`). */
    readonly uri: string,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        this.textFrames.push(data.toString());
        return;
      }
      let msg;
      try {
        msg = decodeV1(data);
      } catch {
        this.undecodable++;
        return;
      }
      // A broker forwards v1 data and debug chunks as they are: they need not be JSON.
      const parsed: ReceivedV1 = {
        envelope: msg.envelope,
        data: msg.data === undefined ? undefined : jsonOrText(msg.data),
        debug: msg.debug.map(jsonOrText),
      };
      this.inbox.put(parsed);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => {});
  }

  /** Opens the WebSocket only (no association). */
  static async open(url: string, id: Identity, uri: string, options: ClientOptions = {}): Promise<TestClientV1> {
    const ws = new WebSocket(url, { ...id, perMessageDeflate: false, ...options });
    const client = new TestClientV1(ws, uri);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    return client;
  }

  /** Opens and associates; rejects unless the association succeeds. */
  static async connect(url: string, id: Identity, uri: string, options: ClientOptions = {}): Promise<TestClientV1> {
    const c = await TestClientV1.open(url, id, uri, options);
    const res = await c.associate();
    if ((res.data as { success: boolean }).success !== true) throw new Error(`association refused: ${JSON.stringify(res.data)}`);
    return c;
  }

  /** Sends an associate_request and waits for its associate_response. */
  async associate(sender = this.uri): Promise<ReceivedV1> {
    const id = this.send({ message_type: V1Types.associateRequest, targets: ['pcp:///server'], sender });
    return this.next((m) => m.envelope.message_type === V1Types.associateResponse && (m.data as { id?: string }).id === id);
  }

  /** Sends a message; fills in id, expires (60 s) and sender. Returns the id. */
  send(env: Partial<EnvelopeV1> & { message_type: string; targets: string[] }, data?: unknown, debug?: unknown[]): string {
    const envelope: EnvelopeV1 = { id: randomUUID(), expires: expiresIn(60_000), sender: this.uri, ...env };
    this.ws.send(
      encodeV1({
        envelope,
        ...(data === undefined ? {} : { data: JSON.stringify(data) }),
        ...(debug ? { debug: debug.map((d) => JSON.stringify(d)) } : {}),
      }),
    );
    return envelope.id;
  }

  sendRaw(frame: Buffer | string): void {
    this.ws.send(frame, { binary: typeof frame !== 'string' });
  }

  next(pred: (m: ReceivedV1) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<ReceivedV1> {
    return this.inbox.next(pred, timeoutMs, 600);
  }

  /** The broker's error_message about message `id`. */
  errorFor(id: string): Promise<ReceivedV1> {
    return this.next((m) => m.envelope.message_type === V1Types.errorMessage && (m.data as { id?: string }).id === id);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await this.closed;
  }
}

function jsonOrText(b: Buffer): unknown {
  const text = b.toString();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
