// Chaos scenario "storm": N real agents (in fleet processes) connected to a real broker process;
// the broker is killed with SIGKILL and started again on the same port; how long until every
// agent is back, counted by the new broker (its "session opened" log and its status endpoint),
// not by the agents. Agents use the product's default reconnection settings.
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueCert, pkiPaths } from '../../lib/pki.ts';
import { fetchInsecure, startBrokerProcess, type BrokerProcess, type LogLine } from '../../test/helpers/broker.ts';
import type { TestPki } from '../../test/helpers/pki.ts';
import { fleetCpuMs, issueFleetCerts, startFleet, type Fleet, type FleetStats } from '../../test/fleet/fleet.ts';
import { cpuMs } from '../fixtures.ts';

export const STORM_DEFAULT_AGENTS = 1_000;
/** Agents per fleet process: one Node process runs this many real agents. */
export const STORM_AGENTS_PER_FLEET = 5_000;
/** Pause between the SIGKILL and the restart (the broker row of issue 12 used 2 s). */
export const STORM_RESTART_DELAY_MS = 2_000;
/** Give up waiting for the fleet to come back after this long (the figure is then `null`). */
export const STORM_TIMEOUT_MS = 240_000;
const MARKS_S = [10, 20, 30, 60] as const;

export interface StormOptions {
  agents?: number;
  restartDelayMs?: number;
  timeoutMs?: number;
  /** Extra broker configuration (e.g. a handshake bound). */
  brokerConfig?: Record<string, unknown>;
  /** Agents' reconnection delays; the product's defaults when absent. */
  reconnect?: { initialMs: number; maxMs: number };
}

/** Certificates for `names`, kept between runs in a directory under the system's tmpdir (issuing 10,000 takes minutes). */
async function stormPki(names: string[]): Promise<TestPki> {
  const dir = join(tmpdir(), 'baton-storm-pki');
  const paths = pkiPaths(dir);
  if (!existsSync(paths.caCert)) {
    mkdirSync(dir, { recursive: true });
    await initCa(dir, { force: true });
  }
  if (!existsSync(paths.cert('broker'))) await issueCert(dir, 'broker', { altNames: ['localhost', '127.0.0.1'], force: true });
  const missing = names.filter((n) => !existsSync(paths.cert(n)) || !existsSync(paths.key(n)));
  if (missing.length > 0) await issueFleetCerts(dir, missing);
  return { dir, ca: paths.caCert, cert: paths.cert, key: paths.key, issue: async () => {}, remove: () => {} };
}

async function sessionsOf(broker: BrokerProcess): Promise<number> {
  const body = JSON.parse(await fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services`)) as Record<string, { status: { sessions: number } }>;
  return body['broker-service']!.status.sessions;
}

export async function run(opts: StormOptions = {}): Promise<Record<string, unknown>> {
  const n = opts.agents ?? STORM_DEFAULT_AGENTS;
  const names = Array.from({ length: n }, (_, i) => `storm${String(i).padStart(5, '0')}`);
  const pki = await stormPki(names);
  // Thousands of agents logging every failed attempt would measure the log, not the reconnection.
  process.env.FLEET_LOG_LEVEL ??= 'error';
  const brokerOpts = { pki, logLevel: 'info', ...(opts.brokerConfig ? { config: opts.brokerConfig } : {}) };
  let crashes = 0;
  const fleets: Fleet[] = [];
  let first: BrokerProcess | null = null;
  let second: BrokerProcess | null = null;
  let stopping = false;
  const watch = (proc: { once(e: 'exit', f: (code: number | null, sig: string | null) => void): unknown }) =>
    proc.once('exit', (code, sig) => {
      if (!stopping && (code !== 0 || sig !== null)) crashes++;
    });
  try {
    first = await startBrokerProcess(brokerOpts);
    const brokerUris = [`wss://127.0.0.1:${first.port}/pcp2/`];
    const fleetCount = Math.ceil(n / STORM_AGENTS_PER_FLEET);
    const per = Math.ceil(n / fleetCount);
    const chunks = Array.from({ length: fleetCount }, (_, i) => names.slice(i * per, (i + 1) * per));
    fleets.push(...(await Promise.all(chunks.map((c) => startFleet({ pkiDir: pki.dir, names: c, brokerUris, reconnect: opts.reconnect ?? 'default' })))));
    for (const f of fleets) watch(f.proc);
    const before = await sessionsOf(first);
    if (before !== n) throw new Error(`only ${before} of ${n} agents connected before the fault`);

    const killedAt = Date.now();
    await first.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, opts.restartDelayMs ?? STORM_RESTART_DELAY_MS)); // the scenario's downtime
    const cpu0 = fleets.map((f) => fleetCpuMs(f));
    const restartedAt = Date.now();
    const nodeOptions = process.env.NODE_OPTIONS;
    if (process.env.STORM_BROKER_NODE_OPTIONS) process.env.NODE_OPTIONS = process.env.STORM_BROKER_NODE_OPTIONS; // profiling the restarted broker
    second = await startBrokerProcess({ ...brokerOpts, port: first.port });
    if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = nodeOptions;
    watch(second.proc);
    const listeningAt = Date.parse(String((await second.waitForLog((l) => l.msg === 'listening')).time));

    // Every agent's first session on the new broker, by the broker's own log timestamps.
    const firstOpen = new Map<string, number>();
    const count = (l: LogLine) => {
      if (l.msg === 'session opened' && typeof l.uri === 'string' && !firstOpen.has(l.uri)) firstOpen.set(l.uri, Date.parse(String(l.time)));
      return firstOpen.size >= n;
    };
    const allBack = second.logs.some(count) ? Promise.resolve() : second.waitForNextLog(count).then(() => undefined);
    const timeoutMs = opts.timeoutMs ?? STORM_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      allBack.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    const brokerCpuMs = cpuMs(second.proc.pid!);
    const fleetsCpuMs = fleets.reduce((sum, f, i) => sum + fleetCpuMs(f) - cpu0[i]!, 0);
    const times = [...firstOpen.values()].map((t) => t - restartedAt);
    const sessions = await sessionsOf(second);
    const stats: FleetStats[] = await Promise.all(fleets.map((f) => f.stats()));
    const connectErrors: Record<string, number> = {};
    for (const s of stats) for (const [k, v] of Object.entries(s.connectErrors)) connectErrors[k] = (connectErrors[k] ?? 0) + v;
    const metrics = await second.metrics();
    const shed = /^baton_broker_connections_shed_total (\d+)/m.exec(metrics)?.[1];
    return {
      scenario: 'storm',
      nodes: n,
      back: sessions,
      recovery_s: timedOut ? null : round(Math.max(...times) / 1000),
      back_after_s: Object.fromEntries(MARKS_S.map((s) => [s, times.filter((t) => t <= s * 1000).length])),
      crashes,
      downtime_s: round((restartedAt - killedAt) / 1000),
      broker_listening_s: round((listeningAt - restartedAt) / 1000),
      connect_errors: connectErrors,
      ...(shed !== undefined ? { connections_shed: Number(shed) } : {}),
      broker_cpu_s: round(brokerCpuMs / 1000),
      fleet_cpu_s: round(fleetsCpuMs / 1000),
      fleets: fleets.length,
    };
  } finally {
    stopping = true;
    await Promise.all(fleets.map((f) => f.stop()));
    await second?.stop();
    await first?.stop();
  }
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
