// `baton broker --workers N` (N > 1): a supervisor runs N broker processes on one listening port.
// It is node:cluster's primary: it owns the listening socket and hands accepted connections to the
// workers in turn (Node 20's net.Server has no SO_REUSEPORT). Each worker is a whole broker with
// the same config, sessions on different workers reach each other only through the fabric. A
// worker that dies is restarted after a delay that grows while it keeps dying; SIGTERM/SIGINT to
// the supervisor stops every worker and waits for them (bounded). With N = 1 none of this runs.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { ConfigError, ConfigErrorCode } from '../lib/config.ts';
import type { Logger } from '../lib/log.ts';
import { BatonError } from '../protocol/errors.ts';

/** How the supervisor restarts and stops its workers. */
export interface SupervisionPolicy {
  /** Delay before restarting a worker that died after running well (or for the first time). */
  firstRestartDelayMs: number;
  /** Each further death in a row multiplies the delay by this, up to `maxRestartDelayMs`. */
  restartDelayFactor: number;
  maxRestartDelayMs: number;
  /** A worker that stayed up this long ran well: its next death starts again at the first delay. */
  stableUptimeMs: number;
  /** Time the workers have to listen when the supervisor starts; a worker that dies before is fatal. */
  startTimeoutMs: number;
  /**
   * Time the workers have to exit after SIGTERM; the rest are SIGKILLed. Shorter than a broker's
   * own shutdown deadline (cli/shutdown.ts, 15 s), so the supervisor ends them before it gives up.
   */
  stopTimeoutMs: number;
  /** After SIGKILL, the time allowed for the kernel to report the exit. */
  killWaitMs: number;
}

export const DEFAULT_SUPERVISION: SupervisionPolicy = {
  firstRestartDelayMs: 250,
  restartDelayFactor: 2,
  maxRestartDelayMs: 30_000,
  stableUptimeMs: 60_000,
  startTimeoutMs: 30_000,
  stopTimeoutMs: 12_000,
  killWaitMs: 2_000,
};

export const MAX_BROKER_WORKERS = 1024;

/** The environment variable giving a worker its slot (1..N): its `worker` log field, kept across restarts. */
export const WORKER_SLOT_ENV = 'BATON_BROKER_WORKER_SLOT';

export const WorkerErrorCode = {
  /** A worker exited, or did not listen in time, while the supervisor was starting. */
  startFailed: 'broker/worker-start-failed',
} as const;
export type WorkerErrorCode = (typeof WorkerErrorCode)[keyof typeof WorkerErrorCode];

export class WorkerError extends BatonError {
  declare readonly code: WorkerErrorCode;
}

/** The number of broker processes the `workers` config value asks for (`auto`: one per core). */
export function workerCount(value: number | string | undefined, cores: number = availableParallelism()): number {
  if (value === undefined) return 1;
  const n = value === 'auto' ? cores : Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_BROKER_WORKERS) {
    throw new ConfigError(ConfigErrorCode.invalid, `config key 'workers' must be auto or an integer from 1 to ${MAX_BROKER_WORKERS}, got '${String(value)}'`);
  }
  return n;
}

/** This process's slot when it is a broker worker started by the supervisor, else undefined. */
export function workerSlot(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const slot = Number(process.env[WORKER_SLOT_ENV]);
  return Number.isInteger(slot) && slot > 0 ? slot : undefined;
}

/** Deaths in a row of a worker that just died after `uptimeMs`, given the count before. */
export function nextDeathCount(previous: number, uptimeMs: number, policy: SupervisionPolicy = DEFAULT_SUPERVISION): number {
  return uptimeMs >= policy.stableUptimeMs ? 1 : previous + 1;
}

/** The delay before restarting a worker that has died `deaths` times in a row (1 or more). */
export function restartDelayMs(deaths: number, policy: SupervisionPolicy = DEFAULT_SUPERVISION): number {
  const delay = policy.firstRestartDelayMs * policy.restartDelayFactor ** Math.max(0, deaths - 1);
  return Math.min(policy.maxRestartDelayMs, delay);
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  startedAtMs: number;
  listening: boolean;
  deaths: number;
  restartTimer: NodeJS.Timeout | undefined;
}

export class BrokerSupervisor {
  private readonly slots: Slot[];
  private readonly bySlot = new Map<Worker, Slot>();
  private stopping = false;
  private starting: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    readonly count: number,
    private readonly log: Logger,
    private readonly policy: SupervisionPolicy = DEFAULT_SUPERVISION,
  ) {
    this.slots = Array.from({ length: count }, (_, i) => ({ index: i + 1, worker: undefined, startedAtMs: 0, listening: false, deaths: 0, restartTimer: undefined }));
  }

  /** Starts every worker; resolves once all listen. When one fails first, the others are stopped and it rejects. */
  async start(): Promise<void> {
    if (!cluster.isPrimary) throw new Error('the broker supervisor must run in the primary process');
    // Round robin: the supervisor accepts and deals connections out, so that no worker takes them all.
    cluster.schedulingPolicy = cluster.SCHED_RR;
    cluster.on('listening', (worker, address) => this.onListening(worker, address.port));
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal));
    const started = new Promise<void>((resolve, reject) => (this.starting = { resolve, reject }));
    for (const slot of this.slots) this.fork(slot);
    const timer = setTimeout(() => this.failStart(`not every broker worker listened within ${this.policy.startTimeoutMs} ms`, 1), this.policy.startTimeoutMs);
    try {
      await started;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops every worker (SIGTERM, then SIGKILL after the stop timeout) and waits for their exits. */
  stop(): Promise<void> {
    this.stopped ??= this.stopAll();
    return this.stopped;
  }

  /** Pids of the running workers, by slot (for status and tests). */
  pids(): Record<number, number | undefined> {
    return Object.fromEntries(this.slots.map((s) => [s.index, s.worker?.process.pid]));
  }

  private fork(slot: Slot): void {
    slot.restartTimer = undefined;
    slot.listening = false;
    slot.startedAtMs = Date.now();
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.index) });
    slot.worker = worker;
    this.bySlot.set(worker, slot);
    // A worker whose IPC channel fails is handled by its exit; the error itself is only logged.
    worker.on('error', (err: Error) => this.log.warn({ worker: slot.index, err: err.message }, 'broker worker channel error'));
    this.log.info({ worker: slot.index, worker_pid: worker.process.pid }, 'broker worker started');
  }

  private onListening(worker: Worker, port: number): void {
    const slot = this.bySlot.get(worker);
    if (!slot || slot.listening) return;
    slot.listening = true;
    this.log.info({ worker: slot.index, worker_pid: worker.process.pid, port }, 'broker worker listening');
    if (this.starting && this.slots.every((s) => s.listening)) {
      this.log.info({ workers: this.count, port, pids: this.pids() }, 'broker workers listening');
      this.starting.resolve();
      this.starting = undefined;
    }
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.bySlot.get(worker);
    if (!slot) return;
    this.bySlot.delete(worker);
    slot.worker = undefined;
    const uptimeMs = Date.now() - slot.startedAtMs;
    const fields = { worker: slot.index, worker_pid: worker.process.pid, code, signal, uptime_ms: uptimeMs };
    if (this.stopping) return void this.log.info(fields, 'broker worker exited');
    if (this.starting) {
      this.log.error(fields, 'broker worker exited while starting');
      return this.failStart(`broker worker ${slot.index} exited (${signal ?? `code ${String(code)}`}) before listening`, code ?? 1);
    }
    slot.deaths = nextDeathCount(slot.deaths, uptimeMs, this.policy);
    const delayMs = restartDelayMs(slot.deaths, this.policy);
    this.log.warn({ ...fields, deaths_in_a_row: slot.deaths, restart_delay_ms: delayMs }, 'broker worker died; restarting it');
    slot.restartTimer = setTimeout(() => this.fork(slot), delayMs);
  }

  private failStart(message: string, exitCode: number): void {
    const starting = this.starting;
    if (!starting) return;
    this.starting = undefined;
    void this.stop().then(() => starting.reject(new WorkerError(WorkerErrorCode.startFailed, message, { details: { exitCode } })));
  }

  private async stopAll(): Promise<void> {
    this.stopping = true;
    for (const slot of this.slots) clearTimeout(slot.restartTimer);
    const live = () => this.slots.flatMap((s) => (s.worker ? [s.worker] : []));
    const exits = (workers: Worker[]) => Promise.all(workers.map((w) => (w.isDead() ? undefined : new Promise<void>((resolve) => w.once('exit', () => resolve())))));
    const running = live();
    if (running.length > 0) this.log.info({ workers: running.length }, 'stopping broker workers');
    // Not worker.kill(): that disconnects first, and a worker that loses its channel exits at once.
    for (const w of running) signalWorker(w, 'SIGTERM');
    if (!(await bounded(exits(running), this.policy.stopTimeoutMs))) {
      const left = live();
      this.log.warn({ worker_pids: left.map((w) => w.process.pid), stop_timeout_ms: this.policy.stopTimeoutMs }, 'broker workers did not stop in time; killing them');
      for (const w of left) signalWorker(w, 'SIGKILL');
      await bounded(exits(left), this.policy.killWaitMs);
    }
    this.log.info('broker workers stopped');
  }
}

function signalWorker(worker: Worker, signal: NodeJS.Signals): void {
  try {
    worker.process.kill(signal);
  } catch {
    // Already gone: its exit event comes anyway.
  }
}

/** Whether `p` settled within `ms`. */
async function bounded(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
