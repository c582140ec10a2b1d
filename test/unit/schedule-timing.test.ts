// Schedule timing and the CLI's schedule flags: pure decisions from the request and `now`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAt, parseDuration, schedulingOf } from '../../cli/commands/schedule.ts';
import { CliError } from '../../cli/errors.ts';
import { SCHEDULE_LATE_AFTER_MS } from '../../orchestrator/schedules/defaults.ts';
import { dueOfSchedulerJob, firstOccurrenceMs, isKnownTimezone, isLate, ScheduleError, ScheduleErrorCode, timingOf } from '../../orchestrator/schedules/timing.ts';

const NOW = Date.parse('2030-06-01T12:00:00Z');

function refusedWith(code: string, fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof ScheduleError && err.code === code);
}

describe('schedule timing', () => {
  it('a scheduled_time alone is a one-off at that time', () => {
    assert.deepEqual(timingOf('2030-06-01T13:00:00Z', null, NOW), { kind: 'once', at_ms: Date.parse('2030-06-01T13:00:00Z') });
    assert.deepEqual(timingOf('2030-06-01T15:00:00+02:00', undefined, NOW), { kind: 'once', at_ms: Date.parse('2030-06-01T13:00:00Z') });
  });

  it('a one-off needs a time, in ISO 8601, in the future', () => {
    refusedWith(ScheduleErrorCode.invalidTime, () => timingOf(undefined, null, NOW));
    refusedWith(ScheduleErrorCode.invalidTime, () => timingOf('tomorrow', null, NOW));
    refusedWith(ScheduleErrorCode.invalidTime, () => timingOf('2030-13-45T99:00:00Z', null, NOW));
    refusedWith(ScheduleErrorCode.timeInPast, () => timingOf('2030-06-01T11:59:59Z', null, NOW));
    refusedWith(ScheduleErrorCode.timeInPast, () => timingOf(new Date(NOW).toISOString(), null, NOW));
  });

  it('an interval repeats from scheduled_time, or from one interval after now', () => {
    assert.deepEqual(timingOf(undefined, { interval: { units: 'seconds', value: 90 } }, NOW), { kind: 'every', every_ms: 90_000, start_ms: NOW + 90_000 });
    assert.deepEqual(timingOf('2030-06-02T00:00:00Z', { interval: { units: 'hours', value: 2 } }, NOW), { kind: 'every', every_ms: 7_200_000, start_ms: Date.parse('2030-06-02T00:00:00Z') });
    assert.equal((timingOf(undefined, { interval: { units: 'days', value: 1 } }, NOW) as { every_ms: number }).every_ms, 86_400_000);
  });

  it('a cron expression is checked by the parser BullMQ uses, in a time zone Intl knows', () => {
    const t = timingOf(undefined, { cron: '0 3 * * *', timezone: 'Europe/Berlin' }, NOW);
    assert.deepEqual(t, { kind: 'cron', cron: '0 3 * * *', timezone: 'Europe/Berlin', start_ms: null });
    // 03:00 in Berlin in June (CEST, UTC+2) is 01:00 UTC, the next day.
    assert.equal(firstOccurrenceMs(t, NOW), Date.parse('2030-06-02T01:00:00Z'));
    assert.equal((timingOf(undefined, { cron: '*/5 * * * *' }, NOW) as { timezone: string }).timezone, 'UTC');
    refusedWith(ScheduleErrorCode.invalidCron, () => timingOf(undefined, { cron: '61 3 * * *' }, NOW));
    refusedWith(ScheduleErrorCode.invalidCron, () => timingOf(undefined, { cron: 'every day' }, NOW));
    refusedWith(ScheduleErrorCode.unknownTimezone, () => timingOf(undefined, { cron: '0 3 * * *', timezone: 'Mars/Olympus_Mons' }, NOW));
  });

  it('interval and cron do not go together; a time zone goes with cron', () => {
    refusedWith(ScheduleErrorCode.invalidOptions, () => timingOf(undefined, { interval: { units: 'seconds', value: 5 }, cron: '* * * * *' }, NOW));
    refusedWith(ScheduleErrorCode.invalidOptions, () => timingOf('2030-06-02T00:00:00Z', { timezone: 'UTC' }, NOW));
  });

  it('knows time zones by their IANA names', () => {
    assert.equal(isKnownTimezone('Europe/Berlin'), true);
    assert.equal(isKnownTimezone('UTC'), true);
    assert.equal(isKnownTimezone('Europe/Atlantis'), false);
  });

  it('an occurrence is late when it starts more than SCHEDULE_LATE_AFTER_MS after its time', () => {
    assert.equal(isLate(NOW, NOW + SCHEDULE_LATE_AFTER_MS), false);
    assert.equal(isLate(NOW, NOW + SCHEDULE_LATE_AFTER_MS + 1), true);
    assert.equal(isLate(NOW, NOW + 50), false);
  });

  it('reads the due time of a job scheduler job from its id', () => {
    assert.equal(dueOfSchedulerJob('repeat:schedule-12:1780315200000'), 1780315200000);
    assert.equal(dueOfSchedulerJob('once-12-1'), null);
    assert.equal(dueOfSchedulerJob(undefined), null);
  });
});

describe('baton schedule flags', () => {
  const usage = (fn: () => unknown) => assert.throws(fn, (err: unknown) => err instanceof CliError);

  it('durations take s, m, h, d (seconds when bare)', () => {
    assert.deepEqual(parseDuration('--every', '30s'), { units: 'seconds', value: 30 });
    assert.deepEqual(parseDuration('--every', '5m'), { units: 'minutes', value: 5 });
    assert.deepEqual(parseDuration('--every', '2h'), { units: 'hours', value: 2 });
    assert.deepEqual(parseDuration('--every', '1d'), { units: 'days', value: 1 });
    assert.deepEqual(parseDuration('--every', '45'), { units: 'seconds', value: 45 });
    usage(() => parseDuration('--every', '0s'));
    usage(() => parseDuration('--every', '1.5h'));
    usage(() => parseDuration('--every', 'often'));
  });

  it('--at is an ISO time or +DURATION from now', () => {
    assert.equal(parseAt('+10m', NOW), '2030-06-01T12:10:00.000Z');
    assert.equal(parseAt('2030-07-01T03:00:00+02:00', NOW), '2030-07-01T01:00:00.000Z');
    usage(() => parseAt('next tuesday', NOW));
  });

  it('turns --at, --every, --cron and --timezone into the body keys', () => {
    assert.deepEqual(schedulingOf({ at: '+1h' }, NOW), { scheduled_time: '2030-06-01T13:00:00.000Z' });
    assert.deepEqual(schedulingOf({ every: '2h' }, NOW), { schedule_options: { interval: { units: 'hours', value: 2 } } });
    assert.deepEqual(schedulingOf({ cron: '0 3 * * *', timezone: 'Europe/Berlin' }, NOW), { schedule_options: { cron: '0 3 * * *', timezone: 'Europe/Berlin' } });
    assert.deepEqual(schedulingOf({ at: '+1m', every: '30s' }, NOW), { scheduled_time: '2030-06-01T12:01:00.000Z', schedule_options: { interval: { units: 'seconds', value: 30 } } });
    usage(() => schedulingOf({}, NOW));
    usage(() => schedulingOf({ every: '1m', cron: '* * * * *' }, NOW));
    usage(() => schedulingOf({ at: '+1m', timezone: 'UTC' }, NOW));
  });
});
