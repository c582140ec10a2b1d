import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  backoffDelayMs,
  BUSY_RETRY_INITIAL_MS,
  BUSY_RETRY_MAX_MS,
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_JITTER,
  DEFAULT_RECONNECT_MAX_MS,
  INITIAL_BACKOFF_STATE,
  nextReconnect,
  parseRetryAfterMs,
  type BackoffState,
  type ConnectOutcome,
  withBusy,
} from '../../protocol/client/backoff.ts';

const defaults = { initialMs: DEFAULT_RECONNECT_INITIAL_MS, maxMs: DEFAULT_RECONNECT_MAX_MS, jitter: DEFAULT_RECONNECT_JITTER };
/** random() = 0 gives the top of the window (1 - jitter * 0), random() → 1 its bottom. */
const top = () => 0;
const bottom = () => 0.999999;

describe('reconnection backoff defaults', () => {
  it('retries a lost broker within 1 s, with full jitter', () => {
    assert.equal(DEFAULT_RECONNECT_INITIAL_MS, 1_000);
    assert.equal(DEFAULT_RECONNECT_JITTER, 1);
    const { delayMs } = nextReconnect(INITIAL_BACKOFF_STATE, { kind: 'lost' }, defaults, top);
    assert.equal(delayMs, 1_000);
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, { kind: 'lost' }, defaults, bottom).delayMs, 0);
  });

  it('spreads a fleet over the whole window instead of its upper half', () => {
    const delays = Array.from({ length: 2_000 }, () => backoffDelayMs(3, defaults));
    const min = Math.min(...delays);
    const max = Math.max(...delays);
    assert.ok(min >= 0 && min < 400, `min ${min}`);
    assert.ok(max <= 8_000 && max > 7_600, `max ${max}`);
    const lowerHalf = delays.filter((d) => d < 4_000).length;
    assert.ok(lowerHalf > 800 && lowerHalf < 1_200, `about half below the middle: ${lowerHalf}`);
  });
});

describe('nextReconnect', () => {
  const run = (outcomes: ConnectOutcome[], random = top) => {
    let state: BackoffState = INITIAL_BACKOFF_STATE;
    const delays: number[] = [];
    for (const o of outcomes) {
      const next = nextReconnect(state, o, defaults, random);
      state = next.state;
      delays.push(next.delayMs);
    }
    return { state, delays };
  };

  it('doubles the window on every failure, up to the configured cap', () => {
    const failed: ConnectOutcome = { kind: 'failed' };
    const { delays } = run([{ kind: 'lost' }, failed, failed, failed, failed, failed, failed, failed]);
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('honours a configured cap below the default', () => {
    const opts = { initialMs: 100, maxMs: 1_000, jitter: 1 };
    let state = INITIAL_BACKOFF_STATE;
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const next = nextReconnect(state, { kind: 'failed' }, opts, top);
      state = next.state;
      delays.push(next.delayMs);
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000]);
  });

  it('starts over from the initial delay once a session was established and lost', () => {
    const failed: ConnectOutcome = { kind: 'failed' };
    const { delays } = run([failed, failed, failed, failed, { kind: 'lost' }, failed]);
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 1_000, 2_000]);
  });

  it('backs off more and more when its session keeps being replaced (two clients share one certificate)', () => {
    const replaced: ConnectOutcome = { kind: 'replaced' };
    const { delays } = run([{ kind: 'lost' }, replaced, replaced, replaced, replaced, replaced, replaced]);
    assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  });

  it('treats a busy refusal as "retry soon": failures reset, short windows that stop growing at the busy cap', () => {
    const failed: ConnectOutcome = { kind: 'failed' };
    const busy: ConnectOutcome = { kind: 'busy' };
    const { delays, state } = run([failed, failed, failed, failed, failed, busy, busy, busy, busy, busy, busy]);
    assert.deepEqual(delays.slice(5), [BUSY_RETRY_INITIAL_MS, 2_000, 4_000, BUSY_RETRY_MAX_MS, BUSY_RETRY_MAX_MS, BUSY_RETRY_MAX_MS]);
    assert.equal(state.failures, 0, 'the broker is alive: the next failure starts small');
    const after = nextReconnect(state, failed, defaults, top);
    assert.equal(after.delayMs, 1_000);
  });

  it('spreads the retry over as long as the broker held the connection in its queue before refusing it', () => {
    const held = (heldMs: number): ConnectOutcome => ({ kind: 'busy', heldMs });
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, held(15_000), defaults, top).delayMs, 15_000);
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, held(15_000), defaults, bottom).delayMs, 0);
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, held(200), defaults, top).delayMs, BUSY_RETRY_INITIAL_MS, 'a quick refusal: the usual short window');
    assert.equal(nextReconnect({ failures: 0, busy: 5 }, held(120_000), defaults, top).delayMs, DEFAULT_RECONNECT_MAX_MS);
  });

  it('never waits longer than the configured cap after a busy refusal', () => {
    const opts = { initialMs: 50, maxMs: 500, jitter: 1 };
    let state = INITIAL_BACKOFF_STATE;
    for (let i = 0; i < 10; i++) {
      const next = nextReconnect(state, { kind: 'busy' }, opts, top);
      assert.ok(next.delayMs <= 500, `${next.delayMs}`);
      state = next.state;
    }
    assert.ok(nextReconnect(state, { kind: 'busy', retryAfterMs: 60_000 }, opts, bottom).delayMs <= 500);
    assert.ok(nextReconnect(state, { kind: 'busy', heldMs: 60_000 }, opts, top).delayMs <= 500);
  });

  it("waits at least the broker's Retry-After, spread over up to twice it, capped at the max delay", () => {
    const busy = (retryAfterMs: number): ConnectOutcome => ({ kind: 'busy', retryAfterMs });
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, busy(3_000), defaults, top).delayMs, 3_000);
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, busy(3_000), defaults, bottom).delayMs, 6_000);
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, busy(120_000), defaults, top).delayMs, DEFAULT_RECONNECT_MAX_MS);
    assert.equal(nextReconnect(INITIAL_BACKOFF_STATE, busy(0), defaults, bottom).delayMs, 0);
    const { state } = nextReconnect({ failures: 7, busy: 0 }, busy(1_000), defaults, top);
    assert.deepEqual(state, { failures: 0, busy: 1 });
  });
});

describe('parseRetryAfterMs', () => {
  it('reads seconds and HTTP dates, and ignores what it cannot read', () => {
    assert.equal(parseRetryAfterMs('3'), 3_000);
    assert.equal(parseRetryAfterMs(' 0.5 '), 500);
    assert.equal(parseRetryAfterMs(['2', '9']), 2_000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now), 5_000);
    assert.equal(parseRetryAfterMs('Wed, 31 Dec 2025 23:59:00 GMT', now), 0);
    assert.equal(parseRetryAfterMs(undefined), undefined);
    assert.equal(parseRetryAfterMs('soon'), undefined);
    assert.equal(parseRetryAfterMs('-1'), undefined);
  });
});

describe('withBusy', () => {
  it('makes the round busy at the soonest time any broker said, held the longest', () => {
    assert.deepEqual(withBusy({ kind: 'failed' }, undefined, undefined), { kind: 'busy' });
    assert.deepEqual(withBusy({ kind: 'failed' }, 2_000, 0), { kind: 'busy', retryAfterMs: 2_000 });
    assert.deepEqual(withBusy({ kind: 'busy', retryAfterMs: 2_000, heldMs: 500 }, 5_000, 100), { kind: 'busy', retryAfterMs: 2_000, heldMs: 500 });
    assert.deepEqual(withBusy({ kind: 'busy', retryAfterMs: 2_000 }, 1_000, 3_000), { kind: 'busy', retryAfterMs: 1_000, heldMs: 3_000 });
    assert.deepEqual(withBusy({ kind: 'busy', heldMs: 700 }, undefined, undefined), { kind: 'busy', heldMs: 700 });
  });
});
