// The Redis keys and BullMQ names of schedules, built in one place, under the orchestrator's key prefix.

export class ScheduleKeys {
  constructor(readonly prefix: string) {}

  /** STRING: the last schedule id given. */
  sequence(): string {
    return `${this.prefix}:schedule:sequence`;
  }
  /** ZSET of schedule ids scored by creation time. */
  index(): string {
    return `${this.prefix}:schedules`;
  }
  /** HASH: spec (JSON), last_run (JSON), last_error (JSON), runs (count). */
  schedule(id: string): string {
    return `${this.prefix}:schedule:${id}`;
  }
  /** The BullMQ queue of occurrences (every orchestrator runs a worker on it). */
  queueName(): string {
    return `${this.prefix}-schedules`;
  }
  /** The BullMQ job scheduler of a repeating schedule. */
  schedulerId(id: string): string {
    return `schedule-${id}`;
  }
  /** The BullMQ (delayed) job of a one-off schedule's occurrence, per revision of the schedule. */
  onceJobId(id: string, revision: number): string {
    return `once-${id}-${revision}`;
  }
}
