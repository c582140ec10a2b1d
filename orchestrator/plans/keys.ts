// The Redis keys and BullMQ names of plan jobs, built in one place, under the orchestrator's key prefix.

export class PlanKeys {
  constructor(readonly prefix: string) {}

  /** STRING: the last plan job id given. */
  sequence(): string {
    return `${this.prefix}:plan_job:sequence`;
  }
  /** ZSET of plan job ids scored by creation time. */
  index(): string {
    return `${this.prefix}:plan_jobs`;
  }
  /** SET of plan jobs created and maybe not queued yet (their creator may have died between the two). */
  unqueued(): string {
    return `${this.prefix}:plan_jobs:unqueued`;
  }
  /** HASH: the plan job's record (state, plan_name, environment, params, owner, plan, result, timestamps). */
  planJob(id: string): string {
    return `${this.prefix}:plan_job:${id}`;
  }
  /** HASH step path ("1", "3.2") → step record (JSON). */
  steps(id: string): string {
    return `${this.prefix}:plan_job:${id}:steps`;
  }
  /** HASH "<step path>#<batch>" → the engine job of that batch. */
  stepJobs(id: string): string {
    return `${this.prefix}:plan_job:${id}:jobs`;
  }
  /** STREAM of the plan job's events; entry ids 0-N, N the API's event id. */
  events(id: string): string {
    return `${this.prefix}:plan_job:${id}:events`;
  }
  /** LIST of state changes (JSON {state, enter_time}). */
  history(id: string): string {
    return `${this.prefix}:plan_job:${id}:history`;
  }
  /** STREAM of every plan job's state changes (fields plan_job, state): wakes runners on a stop. */
  feed(): string {
    return `${this.prefix}:plan_jobs:feed`;
  }
  /** The BullMQ queue of plan jobs (every orchestrator runs a worker on it). */
  queueName(): string {
    return `${this.prefix}-plan-jobs`;
  }
  /** The BullMQ job of a plan job. */
  queueJobId(id: string): string {
    return `plan-job-${id}`;
  }
}
