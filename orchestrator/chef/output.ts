// Captured output of command jobs (Chef face), one value per node and channel in Redis. Output
// larger than `max-output-bytes` keeps its end, after a marker that says how much was dropped.
import type { Redis } from 'ioredis';
import type { Keys } from '../engine/keys.ts';

export const OUTPUT_CHANNELS = ['stdout', 'stderr'] as const;
export type OutputChannel = (typeof OUTPUT_CHANNELS)[number];

/** The end of `text` within `maxBytes`, after a marker naming what was dropped. Pure. */
export function keepEnd(text: string, maxBytes: number): Buffer {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return buf;
  const marker = (dropped: number) => `[baton: output truncated: the first ${dropped} of ${buf.length} bytes were dropped]\n`;
  let keep = maxBytes - Buffer.byteLength(marker(buf.length));
  keep = Math.max(0, maxBytes - Buffer.byteLength(marker(buf.length - keep)));
  return Buffer.concat([Buffer.from(marker(buf.length - keep)), buf.subarray(buf.length - keep)]);
}

export class OutputStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly maxBytes: number,
  ) {}

  /** Both channels at once: for a node either both are there or neither. */
  async save(jobId: string, node: string, stdout: string, stderr: string): Promise<void> {
    const m = this.redis.multi();
    m.set(this.keys.output(jobId, node, 'stdout'), keepEnd(stdout, this.maxBytes));
    m.set(this.keys.output(jobId, node, 'stderr'), keepEnd(stderr, this.maxBytes));
    await m.exec();
  }

  get(jobId: string, node: string, channel: OutputChannel): Promise<Buffer | null> {
    return this.redis.getBuffer(this.keys.output(jobId, node, channel));
  }
}
