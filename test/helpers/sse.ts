// A Server-Sent Events client for tests: HTTPS with the test CA and a token, parsed by
// eventsource-parser (the parser of the `eventsource` package), events waited for one by one.
import { request } from 'node:https';
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export interface SseEventRead {
  event: string;
  id: string | undefined;
  data: Record<string, unknown>;
}

export class SseClient {
  readonly events: SseEventRead[] = [];
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  comments = 0;
  private waiters: (() => void)[] = [];
  private ended = false;
  readonly done: Promise<void>;
  /** Resolves once the response headers came (the feed is open). */
  readonly open: Promise<void>;
  private opened!: () => void;
  private abort!: () => void;

  /** `headers` are sent as given (e.g. Chef's X-Ops-* signature instead of a token). */
  constructor(url: string, opts: { ca: Buffer; token?: string; headers?: Record<string, string>; lastEventId?: string; accept?: string }) {
    this.open = new Promise((resolve) => (this.opened = resolve));
    this.done = new Promise((resolve, reject) => {
      const req = request(url, {
        ca: opts.ca,
        headers: {
          accept: opts.accept ?? 'text/event-stream',
          ...(opts.token ? { 'x-authentication': opts.token } : {}),
          ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}),
          ...opts.headers,
        },
      }, (res) => {
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        this.opened();
        const parser = createParser({
          onEvent: (m: EventSourceMessage) => {
            this.events.push({ event: m.event ?? 'message', id: m.id, data: JSON.parse(m.data) as Record<string, unknown> });
            this.wake();
          },
          onComment: () => {
            this.comments++;
            this.wake();
          },
        });
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => parser.feed(chunk));
        res.on('end', () => this.finish(resolve));
        res.on('close', () => this.finish(resolve));
      });
      req.on('error', (err) => (this.ended ? resolve() : reject(err)));
      this.abort = () => req.destroy();
      req.end();
    });
  }

  /** Resolves with the first event (from the start) that satisfies `pred`; rejects if the stream ends first. */
  async waitFor(pred: (e: SseEventRead) => boolean): Promise<SseEventRead> {
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found;
      if (this.ended) throw new Error(`the feed ended without the event; got: ${this.events.map((e) => e.event).join(', ')}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  close(): void {
    this.ended = true;
    this.abort();
    this.wake();
  }

  private finish(resolve: () => void): void {
    this.ended = true;
    this.wake();
    resolve();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
