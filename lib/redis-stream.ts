// Small reads of Redis streams shared by their followers (the console's feeds, the plan runners'
// wake-ups): where a stream ends now, and a field of an entry.
import type { Redis } from 'ioredis';

/** The id of a stream's newest entry ('0-0' while it has none): reading after it gives every later entry. */
export async function streamPosition(redis: Redis, key: string): Promise<string> {
  return (await redis.xrevrange(key, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
}

/** A field's value in a stream entry's fields as XREAD gives them ([name, value, ...]), or null. */
export function streamField(fields: readonly string[], name: string): string | null {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]!;
  return null;
}
