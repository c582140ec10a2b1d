// Reconnection delays: exponential from `initialMs`, capped at `maxMs`, with jitter so that a
// fleet that lost its broker does not come back in lockstep. Pure.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Fraction of the delay that is randomised: 0.5 gives delays in [d/2, d]. */
  jitter: number;
}

export const DEFAULT_RECONNECT_INITIAL_MS = 2_000;
export const DEFAULT_RECONNECT_MAX_MS = 30_000;
export const DEFAULT_RECONNECT_JITTER = 0.5;

/** Delay before reconnection attempt `attempt` (0-based). `random` is injectable for tests. */
export function backoffDelayMs(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - opts.jitter * random()));
}
