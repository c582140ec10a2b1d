// Honest health, for every service: each dependency is probed on a timer with a bound, and /status
// and /metrics report the last answer, not whether a connection object exists. A Redis that is
// connected but stalled (SIGSTOP, a long fork) answers no PING within the bound, so it is down.
import type { Gauge } from 'prom-client';

/** The state vocabulary of the status service (`/status/v1/services`). */
export type ServiceState = 'running' | 'error';

export interface DependencyReport {
  state: ServiceState;
  /** The bound of one probe. */
  timeout_ms: number;
  /** How long the last finished probe took (its bound when it timed out); absent before the first. */
  latency_ms?: number;
  /** Milliseconds since the last probe finished; absent before the first. */
  checked_ms_ago?: number;
  /** Why the last probe failed: `timeout`, `unreachable`, `stale` (no probe finished lately) or `not-probed-yet`. */
  error?: string;
}

export interface StatusAlert {
  name: string;
  severity: 'error';
  message: string;
}

export interface ProbeOptions {
  name: string;
  /** Resolves when the dependency answered well; rejects (or never settles) otherwise. */
  probe: () => Promise<unknown>;
  intervalMs: number;
  timeoutMs: number;
  up: Gauge;
  seconds: Gauge;
}

/** One dependency, probed every `intervalMs`, each probe bounded by `timeoutMs`. */
export class DependencyProbe {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private ok = false;
  private error = 'not-probed-yet';
  private latencyMs: number | undefined;
  private checkedAt: number | undefined;

  constructor(private readonly o: ProbeOptions) {
    o.up.labels(o.name).set(0);
  }

  get name(): string {
    return this.o.name;
  }

  /** Starts probing; resolves once the first probe has an answer (within the bound). */
  start(): Promise<void> {
    this.timer ??= setInterval(() => void this.run(), this.o.intervalMs);
    this.timer.unref();
    return this.run();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The last answer; a probe that has not finished for longer than an interval plus its bound makes it stale. */
  report(now = performance.now()): DependencyReport {
    const base = { timeout_ms: this.o.timeoutMs, ...(this.latencyMs === undefined ? {} : { latency_ms: Math.round(this.latencyMs) }), ...(this.checkedAt === undefined ? {} : { checked_ms_ago: Math.round(now - this.checkedAt) }) };
    const stale = this.checkedAt !== undefined && now - this.checkedAt > this.o.intervalMs + this.o.timeoutMs + STALE_SLACK_MS;
    if (this.ok && !stale) return { state: 'running', ...base };
    return { state: 'error', ...base, error: stale ? 'stale' : this.error };
  }

  alert(now = performance.now()): StatusAlert | undefined {
    const r = this.report(now);
    if (r.state === 'running') return undefined;
    const why = r.error === 'timeout' ? `did not answer within ${this.o.timeoutMs} ms` : r.error === 'stale' ? 'has not been probed lately' : r.error === 'not-probed-yet' ? 'has not answered yet' : 'is unreachable';
    return { name: this.o.name, severity: 'error', message: `${this.o.name} ${why}` };
  }

  /**
   * A probe now (or the one under way), for a caller that must not report a stale failure: a
   * dependency back from a stall reads as up at once, one still down within the probe's bound.
   */
  refresh(): Promise<void> {
    return this.run();
  }

  private run(): Promise<void> {
    this.inFlight ??= this.probeOnce().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async probeOnce(): Promise<void> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.o.timeoutMs);
    });
    let outcome: 'ok' | 'timeout' | 'unreachable';
    try {
      outcome = await Promise.race([this.o.probe().then(() => 'ok' as const, () => 'unreachable' as const), bound]);
    } finally {
      clearTimeout(timer);
    }
    const now = performance.now();
    this.ok = outcome === 'ok';
    this.error = outcome;
    this.latencyMs = now - started;
    this.checkedAt = now;
    this.o.up.labels(this.o.name).set(this.ok ? 1 : 0);
    this.o.seconds.labels(this.o.name).set(this.latencyMs / 1000);
  }
}

/** Timer jitter and a busy event loop, beyond an interval and a bound, before a probe counts as stale. */
const STALE_SLACK_MS = 1_000;
