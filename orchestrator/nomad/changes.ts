// Changes to the Nomad face's state, across every orchestrator on the same Redis: each change is
// an entry in one Redis stream (`NomadStore.notify`), and one reader per orchestrator follows it
// with XREAD BLOCK and tells local waiters (blocking queries). A change made through any
// orchestrator therefore wakes the blocking queries of all of them.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';

/** How long one XREAD waits before it asks again (and how soon a stop is noticed). */
export const CHANGES_BLOCK_MS = 5_000;
/** After a failed read (Redis away), the wait before the next try. */
export const CHANGES_RETRY_MS = 1_000;

export class NomadChanges extends EventEmitter<{ changed: [index: number] }> {
  private stopped = false;
  private loop: Promise<void> | null = null;

  /** `reader` is a connection of its own, without a command timeout shorter than CHANGES_BLOCK_MS. */
  constructor(
    private readonly reader: Redis,
    private readonly key: string,
  ) {
    super();
    this.setMaxListeners(0); // one listener per waiting blocking query
  }

  start(): void {
    this.loop ??= this.follow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.reader.disconnect();
    await this.loop;
  }

  private async follow(): Promise<void> {
    let last = '$';
    while (!this.stopped) {
      try {
        const res = await this.reader.xread('BLOCK', CHANGES_BLOCK_MS, 'STREAMS', this.key, last);
        for (const [id, fields] of res?.[0]?.[1] ?? []) {
          last = id;
          const index = Number(fields[1]);
          if (Number.isFinite(index)) this.emit('changed', index);
        }
      } catch {
        if (this.stopped) return;
        // Redis away or stalled: the blocking queries end by their own wait meanwhile.
        await new Promise((r) => setTimeout(r, CHANGES_RETRY_MS).unref());
      }
    }
  }
}
