// Server-Sent Events on a hijacked fastify reply: headers, events, comment keep-alives. Pure
// formatting plus writes; the feeds decide what to send.
import type { ServerResponse } from 'node:http';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

export interface SseEvent {
  event: string;
  id?: string;
  data: unknown;
}

/** One event as SSE text (data as one JSON line). */
export function formatEvent(e: SseEvent): string {
  return `event: ${e.event}\n${e.id !== undefined ? `id: ${e.id}\n` : ''}data: ${JSON.stringify(e.data)}\n\n`;
}

/** Streams open now, so that a server that stops can end them (its close waits for every connection). */
const openStreams = new Set<SseStream>();

/** Ends every open stream (the server is stopping); clients reconnect, with Last-Event-ID, elsewhere or later. */
export function endAllStreams(): void {
  for (const s of [...openStreams]) s.end();
}

export class SseStream {
  closed = false;
  private readonly onClose: (() => void)[] = [];

  constructor(readonly raw: ServerResponse) {
    raw.writeHead(200, SSE_HEADERS);
    raw.flushHeaders();
    openStreams.add(this);
    raw.on('close', () => {
      this.closed = true;
      openStreams.delete(this);
      for (const f of this.onClose) f();
    });
  }

  whenClosed(f: () => void): void {
    if (this.closed) f();
    else this.onClose.push(f);
  }

  send(e: SseEvent): void {
    if (!this.closed && !this.raw.writableEnded) this.raw.write(formatEvent(e));
  }

  keepalive(): void {
    if (!this.closed && !this.raw.writableEnded) this.raw.write(': keep-alive\n\n');
  }

  end(): void {
    if (!this.closed && !this.raw.writableEnded) this.raw.end();
  }
}

/** Accept asks for an event stream (text/event-stream, or Chef's application/event-stream). */
export function wantsEventStream(accept: string | undefined): boolean {
  return /(text|application)\/event-stream/.test(accept ?? '');
}
