// Job records, node records, events and state history in Redis. Every node state change goes
// through one Lua script, so counts, events and the job's own end never disagree.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ReplyError, type Redis } from 'ioredis';
import { projectPath } from '../../lib/paths.ts';
import { BatonError } from '../../protocol/errors.ts';
import { Keys } from './keys.ts';

/** Why the store could not do what was asked: Redis away, too slow, or a write refused as late. */
export const StoreErrorCode = {
  /** Redis is not connected or not serving (refused, reset, loading, offline queue off). */
  unavailable: 'store-unavailable',
  /** A command got no answer within `redis-timeout`. */
  timeout: 'store-timeout',
  /** A creating write reached Redis after its deadline (the API had given up): nothing was created. */
  deadlinePassed: 'store-deadline-passed',
  /** The request's Idempotency-Key reservation lapsed and another request holds the key now. */
  reservationLost: 'idempotency-reservation-lost',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export class StoreError extends BatonError {
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, options);
  }
}

/** Socket errors (by their `code`) of a Redis that cannot be reached. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);
/**
 * Error codes of a Redis that is up but not serving yet (or busy in a script): the first word of
 * its error reply is Redis's own error code (RESP simple errors, `-LOADING ...`), which ioredis
 * gives as a ReplyError.
 */
const NOT_SERVING_REPLY_CODES = new Set(['LOADING', 'BUSY', 'MASTERDOWN', 'TRYAGAIN', 'CLUSTERDOWN']);
/** ioredis's error class when a command was retried `maxRetriesPerRequest` times (its `name`, set by ioredis from the class). */
const MAX_RETRIES_ERROR_NAME = 'MaxRetriesPerRequestError';
/**
 * ioredis's `commandTimeout` rejection (Command.setTimeout): a plain Error with this message and
 * no class, name or code of its own, so this one equality is the only way to know it.
 */
const COMMAND_TIMEOUT_MESSAGE = 'Command timed out';
/**
 * The other errors ioredis raises itself, as plain Errors without class or code, when it has no
 * connection to send on: the offline queue is off while it reconnects (Redis.sendCommand), and the
 * connection has ended (utils CONNECTION_CLOSED_ERROR_MSG). Compared whole, never by pattern;
 * test/unit/redis-errors.test.ts makes ioredis raise each of them.
 */
const NO_CONNECTION_MESSAGES = new Set(["Stream isn't writeable and enableOfflineQueue options is false", 'Connection is closed.']);

/**
 * The one place where ioredis's (and, through it, BullMQ's) errors are read: an error meaning
 * that Redis is away or slow becomes a StoreError with a stable code; anything else is not
 * Redis's unavailability and gives null. Everything else branches on the code.
 */
export function classifyRedisError(err: unknown): StoreError | null {
  if (err instanceof StoreError) return err;
  if (!(err instanceof Error)) return null;
  if (err.constructor === Error && err.message === COMMAND_TIMEOUT_MESSAGE) return new StoreError(StoreErrorCode.timeout, 'Redis did not answer in time', { cause: err });
  const code = (err as NodeJS.ErrnoException).code;
  // Redis's error code of an error reply: its first word (`LOADING Redis is loading ...`).
  const reply = err instanceof ReplyError ? err.message.split(' ', 1)[0]! : null;
  if (
    err.name === MAX_RETRIES_ERROR_NAME ||
    (typeof code === 'string' && UNREACHABLE_CODES.has(code)) ||
    (reply !== null && NOT_SERVING_REPLY_CODES.has(reply)) ||
    (err.constructor === Error && NO_CONNECTION_MESSAGES.has(err.message))
  ) {
    return new StoreError(StoreErrorCode.unavailable, 'Redis is unavailable', { cause: err });
  }
  return null;
}

/** The part of `redis-timeout` a creating write keeps for its answer to travel back in time. */
export const CREATE_DEADLINE_MARGIN_MS = 200;

/**
 * The deadline a creating write carries (Redis compares it with its own TIME): it passes before
 * the command's own timeout fires, so that a write Redis runs in time is answered in time too.
 * Assumes the orchestrator's and Redis's clocks agree to well within the margin.
 */
export function createDeadlineMs(timeoutMs: number, nowMs = Date.now()): number {
  return nowMs + Math.max(Math.floor(timeoutMs / 2), timeoutMs - CREATE_DEADLINE_MARGIN_MS);
}

/** Entries the job feed (every job's creation and state changes) keeps, approximately (XADD MAXLEN ~). */
export const JOB_FEED_MAX_ENTRIES = 10_000;

/** How long an Idempotency-Key's first answer is kept. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;
/** How long a reservation holds the key for a request still under way (then it lapses). */
export const IDEMPOTENCY_LEASE_MS = 60_000;

/** What an Idempotency-Key holds: a request under way, or the first answer given. */
export type IdempotencyRecord =
  | { state: 'pending'; token: string; fingerprint: string }
  | { state: 'done'; token: string; fingerprint: string; status: number; headers: Record<string, string>; body: string; job?: string };

/** A request's reservation, made good by the job creation itself (the same Lua script). */
export interface JobIdempotency {
  key: string;
  token: string;
  /** The final record for the job `id` (the answer the request gives). */
  record: (jobId: string) => IdempotencyRecord & { state: 'done' };
}

export const JobState = { new: 'new', ready: 'ready', running: 'running', stopping: 'stopping', stopped: 'stopped', finished: 'finished', failed: 'failed' } as const;
export type JobState = (typeof JobState)[keyof typeof JobState];
export const NodeState = { new: 'new', ready: 'ready', running: 'running', finished: 'finished', failed: 'failed', errored: 'errored', skipped: 'skipped' } as const;
export type NodeState = (typeof NodeState)[keyof typeof NodeState];
export const TERMINAL_NODE_STATES: readonly NodeState[] = ['finished', 'failed', 'errored', 'skipped'];
export const ENDED_JOB_STATES: readonly JobState[] = ['stopped', 'finished', 'failed'];
/** Job states in which no further node starts. */
export const STOPPING_JOB_STATES: readonly JobState[] = ['stopping', 'stopped'];
export const isStopping = (state: JobState | null): boolean => state !== null && STOPPING_JOB_STATES.includes(state);

export type JobType = 'task' | 'deploy' | 'command' | 'deployment';

export interface JobOptions {
  concurrency: number; // 0 = unlimited
  noop: boolean;
  timeout_s: number;
  description?: string;
  /** Some nodes wait for others (application components): see NewJob.deps. */
  ordered?: boolean;
  /** Deploy jobs: enforce_environment and the Puppet flags asked for. */
  enforce_environment?: boolean;
  debug?: boolean;
  trace?: boolean;
  evaltrace?: boolean;
  /** The schedule that started this job: its id, the occurrence's due time, and whether it ran late (orchestrators were down then). */
  scheduled_job?: { id: string; scheduled_for: string; late: boolean };
  /** The plan job this job is a step of, and the step's name (its path, for a sub-plan's steps). */
  plan_job?: { id: string; step: string };
}

export interface NewJob {
  type: JobType;
  environment: string;
  task?: string;
  params: Record<string, unknown>;
  sensitive: string[];
  options: JobOptions;
  owner: string;
  scope: Record<string, unknown>;
  nodes: string[];
  /** What each node runs (for PXP: {module, action, params}); stored with the job, not shown by the API. */
  action: unknown;
  /** Nodes that may start only once these other nodes of the job finished (without failure). */
  deps?: Record<string, string[]>;
  /** Runs wait for Engine.begin (a Chef job votes first); kept with the job so a restart waits too. */
  held?: boolean;
  /** A face's own fields of the job record, written with it (Chef: its state and spec). */
  fields?: Record<string, string | number>;
  /**
   * When Redis must have created the job by (ms since the epoch, Redis's clock); past it nothing
   * is created (StoreError deadlinePassed). Default: now plus the store's `timeoutMs`.
   */
  deadline_ms?: number;
  /** The request's Idempotency-Key: created only while the reservation is held; answered atomically. */
  idempotency?: JobIdempotency;
}

export interface JobRecord extends Omit<NewJob, 'nodes' | 'action'> {
  id: string;
  state: JobState;
  created_ms: number;
  finished_ms?: number;
  node_count: number;
}

export interface NodeRecord {
  name: string;
  state: NodeState;
  transaction_uuid?: string;
  start_ms?: number;
  finish_ms?: number;
  result?: unknown;
  details?: Record<string, unknown>;
  latest_event_id?: number;
}

export interface JobEvent {
  id: number;
  type: string;
  timestamp: string;
  details: Record<string, unknown>;
  message?: string;
}

interface Scripts {
  createJob(...args: (string | number)[]): Promise<string | number>;
  idempotencyBegin(...args: (string | number)[]): Promise<[string, string?]>;
  idempotencyFinish(...args: (string | number)[]): Promise<number>;
  idempotencyRelease(...args: (string | number)[]): Promise<number>;
  nodeTransition(...args: (string | number)[]): Promise<[string, string] | null>;
  refill(...args: (string | number)[]): Promise<string[]>;
  stop(...args: (string | number)[]): Promise<number>;
  release(...args: (string | number)[]): Promise<[string[], string[]]>;
}

function lua(name: string): string {
  return readFileSync(projectPath('orchestrator', 'engine', 'lua', name), 'utf8');
}

export interface JobStoreOptions {
  /** `redis-timeout`: creating writes carry a deadline this far ahead (none when absent). */
  timeoutMs?: number;
}

export class JobStore {
  readonly keys: Keys;
  private readonly r: Redis & Scripts;
  private readonly timeoutMs: number | undefined;

  constructor(redis: Redis, prefix: string, opts: JobStoreOptions = {}) {
    this.keys = new Keys(prefix);
    this.timeoutMs = opts.timeoutMs;
    redis.defineCommand('createJob', { numberOfKeys: 4, lua: lua('create-job-4.lua') });
    redis.defineCommand('idempotencyBegin', { numberOfKeys: 1, lua: lua('idempotency-begin-1.lua') });
    redis.defineCommand('idempotencyFinish', { numberOfKeys: 1, lua: lua('idempotency-finish-1.lua') });
    redis.defineCommand('idempotencyRelease', { numberOfKeys: 1, lua: lua('idempotency-release-1.lua') });
    redis.defineCommand('nodeTransition', { numberOfKeys: 6, lua: lua('node-transition-6.lua') });
    redis.defineCommand('refill', { numberOfKeys: 4, lua: lua('refill-4.lua') });
    redis.defineCommand('stop', { numberOfKeys: 4, lua: lua('stop-4.lua') });
    redis.defineCommand('release', { numberOfKeys: 4, lua: lua('release-4.lua') });
    this.r = redis as Redis & Scripts;
  }

  /** The dataset's epoch, made once. */
  async epoch(): Promise<string> {
    await this.r.set(this.keys.epoch(), randomUUID().slice(0, 8), 'NX');
    return (await this.r.get(this.keys.epoch()))!;
  }

  /**
   * Creates a job in one Lua step that first compares the job's deadline with Redis's clock: a
   * submission the API already answered 503 for (Redis stalled, the command ran late) creates
   * nothing, not even an id. With an Idempotency-Key, it creates only while the request's
   * reservation holds the key, and writes the request's answer in its place.
   */
  async createJob(job: NewJob, nowMs = Date.now()): Promise<JobRecord> {
    const deadline = job.deadline_ms ?? (this.timeoutMs !== undefined ? createDeadlineMs(this.timeoutMs) : 0);
    const slot = `@@${randomUUID().replace(/-/g, '')}@@`; // stands for the id Redis gives
    const iso = new Date(nowMs).toISOString();
    const fields: Record<string, string> = {
      type: job.type, state: 'running', environment: job.environment, task: job.task ?? '',
      params: JSON.stringify(job.params), sensitive: JSON.stringify(job.sensitive), options: JSON.stringify(job.options),
      owner: job.owner, scope: JSON.stringify(job.scope), created_ms: String(nowMs), node_count: String(job.nodes.length),
      action: JSON.stringify(job.action),
      ...(job.held ? { held: '1' } : {}),
      ...Object.fromEntries(Object.entries(job.fields ?? {}).map(([k, v]) => [k, String(v)])),
    };
    const deps = job.deps ?? {};
    const nodes = Object.fromEntries(job.nodes.map((n) => [n, JSON.stringify({ name: n, state: 'new' })]));
    const rest = {
      count: job.nodes.length,
      free: job.nodes.filter((n) => !deps[n]?.length),
      blocked: Object.fromEntries(job.nodes.filter((n) => deps[n]?.length).map((n) => [n, JSON.stringify(deps[n])])),
      history: [JSON.stringify({ state: 'new', enter_time: iso }), JSON.stringify({ state: 'running', enter_time: iso })],
    };
    const k = this.keys;
    const idem = job.idempotency;
    const res = await this.r.createJob(
      k.jobSequence(), k.jobIndex(), idem?.key ?? k.jobSequence(), k.jobFeed(),
      deadline, slot, k.job(slot), k.nodes(slot), k.counts(slot), k.pending(slot), k.blocked(slot), k.deps(slot), k.history(slot),
      nowMs, JSON.stringify(fields), JSON.stringify(nodes), JSON.stringify(rest),
      idem?.token ?? '', idem ? JSON.stringify(idem.record(slot)) : '', IDEMPOTENCY_TTL_MS, JOB_FEED_MAX_ENTRIES,
    );
    if (res === 0) throw new StoreError(StoreErrorCode.deadlinePassed, 'Redis ran the job creation after its deadline; nothing was created', { details: { deadline_ms: deadline } });
    if (res === -1) throw new StoreError(StoreErrorCode.reservationLost, 'the Idempotency-Key of this request was taken by another request meanwhile; nothing was created');
    const id = String(res);
    return {
      id, type: job.type, state: 'running', environment: job.environment, ...(job.task ? { task: job.task } : {}),
      params: job.params, sensitive: job.sensitive, options: job.options, owner: job.owner, scope: job.scope,
      created_ms: nowMs, node_count: job.nodes.length,
    };
  }

  /**
   * Reserves an Idempotency-Key for a request (deadline-checked like a creation), or gives what
   * the key already holds: another request's reservation or the first answer.
   */
  async beginIdempotent(key: string, token: string, fingerprint: string, leaseMs = IDEMPOTENCY_LEASE_MS): Promise<IdempotencyRecord | null> {
    const deadline = createDeadlineMs(this.timeoutMs ?? leaseMs);
    const pending: IdempotencyRecord = { state: 'pending', token, fingerprint };
    const [kind, current] = await this.r.idempotencyBegin(key, deadline, JSON.stringify(pending), leaseMs);
    if (kind === 'late') throw new StoreError(StoreErrorCode.deadlinePassed, 'Redis ran the Idempotency-Key reservation after its deadline; nothing was reserved');
    return kind === 'exists' ? (JSON.parse(current!) as IdempotencyRecord) : null;
  }

  /** Keeps the answer of the request holding `token` for IDEMPOTENCY_TTL_MS; false if the key is no longer its. */
  async finishIdempotent(key: string, record: IdempotencyRecord & { state: 'done' }): Promise<boolean> {
    return (await this.r.idempotencyFinish(key, record.token, JSON.stringify(record), IDEMPOTENCY_TTL_MS)) === 1;
  }

  /** Lets go of a reservation whose request failed before it created anything. */
  async releaseIdempotent(key: string, token: string): Promise<void> {
    await this.r.idempotencyRelease(key, token);
  }

  async getJob(id: string): Promise<JobRecord | null> {
    const h = await this.r.hgetall(this.keys.job(id));
    if (!h.id) return null;
    return {
      id: h.id, type: h.type as JobType, state: h.state as JobState, environment: h.environment!, ...(h.task ? { task: h.task } : {}),
      params: JSON.parse(h.params!) as Record<string, unknown>, sensitive: JSON.parse(h.sensitive!) as string[],
      options: JSON.parse(h.options!) as JobOptions, owner: h.owner!, scope: JSON.parse(h.scope!) as Record<string, unknown>,
      created_ms: Number(h.created_ms), ...(h.finished_ms ? { finished_ms: Number(h.finished_ms) } : {}), node_count: Number(h.node_count),
    };
  }

  async jobState(id: string): Promise<JobState | null> {
    return (await this.r.hget(this.keys.job(id), 'state')) as JobState | null;
  }

  /** Job ids, newest first unless `order` is asc, with the total. */
  async jobIds(opts: { limit: number; offset: number; order: 'asc' | 'desc' }): Promise<{ ids: string[]; total: number }> {
    const total = await this.r.zcard(this.keys.jobIndex());
    const stop = opts.limit > 0 ? opts.offset + opts.limit - 1 : -1;
    const ids = opts.order === 'asc'
      ? await this.r.zrange(this.keys.jobIndex(), String(opts.offset), String(stop))
      : await this.r.zrevrange(this.keys.jobIndex(), opts.offset, stop);
    return { ids, total };
  }

  /** Some fields of many jobs' records in one round trip (null for a job that is not there). */
  async fieldsOfJobs(ids: readonly string[], ...names: string[]): Promise<(string | null)[][]> {
    if (ids.length === 0) return [];
    const m = this.r.pipeline();
    for (const id of ids) m.hmget(this.keys.job(id), ...names);
    const res = (await m.exec()) ?? [];
    return res.map(([err, v]) => {
      if (err) throw err;
      return v as (string | null)[];
    });
  }

  /** Node records of some of a job's nodes (null where a name is not a node of the job). */
  async someNodes(id: string, names: readonly string[]): Promise<(NodeRecord | null)[]> {
    if (names.length === 0) return [];
    return (await this.r.hmget(this.keys.nodes(id), ...names)).map((v) => (v ? (JSON.parse(v) as NodeRecord) : null));
  }

  async getNodes(id: string): Promise<NodeRecord[]> {
    const h = await this.r.hgetall(this.keys.nodes(id));
    return Object.values(h).map((v) => JSON.parse(v) as NodeRecord).sort((a, b) => a.name.localeCompare(b.name));
  }

  async getNode(id: string, node: string): Promise<NodeRecord | null> {
    const v = await this.r.hget(this.keys.nodes(id), node);
    return v ? (JSON.parse(v) as NodeRecord) : null;
  }

  async counts(id: string): Promise<Record<string, number>> {
    const h = await this.r.hgetall(this.keys.counts(id));
    return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Number(v)]).filter(([, v]) => (v as number) > 0));
  }

  async history(id: string): Promise<{ state: string; enter_time: string }[]> {
    return (await this.r.lrange(this.keys.history(id), 0, -1)).map((v) => JSON.parse(v) as { state: string; enter_time: string });
  }

  /**
   * Moves a node to `record.state` if it is in one of `from`, appending an event. Returns the
   * event id and the job's end state ('' while it goes on), or null when the move was refused.
   */
  async transition(
    jobId: string,
    record: NodeRecord,
    from: readonly NodeState[],
    event: { type: string; details?: Record<string, unknown>; message?: string } | null,
    nowMs = Date.now(),
    /** Refused, too, while the job is in one of these states. */
    unlessJob: readonly JobState[] = [],
  ): Promise<{ eventId: number | null; jobEnd: JobState | '' } | null> {
    const iso = new Date(nowMs).toISOString();
    const { latest_event_id: _ignored, ...rest } = record;
    const eventJson = event ? JSON.stringify({ type: event.type, timestamp: iso, details: { node: record.name, ...event.details }, ...(event.message ? { message: event.message } : {}) }) : '';
    const res = await this.r.nodeTransition(
      this.keys.job(jobId), this.keys.nodes(jobId), this.keys.counts(jobId), this.keys.events(jobId), this.keys.history(jobId), this.keys.jobFeed(),
      record.name, from.join(','), JSON.stringify(rest), record.state, event ? event.type : '', eventJson,
      TERMINAL_NODE_STATES.join(','), iso, nowMs, unlessJob.join(','), jobId, JOB_FEED_MAX_ENTRIES,
    );
    if (!res) return null;
    return { eventId: res[0] ? Number(res[0]) : null, jobEnd: res[1] as JobState | '' };
  }

  /** Pending nodes that may start now under the job's concurrency, already moved to `ready`. */
  refill(jobId: string, concurrency: number): Promise<string[]> {
    return this.r.refill(this.keys.job(jobId), this.keys.pending(jobId), this.keys.nodes(jobId), this.keys.counts(jobId), concurrency, new Date().toISOString());
  }

  /** What every node of the job runs (kept apart from the record the API shows). */
  async getAction<T>(jobId: string): Promise<T | null> {
    const v = await this.r.hget(this.keys.job(jobId), 'action');
    return v ? (JSON.parse(v) as T) : null;
  }

  /** Marks the job stopping (idempotent); returns whether this call changed it. */
  async requestStop(jobId: string, login: string): Promise<boolean> {
    return (await this.r.stop(this.keys.job(jobId), this.keys.events(jobId), this.keys.history(jobId), this.keys.jobFeed(), new Date().toISOString(), login, jobId, JOB_FEED_MAX_ENTRIES)) === 1;
  }

  /** Takes every node still waiting for its turn or for other nodes (used when a job stops). */
  async drainPending(jobId: string): Promise<string[]> {
    const m = this.r.multi();
    m.lrange(this.keys.pending(jobId), 0, -1);
    m.smembers(this.keys.blocked(jobId));
    m.del(this.keys.pending(jobId), this.keys.blocked(jobId));
    const res = await m.exec();
    return [...((res?.[0]?.[1] as string[] | undefined) ?? []), ...((res?.[1]?.[1] as string[] | undefined) ?? [])];
  }

  /**
   * Ordered jobs: blocked nodes whose prerequisites all finished go to the pending list; those
   * with a prerequisite that did not finish are returned as `skip` ([node, prerequisite]).
   */
  async release(jobId: string): Promise<{ ready: string[]; skip: [string, string][] }> {
    const [ready, flat] = await this.r.release(this.keys.blocked(jobId), this.keys.deps(jobId), this.keys.nodes(jobId), this.keys.pending(jobId));
    const skip: [string, string][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) skip.push([flat[i]!, flat[i + 1]!]);
    return { ready, skip };
  }

  /** A blocked node was skipped: it waits no more. */
  async unblock(jobId: string, node: string): Promise<void> {
    await this.r.srem(this.keys.blocked(jobId), node);
  }

  /** Appends an event of a face's own (a Chef vote, start or completion) to the job's stream. */
  async appendEvent(jobId: string, type: string, details: Record<string, unknown>, nowMs = Date.now()): Promise<number> {
    const id = await this.r.xadd(this.keys.events(jobId), '0-*', 'event', JSON.stringify({ type, timestamp: new Date(nowMs).toISOString(), details }));
    return Number(id!.split('-')[1]);
  }

  /** Fields a face keeps on the job record (Chef: its job state and spec). */
  async setJobFields(jobId: string, fields: Record<string, string | number>): Promise<void> {
    await this.r.hset(this.keys.job(jobId), fields);
  }

  async jobFields(jobId: string, ...names: string[]): Promise<(string | null)[]> {
    return this.r.hmget(this.keys.job(jobId), ...names);
  }

  /** Sets a field only if it is not set yet; true for the one caller that set it. */
  async claimJobField(jobId: string, field: string, value: string | number): Promise<boolean> {
    return (await this.r.hsetnx(this.keys.job(jobId), field, value)) === 1;
  }

  async clearJobField(jobId: string, field: string): Promise<void> {
    await this.r.hdel(this.keys.job(jobId), field);
  }

  /** Events from id `start` on (inclusive), at most `count`. */
  async events(jobId: string, start: number, count = 1000): Promise<JobEvent[]> {
    const entries = await this.r.xrange(this.keys.events(jobId), `0-${Math.max(1, start)}`, '+', 'COUNT', count);
    return entries.map(([id, fields]) => ({ id: Number(id.split('-')[1]), ...(JSON.parse(fields[1]!) as Omit<JobEvent, 'id'>) }));
  }

  /** Ids of jobs that have not ended (for recovery after a restart). */
  async activeJobIds(): Promise<string[]> {
    const ids = await this.r.zrange(this.keys.jobIndex(), '0', '-1');
    const out: string[] = [];
    for (const id of ids) {
      const state = await this.r.hget(this.keys.job(id), 'state');
      if (state && !ENDED_JOB_STATES.includes(state as JobState)) out.push(id);
    }
    return out;
  }
}
