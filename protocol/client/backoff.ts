// Reconnection delays: exponential from `initialMs`, capped at `maxMs`, with full jitter so that a
// fleet that lost its broker does not come back in lockstep; a broker that is up but sheds load
// ("busy", optionally with a Retry-After) is retried soon, without growing the delay. Pure.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Fraction of the delay that is randomised: 1 (full jitter) gives delays in [0, d], 0.5 in [d/2, d]. */
  jitter: number;
}

/** The first retry comes within this long (full jitter: anywhere in [0, 1 s]). */
export const DEFAULT_RECONNECT_INITIAL_MS = 1_000;
export const DEFAULT_RECONNECT_MAX_MS = 30_000;
export const DEFAULT_RECONNECT_JITTER = 1;
/**
 * A broker that shed the attempt without saying when to come back: the next attempt comes after
 * a full-jitter delay over a window that doubles from this, up to `BUSY_RETRY_MAX_MS` (the broker
 * is up; only its handshake capacity is short, so waits stay short).
 */
export const BUSY_RETRY_INITIAL_MS = 1_000;
export const BUSY_RETRY_MAX_MS = 8_000;

/** Delay before reconnection attempt `attempt` (0-based). `random` is injectable for tests. */
export function backoffDelayMs(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(base * (1 - opts.jitter * random()));
}

/** What became of the last connection (attempt). */
export type ConnectOutcome =
  /** A session was established and has now ended. */
  | { kind: 'lost' }
  /** A session was established and then replaced by a newer one for the same identity. */
  | { kind: 'replaced' }
  /** No session: refused, timed out, TLS or HTTP failure. The broker may be down. */
  | { kind: 'failed' }
  /** The broker is up but shed the attempt (a retryable refusal), maybe saying when to come back. */
  | { kind: 'busy'; retryAfterMs?: number; heldMs?: number };

/**
 * The round's outcome after one more broker answered "busy": any busy broker makes the round
 * busy (come back soon, not later and later), at the soonest time any said, held the longest.
 */
export function withBusy(round: ConnectOutcome, saidRetryAfterMs: number | undefined, heldMs: number | undefined): ConnectOutcome {
  const before = round.kind === 'busy' ? round.retryAfterMs : undefined;
  const soonest = saidRetryAfterMs === undefined ? before : before === undefined ? saidRetryAfterMs : Math.min(saidRetryAfterMs, before);
  const held = Math.max(heldMs ?? 0, round.kind === 'busy' ? (round.heldMs ?? 0) : 0);
  return { kind: 'busy', ...(soonest === undefined ? {} : { retryAfterMs: soonest }), ...(held > 0 ? { heldMs: held } : {}) };
}

/** Where the reconnection loop stands: failed attempts in a row, and busy refusals in a row. */
export interface BackoffState {
  failures: number;
  busy: number;
}

export const INITIAL_BACKOFF_STATE: BackoffState = { failures: 0, busy: 0 };

/**
 * The pause before the next attempt, and the state after it. A lost session starts over from the
 * initial delay; failures double it up to the cap; a busy refusal resets the failure count (the
 * broker is alive) and waits a short jittered while (a window doubling from 1 s to 8 s, or the
 * time the broker held the connection before refusing it, if longer), or the broker's
 * Retry-After (capped at the max delay) stretched by up to `jitter` times itself so that the
 * refused do not return together.
 */
export function nextReconnect(
  state: BackoffState,
  outcome: ConnectOutcome,
  opts: BackoffOptions,
  random: () => number = Math.random,
): { state: BackoffState; delayMs: number } {
  switch (outcome.kind) {
    case 'lost':
      return { state: { failures: 1, busy: 0 }, delayMs: backoffDelayMs(0, opts, random) };
    case 'failed':
    case 'replaced':
      return { state: { failures: state.failures + 1, busy: 0 }, delayMs: backoffDelayMs(state.failures, opts, random) };
    case 'busy': {
      const next = { failures: 0, busy: state.busy + 1 };
      if (outcome.retryAfterMs !== undefined && outcome.retryAfterMs >= 0) {
        const after = Math.min(outcome.retryAfterMs, opts.maxMs);
        return { state: next, delayMs: Math.round(Math.min(opts.maxMs, after * (1 + opts.jitter * random()))) };
      }
      // A broker that held us in its queue for a while before refusing has at least that much
      // work queued: spread the retry over as long (full jitter), not over a fixed short window.
      const held = Math.min(Math.max(outcome.heldMs ?? 0, 0), opts.maxMs);
      const busyMaxMs = Math.min(Math.max(BUSY_RETRY_MAX_MS, held), opts.maxMs);
      const busyOpts = { initialMs: Math.min(Math.max(BUSY_RETRY_INITIAL_MS, held), opts.maxMs), maxMs: busyMaxMs, jitter: opts.jitter };
      return { state: next, delayMs: backoffDelayMs(state.busy, busyOpts, random) };
    }
  }
}

/** A Retry-After header value (seconds, or an HTTP date) in milliseconds from `nowMs`; undefined when absent or unreadable. */
export function parseRetryAfterMs(value: string | string[] | undefined, nowMs: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const text = v.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/^[A-Za-z]{3}, /.test(text)) return undefined; // an IMF-fixdate: "Thu, 01 Jan 2026 00:00:05 GMT"
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
