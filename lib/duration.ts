// Durations in configuration: `14d`, `12h`, `30m` or `45s`.
import { BatonError } from '../protocol/errors.ts';

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function durationMs(value: string, key: string): number {
  const m = /^(\d+)([smhd])$/.exec(value);
  if (!m) throw new BatonError('config/invalid', `config key '${key}' must be a duration such as 14d, 12h, 30m or 45s`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}
