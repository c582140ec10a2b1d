// Defaults of schedules, as data. Units are in the names.

/** An occurrence that starts more than this after its time ran late (every orchestrator was down, or busy, then): its job says `late: true`. */
export const SCHEDULE_LATE_AFTER_MS = 5_000;
/** The time zone of a cron schedule that names none. */
export const DEFAULT_SCHEDULE_TIMEZONE = 'UTC';
/** Occurrences one orchestrator starts at once. */
export const SCHEDULE_WORKER_CONCURRENCY = 4;
/** An occurrence whose start failed for want of Redis is tried again: this often, this many times. */
export const SCHEDULE_START_RETRY_DELAY_MS = 2_000;
export const SCHEDULE_START_ATTEMPTS = 60;
/** How long an orchestrator holds an occurrence it is starting; one that died holding it is taken up by another after about this. */
export const SCHEDULE_LOCK_DURATION_MS = 15_000;
/** Failed BullMQ occurrence jobs kept for inspection. */
export const SCHEDULE_FAILED_KEPT = 100;
