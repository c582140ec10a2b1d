// Follows a Redis stream into a Server-Sent Events response: XREAD BLOCK on a connection of its
// own, every wait bounded by the keep-alive period, the connection let go when the client goes.
// Shared by the feeds of the Chef face and the console.
import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { SSE_KEEPALIVE_MS } from '../defaults.ts';
import type { SseStream } from './sse.ts';

/** One stream entry as XREAD gives it: its id and its fields as [name, value, ...]. */
export type StreamEntry = [id: string, fields: string[]];

export interface FollowOptions {
  /** The API's connection: the follower duplicates it (a blocking read must not hold it). */
  redis: Redis;
  sse: SseStream;
  key: string;
  /** Entries after this id are read. */
  after: string;
  /** Handles entries as they come, in order; true when the feed has ended (the stream then closes). */
  onEntries: (entries: StreamEntry[]) => boolean | Promise<boolean>;
  /** After a wait in which nothing came (a keep-alive was sent): true when the feed has ended. */
  onIdle?: () => boolean | Promise<boolean>;
  /** Longest wait for new entries (default SSE_KEEPALIVE_MS, the keep-alive period). */
  blockMs?: number;
  /** Most entries read at once. */
  count?: number;
}

/** Most entries one read takes, so that a long backlog is sent in bounded steps. */
export const FOLLOW_READ_COUNT = 500;

/**
 * Sends what `onEntries` makes of the stream's entries after `after`, then follows the stream until
 * `onEntries` or `onIdle` says the feed ended, the client went, or Redis failed; the response is
 * ended and the connection let go in every case.
 */
export async function followStream(o: FollowOptions): Promise<void> {
  const blockMs = o.blockMs ?? SSE_KEEPALIVE_MS;
  // Its own connection, without the API's commandTimeout (which would cut every XREAD BLOCK short):
  // ioredis's blockingTimeout ends a read that Redis (stalled) never answers, just after its BLOCK.
  const reader = o.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined, blockingTimeout: blockMs });
  reader.on('error', () => {});
  o.sse.whenClosed(() => reader.disconnect());
  let last = o.after;
  try {
    while (!o.sse.closed) {
      const res = await reader.xread('COUNT', o.count ?? FOLLOW_READ_COUNT, 'BLOCK', blockMs, 'STREAMS', o.key, last);
      if (o.sse.closed) return;
      if (!res) {
        o.sse.keepalive();
        if (o.onIdle && (await o.onIdle())) return;
        continue;
      }
      const entries = res[0]![1] as StreamEntry[];
      last = entries.at(-1)![0];
      if (await o.onEntries(entries)) return;
    }
  } catch {
    // the client went (its reader was disconnected) or Redis did: the feed ends
  } finally {
    reader.disconnect();
    o.sse.end();
  }
}

/** The Last-Event-ID header of a feed's request (a client resuming after a drop), or null. */
export function lastEventId(req: FastifyRequest): string | null {
  const v = req.headers['last-event-id'];
  return (Array.isArray(v) ? v[0] : v) ?? null;
}
