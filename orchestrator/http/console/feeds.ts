// The console's live feeds (Server-Sent Events): one job's nodes as they change, and every job's
// creation and state changes across faces. Both follow Redis streams the job scripts append to
// atomically with the change itself, and resume after Last-Event-ID.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { streamField, streamPosition } from '../../../lib/redis-stream.ts';
import { ENDED_JOB_STATES, type JobState, type JobStore } from '../../engine/store.ts';
import { nodeJson } from '../puppet/present.ts';
import { jobView } from '../puppet/job-view.ts';
import { apiError, ApiErrorCode } from '../errors.ts';
import { baseUrl } from '../request.ts';
import { SseStream } from '../sse.ts';
import { followStream, lastEventId, type StreamEntry } from '../stream-follow.ts';

/** The shortest time between two `job` events of one job's feed (changes in between are coalesced). */
export const JOB_EVENT_INTERVAL_MS = 250;
/** Entries one read of an ended job's events takes. */
const REPLAY_COUNT = 500;
/** Job events after which a job has ended (node-transition's last entry, atomic with the end). */
const JOB_END_EVENTS = new Set(['job_finished', 'job_aborted']);

export interface ConsoleFeedContext {
  store: JobStore;
  /** The API's Redis connection (each feed follows on a duplicate of it). */
  redis: Redis;
}

/** What a `job` event is sent again for: the job's state or its node counts. */
const changeKey = (j: Record<string, unknown>): string => JSON.stringify([j.state, j.node_states]);

/**
 * Sends a job's `job` event at most every JOB_EVENT_INTERVAL_MS, and only when its state or counts
 * differ from what was sent last; snapshots are taken and sent one at a time, in order.
 */
class JobEvents {
  private sentKey = '';
  private lastSentMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly sse: SseStream, private readonly snapshot: () => Promise<Record<string, unknown> | null>) {
    sse.whenClosed(() => this.cancel());
  }

  /** Something changed: a snapshot is sent once the interval since the last one has passed. */
  changed(): void {
    if (this.timer || this.sse.closed) return;
    const waitMs = Math.max(0, this.lastSentMs + JOB_EVENT_INTERVAL_MS - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush().catch(() => this.sse.end());
    }, waitMs);
  }

  /** Sends a snapshot taken already (the feed's first event). */
  sent(job: Record<string, unknown>): void {
    this.sentKey = changeKey(job);
    this.lastSentMs = Date.now();
    this.sse.send({ event: 'job', data: job });
  }

  /** Sends the job now if it changed (the first call always sends); resolves once it was written. */
  flush(): Promise<void> {
    this.cancel();
    const next = this.chain.then(async () => {
      const job = await this.snapshot();
      if (!job || this.sse.closed) return;
      if (changeKey(job) !== this.sentKey) this.sent(job);
    });
    this.chain = next.catch(() => {});
    return next;
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

function openStream(reply: FastifyReply): SseStream {
  reply.hijack();
  reply.raw.setHeader('x-content-type-options', 'nosniff');
  return new SseStream(reply.raw);
}

/**
 * GET /console/api/feed?job=<id>: the job, then a `node` event (id: the job event's id) for each
 * job event after Last-Event-ID, coalesced `job` events as its state and counts change, and `end`
 * once the job has ended and everything was sent. 404 before the stream for an unknown job.
 */
export async function jobFeed(req: FastifyRequest, reply: FastifyReply, ctx: ConsoleFeedContext, id: string): Promise<void> {
  const { store } = ctx;
  const base = baseUrl(req);
  const snapshot = () => jobView(store, base, id);
  const first = /^[0-9]+$/.test(id) ? await snapshot() : null;
  if (!first) throw apiError(ApiErrorCode.unknownJob, `no job named ${id}`, { job: id });
  const last = lastEventId(req);
  const after = last !== null && /^[0-9]+$/.test(last) ? `0-${last}` : '0-0';

  const sse = openStream(reply);
  const jobs = new JobEvents(sse, snapshot);
  jobs.sent(first);

  const finish = async (): Promise<true> => {
    await jobs.flush();
    const state = await store.jobState(id);
    sse.send({ event: 'end', data: { job: id, state } });
    return true;
  };
  /** Sends the entries' node events; true once the job has ended (then `job` and `end` were sent). */
  const handle = async (entries: StreamEntry[]): Promise<boolean> => {
    const events = entries.map(([eid, fields]) => ({ id: eid.split('-')[1]!, e: JSON.parse(fields[1]!) as { type: string; details?: { node?: unknown } } }));
    const names = [...new Set(events.map((x) => x.e.details?.node).filter((n): n is string => typeof n === 'string'))];
    const records = new Map((await store.someNodes(id, names)).flatMap((r) => (r ? [[r.name, r] as const] : [])));
    let ended = false;
    for (const { id: eventId, e } of events) {
      const node = typeof e.details?.node === 'string' ? records.get(e.details.node) : undefined;
      if (node) sse.send({ event: 'node', id: eventId, data: nodeJson(node) });
      if (JOB_END_EVENTS.has(e.type)) ended = true;
    }
    if (ended) return finish();
    jobs.changed();
    return false;
  };

  if (ENDED_JOB_STATES.includes(first.state as JobState)) {
    // Ended: what came after Last-Event-ID, then the end; nothing to follow.
    try {
      for (let from = after; !sse.closed;) {
        const entries = (await ctx.redis.xrange(store.keys.events(id), `(${from}`, '+', 'COUNT', REPLAY_COUNT)) as StreamEntry[];
        if (entries.length === 0) {
          await finish();
          break;
        }
        from = entries.at(-1)![0];
        if (await handle(entries)) break;
      }
    } catch {
      // Redis failed or the client went: the feed ends (the client resumes with Last-Event-ID)
    } finally {
      jobs.cancel();
      sse.end();
    }
    return;
  }
  await followStream({
    redis: ctx.redis, sse, key: store.keys.events(id), after,
    onEntries: handle,
    // A job ends with its end event in the stream; this only guards a stream that lost it.
    onIdle: async () => {
      const state = await store.jobState(id);
      return state !== null && ENDED_JOB_STATES.includes(state) ? finish() : false;
    },
  });
  jobs.cancel();
}

/**
 * GET /console/api/feed: a `job` event (the job as the Puppet face shows it; id: the feed entry's,
 * opaque) for every job created or changing state, from now or after Last-Event-ID. Entries read
 * together that concern one job give one event, the latest.
 */
export async function globalFeed(req: FastifyRequest, reply: FastifyReply, ctx: ConsoleFeedContext): Promise<void> {
  const { store } = ctx;
  const base = baseUrl(req);
  const key = store.keys.jobFeed();
  const last = lastEventId(req);
  // Without Last-Event-ID: from the newest entry now, resolved once, so that nothing added between two reads is missed.
  const after = last !== null && /^[0-9]+-[0-9]+$/.test(last) ? last : await streamPosition(ctx.redis, key);
  const sse = openStream(reply);
  await followStream({
    redis: ctx.redis, sse, key, after,
    onEntries: async (entries) => {
      const latest = new Map<string, string>();
      for (const [eid, fields] of entries) {
        const job = streamField(fields, 'job');
        if (job === null) continue;
        latest.delete(job);
        latest.set(job, eid);
      }
      const jobs = await Promise.all([...latest.keys()].map((id) => jobView(store, base, id)));
      [...latest.values()].forEach((eid, i) => {
        const job = jobs[i];
        if (job) sse.send({ event: 'job', id: eid, data: job });
      });
      return false;
    },
  });
}
