// When a schedule fires: a one-off at `scheduled_time`, repeating by `schedule_options.interval`
// (Puppet Enterprise's), or by `schedule_options.cron` in a time zone (Baton's extension). Pure:
// decisions from the request and `now`; the cron expression is checked by the parser BullMQ's
// job schedulers use (cron-parser, through BullMQ's own getNextMillis), the time zone by Intl.
import { getNextMillis } from 'bullmq';
import { BatonError } from '../../protocol/errors.ts';
import { DEFAULT_SCHEDULE_TIMEZONE, SCHEDULE_LATE_AFTER_MS } from './defaults.ts';

export const ScheduleErrorCode = {
  /** scheduled_time is missing (a one-off needs it) or not an ISO 8601 time. */
  invalidTime: 'invalid-time',
  /** scheduled_time has passed. */
  timeInPast: 'time-in-past',
  /** The cron expression does not parse, or never matches. */
  invalidCron: 'invalid-cron',
  /** The time zone is not one Intl knows (IANA names such as Europe/Berlin). */
  unknownTimezone: 'unknown-timezone',
  /** schedule_options combine what does not go together (interval and cron; a time zone without cron). */
  invalidOptions: 'invalid-schedule-options',
} as const;
export type ScheduleErrorCode = (typeof ScheduleErrorCode)[keyof typeof ScheduleErrorCode];

export class ScheduleError extends BatonError {
  declare readonly code: ScheduleErrorCode;
  constructor(code: ScheduleErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { details });
  }
}

export type IntervalUnits = 'seconds' | 'minutes' | 'hours' | 'days';
export interface ScheduleOptions {
  interval?: { units: IntervalUnits; value: number };
  cron?: string;
  timezone?: string;
}

export type Timing =
  | { kind: 'once'; at_ms: number }
  | { kind: 'every'; every_ms: number; start_ms: number }
  | { kind: 'cron'; cron: string; timezone: string; start_ms: number | null };

const UNIT_MS: Record<IntervalUnits, number> = { seconds: 1_000, minutes: 60_000, hours: 3_600_000, days: 86_400_000 };

export function intervalMs(i: { units: IntervalUnits; value: number }): number {
  return i.value * UNIT_MS[i.units];
}

/** An ISO 8601 date and time (with a zone, or UTC when it has none) as ms; null when it is not one. */
export function parseTime(text: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(text)) return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

/** Whether Intl knows the time zone (an IANA name such as Europe/Berlin, or UTC). */
export function isKnownTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The next time (ms) at or after `fromMs` that the cron expression matches in `tz`, as BullMQ computes it; throws ScheduleError. */
export function nextCronMs(cron: string, tz: string, fromMs: number): number {
  let next: number | undefined;
  try {
    next = getNextMillis(fromMs, { pattern: cron, tz });
  } catch (err) {
    throw new ScheduleError(ScheduleErrorCode.invalidCron, `schedule_options.cron '${cron}' is not a valid cron expression: ${(err as Error).message}`, { cron });
  }
  if (next === undefined || !Number.isFinite(next)) throw new ScheduleError(ScheduleErrorCode.invalidCron, `schedule_options.cron '${cron}' never matches a time`, { cron });
  return next;
}

/** The timing a schedule request asks for, checked against `nowMs`; throws ScheduleError naming what is wrong. */
export function timingOf(scheduledTime: string | null | undefined, options: ScheduleOptions | null | undefined, nowMs: number): Timing {
  const o = options ?? {};
  let start: number | null = null;
  if (scheduledTime !== undefined && scheduledTime !== null) {
    start = parseTime(scheduledTime);
    if (start === null) throw new ScheduleError(ScheduleErrorCode.invalidTime, `scheduled_time '${scheduledTime}' is not an ISO 8601 time (e.g. 2030-01-31T03:00:00Z)`, { scheduled_time: scheduledTime });
    if (start <= nowMs) throw new ScheduleError(ScheduleErrorCode.timeInPast, `scheduled_time ${scheduledTime} has passed; give a time in the future`, { scheduled_time: scheduledTime, now: new Date(nowMs).toISOString() });
  }
  if (o.interval && o.cron !== undefined) throw new ScheduleError(ScheduleErrorCode.invalidOptions, 'schedule_options: give either interval or cron, not both');
  if (o.timezone !== undefined && o.cron === undefined) throw new ScheduleError(ScheduleErrorCode.invalidOptions, 'schedule_options.timezone goes with schedule_options.cron');
  if (o.cron !== undefined) {
    const tz = o.timezone ?? DEFAULT_SCHEDULE_TIMEZONE;
    if (!isKnownTimezone(tz)) throw new ScheduleError(ScheduleErrorCode.unknownTimezone, `schedule_options.timezone '${tz}' is not a known time zone (IANA names such as Europe/Berlin, or UTC)`, { timezone: tz });
    nextCronMs(o.cron, tz, start ?? nowMs);
    return { kind: 'cron', cron: o.cron, timezone: tz, start_ms: start };
  }
  if (o.interval) {
    const every = intervalMs(o.interval);
    return { kind: 'every', every_ms: every, start_ms: start ?? nowMs + every };
  }
  if (start === null) throw new ScheduleError(ScheduleErrorCode.invalidTime, 'scheduled_time is required for a schedule without schedule_options.interval or schedule_options.cron', {});
  return { kind: 'once', at_ms: start };
}

/** Whether an occurrence due at `dueMs` that starts at `nowMs` ran late (every orchestrator was down, or too busy, at its time). */
export function isLate(dueMs: number, nowMs: number, lateAfterMs = SCHEDULE_LATE_AFTER_MS): boolean {
  return nowMs - dueMs > lateAfterMs;
}

/** The due time of an occurrence a BullMQ job scheduler made: its job id is `repeat:<scheduler id>:<ms>`. */
export function dueOfSchedulerJob(jobId: string | undefined): number | null {
  const m = jobId ? /^repeat:.+:(\d+)$/.exec(jobId) : null;
  return m ? Number(m[1]) : null;
}

/** The first occurrence of a timing from `nowMs` on, when it can be computed without BullMQ (null when none is left). */
export function firstOccurrenceMs(t: Timing, nowMs: number): number | null {
  switch (t.kind) {
    case 'once': return t.at_ms;
    case 'every': return t.start_ms;
    case 'cron': return nextCronMs(t.cron, t.timezone, Math.max(nowMs, t.start_ms ?? nowMs));
  }
}
