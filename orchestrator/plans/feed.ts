// One reader per orchestrator follows the engine's job feed and the plan job feed (Redis streams,
// written by whichever orchestrator changed a state) and wakes the plan runners waiting on a job or
// a plan job: waits are events, each bounded, never polling loops.
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import { streamField, streamPosition } from '../../lib/redis-stream.ts';
import { PLAN_FEED_BLOCK_MS } from './defaults.ts';

/** Entries read at once. */
const FEED_READ_COUNT = 500;
/** After a failed read (Redis away), the next one waits this long. */
const FEED_RETRY_MS = 1_000;

export interface Wake {
  promise: Promise<void>;
  cancel(): void;
}

export class FeedFollower {
  private readonly waiters = new Map<string, Set<() => void>>();
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly jobFeedKey: string,
    private readonly planFeedKey: string,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.follow();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.redis.disconnect();
    await this.loop?.catch(() => undefined);
    for (const set of this.waiters.values()) for (const w of set) w();
    this.waiters.clear();
  }

  /** Resolves on the next change of engine job `jobId` or plan job `planJobId`, or after `boundMs`. */
  wait(ids: { job?: string; plan?: string }, boundMs: number): Wake {
    const keys = [...(ids.job ? [`job:${ids.job}`] : []), ...(ids.plan ? [`plan:${ids.plan}`] : [])];
    let timer: NodeJS.Timeout | undefined;
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => {
      wake = () => {
        clearTimeout(timer);
        for (const k of keys) this.waiters.get(k)?.delete(wake);
        resolve();
      };
      timer = setTimeout(wake, boundMs);
      for (const k of keys) {
        let set = this.waiters.get(k);
        if (!set) this.waiters.set(k, (set = new Set()));
        set.add(wake);
      }
    });
    return { promise, cancel: wake };
  }

  private notify(key: string): void {
    const set = this.waiters.get(key);
    if (!set) return;
    for (const w of [...set]) w();
  }

  private async follow(): Promise<void> {
    let ids: [string, string] | null = null;
    while (this.running) {
      try {
        ids ??= [await streamPosition(this.redis, this.jobFeedKey), await streamPosition(this.redis, this.planFeedKey)];
        const res = (await this.redis.xread('COUNT', FEED_READ_COUNT, 'BLOCK', PLAN_FEED_BLOCK_MS, 'STREAMS', this.jobFeedKey, this.planFeedKey, ids[0], ids[1])) as [string, [string, string[]][]][] | null;
        for (const [key, entries] of res ?? []) {
          const isJobs = key === this.jobFeedKey;
          for (const [id, fields] of entries) {
            if (isJobs) ids[0] = id;
            else ids[1] = id;
            const changed = streamField(fields, isJobs ? 'job' : 'plan_job');
            if (changed) this.notify(`${isJobs ? 'job' : 'plan'}:${changed}`);
          }
        }
      } catch (err) {
        if (!this.running) return;
        this.log.debug({ err: (err as Error).message }, 'plan feed read failed; reading again');
        await new Promise((r) => setTimeout(r, FEED_RETRY_MS));
      }
    }
  }
}
