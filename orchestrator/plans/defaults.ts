// Defaults of plans, as data. Units are in the names.

/** Plan jobs one orchestrator runs at once. */
export const PLAN_WORKER_CONCURRENCY = 8;
/** How long an orchestrator holds a plan job it runs (renewed meanwhile); one that died holding it is taken over after about this. */
export const PLAN_LOCK_DURATION_MS = 5_000;
/**
 * A plan job whose run failed for want of Redis (the only failure its run throws; a step's own
 * failure is the step's) is tried again: this often, this many times (an hour of Redis outage).
 */
export const PLAN_RETRY_DELAY_MS = 2_000;
export const PLAN_ATTEMPTS = 1_800;
/** Sub-plans nest at most this deep. */
export const PLAN_NESTING_MAX = 10;
/** The largest script a script step sends. */
export const PLAN_SCRIPT_MAX_BYTES = 1024 * 1024;
/** One blocking read of the job feed lasts at most this long (then the states are read again). */
export const PLAN_FEED_BLOCK_MS = 2_000;
/** Beyond a step job's own node timeout (per batch), how long its end is waited for before the step fails. */
export const PLAN_STEP_WAIT_GRACE_MS = 120_000;
/** A step job's creation held by another (a crashed) orchestrator's reservation is waited for: this often, at most this long. */
export const PLAN_RESERVATION_POLL_MS = 1_000;
export const PLAN_RESERVATION_WAIT_MAX_MS = 90_000;
/** Events of a plan job shown at most per page. */
export const PLAN_EVENTS_PAGE_MAX = 1_000;
