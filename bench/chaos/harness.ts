// The chaos suite's private stack and its instruments: a test PKI, a redis-server (append-only,
// `appendfsync everysec`, a fixed data dir), a broker process, an orchestrator process and a fleet
// process of real agents, each of which a scenario may SIGKILL and start again on the same port
// (and the same data or spools). Executions are counted from marker files the task
// `sample::chaos_marker` writes, never from Baton's own records; a process that exits without
// the harness having stopped it is a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startBrokerProcess, type BrokerProcess, type ServiceProcess } from '../../test/helpers/broker.ts';
import type { HttpOptions } from '../../test/helpers/http.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, type OrchestratorProcess } from '../../test/helpers/orchestrator.ts';
import { makePki, type TestPki } from '../../test/helpers/pki.ts';
import { startRedis, type TestRedis } from '../../test/helpers/redis.ts';
import { issueFleetCerts } from '../../test/fleet/fleet.ts';

/** The options every scenario's `run` takes (scenarios may add their own). */
export interface ChaosOptions {
  agents?: number;
  concurrency?: number;
  taskSeconds?: number;
  /** How long to wait for the job's end before calling it 'never-ended'. */
  boundS?: number;
}

export interface ChaosResult {
  scenario: string;
  nodes: number;
  /** The job's final state as the API reports it, or 'never-ended' after the bound. */
  job_state: string;
  node_states: Record<string, number>;
  /** Nodes of the job with no execution at all. */
  lost: number;
  /** Nodes of the job with more than one execution. */
  double: number;
  /** Nodes the API reports failed or errored whose marker count is 0. */
  never_ran_but_failed: number;
  /** Seconds from the fault to the job's end (null if it never ended); see each scenario. */
  recovery_s: number | null;
  /** Processes of the stack that exited without the harness stopping them. */
  crashes: number;
  [extra: string]: unknown;
}

export const FULL_SCALE = { agents: 300, concurrency: 100, taskSeconds: 3 } as const;
/** Full-scale wait for a job's end, after which its state is 'never-ended'. */
export const DEFAULT_JOB_BOUND_S = 180;
/** Every agent connected (and seen by the orchestrator) within this long. */
export const INVENTORY_BOUND_MS = 120_000;
/** Condition polls: the instrument's resolution. */
export const POLL_INTERVAL_MS = 100;
/** The fault strikes once this share of the job's nodes has started (mid-job: runs in flight and queued). */
export const FAULT_AT_SHARE = 0.4;
/** Downtime of a killed broker, fleet or Redis before it is started again. */
export const RESTART_DELAY_MS = 2_000;
export const MARKER_TASK = 'sample::chaos_marker';
/** Set (to anything) to keep a scenario's work directory for a post-mortem. */
export const KEEP_WORK_ENV = 'CHAOS_KEEP_WORK';

const ENDED = ['finished', 'failed', 'stopped'];

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Polls `cond` until it returns a value other than undefined/false, or `boundMs` passes (then null). */
export async function waitUntil<T>(cond: () => T | undefined | false | Promise<T | undefined | false>, boundMs: number): Promise<T | null> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= deadline) return null;
    await delay(POLL_INTERVAL_MS);
  }
}

export const nodeNames = (n: number) => Array.from({ length: n }, (_, i) => `chaos${String(i).padStart(5, '0')}`);

/** Executions per node, from `<dir>/<node>` marker files (one line per execution). */
export function countMarkers(dir: string): Map<string, number> {
  const counts = new Map<string, number>();
  if (!existsSync(dir)) return counts;
  for (const f of readdirSync(dir)) counts.set(f, readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).length);
  return counts;
}

export const totalExecutions = (dir: string) => [...countMarkers(dir).values()].reduce((a, b) => a + b, 0);

/** lost, double and never_ran_but_failed of one job's nodes. */
export function tally(names: readonly string[], markers: Map<string, number>, states: Map<string, string>) {
  let lost = 0;
  let double = 0;
  let neverRanButFailed = 0;
  for (const n of names) {
    const runs = markers.get(n) ?? 0;
    if (runs === 0) lost++;
    if (runs > 1) double++;
    const s = states.get(n);
    if (runs === 0 && (s === 'failed' || s === 'errored')) neverRanButFailed++;
  }
  return { lost, double, never_ran_but_failed: neverRanButFailed, executions: [...markers.values()].reduce((a, b) => a + b, 0) };
}

/** Polls of the API reuse their connections; a submission of redis-stall uses a fresh one (`fresh`). */
const KEEP_ALIVE = new Agent({ keepAlive: true, maxSockets: 16 });

export type RequestOptions = Omit<HttpOptions, 'agent'> & { timeoutMs?: number; fresh?: boolean };

export interface ApiResponse {
  status: number;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Record<string, string | string[] | undefined>;
}

/** HTTPS with a bound: rejects with code 'ETIMEDOUT' when no full answer came within `timeoutMs`. */
export function httpWithTimeout(url: string, opts: RequestOptions & { timeoutMs: number }): Promise<ApiResponse> {
  const payload = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
      headers: {
        ...(opts.token ? { 'X-Authentication': opts.token } : {}),
        ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        ...opts.headers,
      },
      ...(opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false }),
      agent: opts.fresh ? false : KEEP_ALIVE,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        clearTimeout(timer);
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer from ${url} within ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' })), opts.timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface StackOptions {
  agents: number;
  /** Extra orchestrator configuration. */
  orchestratorConfig?: Record<string, unknown>;
  /** Orchestrators on the one Redis and broker, each with its own controller identity (default 1). */
  orchestrators?: number;
}

/** The certificate CN of the stack's orchestrator `i` (0: the first, the one `orch` starts as). */
export const orchestratorName = (i: number) => (i === 0 ? 'orchestrator' : `orchestrator-${i}`);

/** A fleet process of real agents, started here with a given baseDir so that a restart keeps the spools. */
interface FleetHandle {
  proc: ChildProcess;
  exited: Promise<void>;
}

/** The private stack of one scenario. Call `close()` in a finally. */
export class ChaosStack {
  readonly work = mkdtempSync(join(tmpdir(), 'baton-chaos-'));
  readonly names: string[];
  readonly codedir = makeCodedir();
  readonly fleetDir = join(this.work, 'fleet');
  pki!: TestPki;
  redis!: TestRedis;
  broker!: BrokerProcess;
  orch!: OrchestratorProcess;
  /** Every orchestrator started, `orch` among them. */
  readonly orchestrators: OrchestratorProcess[] = [];
  fleet: FleetHandle | null = null;
  crashes = 0;
  readonly crashLog: string[] = [];
  private readonly intended = new Set<ChildProcess>();
  private ca!: Buffer;
  private fleetStarts = 0;

  private constructor(readonly opts: StackOptions) {
    this.names = nodeNames(opts.agents);
  }

  static async start(opts: StackOptions): Promise<ChaosStack> {
    const s = new ChaosStack(opts);
    try {
      s.pki = await makePki([], 'baton-chaos-pki-');
      s.ca = readFileSync(s.pki.ca);
      await issueFleetCerts(s.pki.dir, s.names);
      s.redis = await startRedis({ dir: join(s.work, 'redis'), appendfsync: 'everysec' });
      s.watchRedis();
      await s.startBroker();
      for (let i = 0; i < (opts.orchestrators ?? 1); i++) await s.startOrchestrator(undefined, orchestratorName(i));
      s.orch = s.orchestrators[0]!;
      await s.startFleet();
      await s.waitForInventory();
      return s;
    } catch (err) {
      await s.close();
      throw err;
    }
  }

  get brokerUris(): string[] {
    return [`wss://127.0.0.1:${this.broker.port}/pcp2/`];
  }

  /** Counts an exit of a process the harness did not stop as a crash. */
  private watch(what: string, proc: ChildProcess, exited: Promise<unknown>, stderr: () => string = () => ''): void {
    void exited.then(() => {
      if (this.intended.has(proc)) return;
      this.crashes++;
      this.crashLog.push(`${what} (pid ${String(proc.pid)}) exited with ${String(proc.exitCode ?? proc.signalCode)}: ${stderr().slice(-2000)}`);
    });
  }

  async startBroker(port?: number): Promise<void> {
    const config = { 'controller-cns': Array.from({ length: this.opts.orchestrators ?? 1 }, (_, i) => orchestratorName(i)) };
    this.broker = await startBrokerProcess({ pki: this.pki, logLevel: 'info', config, ...(port ? { port } : {}) });
    const b = this.broker;
    this.watch('broker', b.proc, b.exited, () => b.stderr);
  }

  /** Starts an orchestrator (by default the first, again) and makes it the one `api` talks to. */
  async startOrchestrator(port?: number, name = orchestratorName(0)): Promise<void> {
    this.orch = await startOrchestratorProcess({
      name,
      pki: this.pki,
      brokerUris: this.brokerUris,
      redisUrl: this.redis.url,
      codedir: this.codedir,
      keyPrefix: 'chaos',
      config: { 'log-level': 'info', ...this.opts.orchestratorConfig },
      ...(port ? { port } : {}),
    });
    const o = this.orch;
    this.orchestrators.push(o);
    this.watch(name, o.proc, o.exited, () => o.stderr);
  }

  /**
   * Starts the fleet process with the stack's fixed baseDir (a restart finds its spools again).
   * test/fleet/fleet.ts's startFleet always makes a fresh baseDir, so this spawns
   * fleet-process.ts itself, with the same spec and the same "ready N" handshake.
   */
  async startFleet(): Promise<void> {
    const spec = { brokerUris: this.brokerUris, pkiDir: this.pki.dir, names: this.names, masterUris: this.orchestrators.map((o) => `https://127.0.0.1:${o.port}`), baseDir: this.fleetDir, inMemoryTask: false };
    const logFd = openSync(join(this.work, `fleet-${this.fleetStarts++}.log`), 'a');
    const proc = spawn(process.execPath, ['--import', 'tsx', new URL('../../test/fleet/fleet-process.ts', import.meta.url).pathname, JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', logFd, 'ipc'],
    });
    closeSync(logFd);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    this.fleet = { proc, exited };
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
      void exited.then(() => reject(new Error(`fleet exited with ${String(proc.exitCode ?? proc.signalCode)} before it was ready`)));
    });
    this.watch('fleet', proc, exited);
  }

  /** Sends `signal` to a process the harness started and waits for its exit; not a crash. */
  private async end(proc: ChildProcess, exited: Promise<unknown>, signal: NodeJS.Signals): Promise<void> {
    this.intended.add(proc);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  }

  private watchRedis(): void {
    const proc = this.redis.proc;
    this.watch('redis-server', proc, new Promise((resolve) => (proc.exitCode !== null || proc.signalCode !== null ? resolve(undefined) : proc.once('exit', resolve))));
  }

  /** Sends redis-server a signal that ends it (SIGKILL by default) and waits for its exit; not a crash. */
  async killRedis(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.intended.add(this.redis.proc);
    await this.redis.kill(signal);
  }

  /** Starts redis-server again on the same port and data. */
  async restartRedis(): Promise<void> {
    this.intended.add(this.redis.proc);
    await this.redis.restart();
    this.watchRedis();
  }

  killBroker(signal: NodeJS.Signals = 'SIGKILL') {
    return this.end(this.broker.proc, this.broker.exited, signal);
  }

  killOrchestrator(signal: NodeJS.Signals = 'SIGKILL', o = this.orch) {
    return this.end(o.proc, o.exited, signal);
  }

  async killFleet(signal: NodeJS.Signals = 'SIGKILL') {
    if (this.fleet) await this.end(this.fleet.proc, this.fleet.exited, signal);
  }

  api(path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    return httpWithTimeout(this.orch.url(path), { ca: this.ca, token: ADMIN_TOKEN, timeoutMs: 10_000, ...opts });
  }

  /** Waits until the orchestrator's inventory shows every agent connected. */
  async waitForInventory(boundMs = INVENTORY_BOUND_MS): Promise<void> {
    const n = this.names.length;
    const ok = await waitUntil(async () => {
      const items = (await this.api('/orchestrator/v1/inventory').catch(() => null))?.json?.items as { connected: boolean }[] | undefined;
      return items !== undefined && items.filter((i) => i.connected).length >= n;
    }, boundMs);
    if (!ok) throw new Error(`the orchestrator did not see ${n} connected agents within ${boundMs} ms`);
  }

  /** A fresh marker directory for one job. */
  markerDir(label: string): string {
    const dir = join(this.work, 'markers', label);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Submits a `sample::chaos_marker` job; returns its id. */
  async submitMarkerJob(o: { nodes: readonly string[]; dir: string; seconds: number; concurrency?: number; description?: string; headers?: Record<string, string> }): Promise<string> {
    const res = await this.api('/orchestrator/v1/command/task', {
      body: {
        task: MARKER_TASK,
        params: { dir: o.dir, seconds: o.seconds },
        scope: { nodes: o.nodes },
        ...(o.concurrency ? { concurrency: o.concurrency } : {}),
        ...(o.description ? { description: o.description } : {}),
      },
      ...(o.headers ? { headers: o.headers } : {}),
    });
    if (res.status !== 202) throw new Error(`submitting the job failed: ${res.status} ${res.text}`);
    return res.json.job.name as string;
  }

  /** The job as the API reports it, or null while the API cannot answer. */
  async job(id: string): Promise<{ state: string; node_states: Record<string, number> } | null> {
    const res = await this.api(`/orchestrator/v1/jobs/${id}`, { timeoutMs: 5_000 }).catch(() => null);
    return res?.status === 200 ? res.json : null;
  }

  /** Waits for the job's end (through restarts: it asks the API); the end's time, or null after the bound. */
  async waitForJobEnd(id: string, boundS: number): Promise<{ state: string; ended_ms: number } | null> {
    return waitUntil(async () => {
      const j = await this.job(id);
      return j && ENDED.includes(j.state) ? { state: j.state, ended_ms: Date.now() } : undefined;
    }, boundS * 1000);
  }

  /** Node name → state, as the API reports them (empty while it cannot answer). */
  async nodeStates(id: string): Promise<{ states: Map<string, string>; errors: unknown[] }> {
    const res = await this.api(`/orchestrator/v1/jobs/${id}/nodes`).catch(() => null);
    const items = (res?.status === 200 ? res.json.items : []) as { name: string; state: string; details?: unknown; result?: unknown }[];
    const errors = items.filter((n) => n.state === 'failed' || n.state === 'errored').slice(0, 3).map((n) => ({ node: n.name, state: n.state, details: n.details, result: n.result }));
    return { states: new Map(items.map((n) => [n.name, n.state])), errors };
  }

  /** Waits until `count` executions have started in `dir` (the mid-job moment a fault strikes). */
  async waitForExecutions(dir: string, count: number, boundMs = 120_000): Promise<void> {
    const ok = await waitUntil(() => totalExecutions(dir) >= count, boundMs);
    if (!ok) throw new Error(`${count} executions did not start within ${boundMs} ms (${totalExecutions(dir)} did)`);
  }

  /** The result fields every single-job scenario reports. */
  async measure(scenario: string, id: string, dir: string, names: readonly string[], ended: { state: string } | null) {
    const final = await this.job(id);
    const { states, errors } = await this.nodeStates(id);
    const t = tally(names, countMarkers(dir), states);
    return {
      scenario,
      nodes: names.length,
      job_state: ended ? ended.state : 'never-ended',
      node_states: final?.node_states ?? {},
      lost: t.lost,
      double: t.double,
      never_ran_but_failed: t.never_ran_but_failed,
      executions: t.executions,
      crashes: this.crashes,
      ...(this.crashLog.length ? { crash_log: this.crashLog.slice(0, 3) } : {}),
      ...(errors.length ? { sample_errors: errors } : {}),
    };
  }

  /** Stops everything it started (agents first) and removes its files. */
  async close(): Promise<void> {
    const stop = async (p: ServiceProcess | undefined) => {
      if (!p) return;
      this.intended.add(p.proc);
      await p.stop().catch(() => undefined);
    };
    if (this.fleet) await this.end(this.fleet.proc, this.fleet.exited, 'SIGTERM').catch(() => undefined);
    for (const o of new Set([...this.orchestrators, this.orch])) await stop(o);
    await stop(this.broker);
    if (this.redis) this.intended.add(this.redis.proc);
    await this.redis?.stop().catch(() => undefined);
    if (process.env[KEEP_WORK_ENV]) {
      process.stderr.write(`chaos: kept ${this.work} (markers, fleet spools and logs, Redis data)\n`);
      return;
    }
    this.pki?.remove();
    rmSync(this.work, { recursive: true, force: true });
    rmSync(this.codedir, { recursive: true, force: true });
  }
}

/** Options with full-scale defaults filled in. */
export function resolve(opts: ChaosOptions) {
  return {
    agents: opts.agents ?? FULL_SCALE.agents,
    concurrency: opts.concurrency ?? FULL_SCALE.concurrency,
    taskSeconds: opts.taskSeconds ?? FULL_SCALE.taskSeconds,
    boundS: opts.boundS ?? DEFAULT_JOB_BOUND_S,
  };
}

/**
 * The common shape of a single-job scenario: start the stack, run `faultedJob` on it, and close it.
 */
export async function runSingleJob(
  scenario: string,
  opts: ChaosOptions,
  fault: (s: ChaosStack) => Promise<void>,
  stackOpts: Partial<StackOptions> = {},
): Promise<ChaosResult> {
  const o = resolve(opts);
  const s = await ChaosStack.start({ agents: o.agents, ...stackOpts });
  try {
    return await faultedJob(s, scenario, o, fault);
  } finally {
    await s.close();
  }
}

/**
 * One marker job over every agent of a running stack, with `fault` struck once FAULT_AT_SHARE of
 * the nodes have started; waits (bounded) for the job's end and counts. recovery_s is from the
 * fault's first instant (the kill) to the job's end; job_s from the submission to the end.
 */
export async function faultedJob(s: ChaosStack, scenario: string, o: ReturnType<typeof resolve>, fault: (s: ChaosStack) => Promise<void>): Promise<ChaosResult & { job_s: number | null }> {
  const dir = s.markerDir('job');
  const t0 = Date.now();
  const id = await s.submitMarkerJob({ nodes: s.names, dir, seconds: o.taskSeconds, concurrency: o.concurrency });
  const faultAt = Math.max(1, Math.ceil(o.agents * FAULT_AT_SHARE));
  await s.waitForExecutions(dir, faultAt);
  const tFault = Date.now();
  await fault(s);
  const ended = await s.waitForJobEnd(id, o.boundS);
  return {
    ...(await s.measure(scenario, id, dir, s.names, ended)),
    recovery_s: ended ? round((ended.ended_ms - tFault) / 1000) : null,
    job_s: ended ? round((ended.ended_ms - t0) / 1000) : null,
    fault_at_executions: faultAt,
    concurrency: o.concurrency,
    task_s: o.taskSeconds,
  };
}
