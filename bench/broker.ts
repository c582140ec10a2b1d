// `npm run bench:broker [-- options]`: the broker's routing throughput and latency over TLS, an
// optional comparison with nats-server running the same harness, and idle-session memory.
// `--pcp 2` (default), `1` (v1 controllers and agents) or `mixed` (v2 controllers, v1 agents)
// prints one JSON line (with --vs-nats: the Baton line, the NATS line, then the ratio);
// `--pcp all` runs v2, v1 and mixed one after another and prints one line comparing them.
// `--fabric 2` starts a private Redis and two brokers in a fabric on it, and runs the load twice:
// sender and receiver on broker A, then senders on A and receivers on B (replies cross back); one
// JSON line with both and the ratio. `--fabric-phase same|cross` runs one of them only, and
// `--cpu-prof-dir DIR` writes a CPU profile of broker A there (node --cpu-prof).
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { decodeV1, encodeV1, expiresIn, v1JsonData } from '../protocol/pcp-v1.ts';
import { associateRequest, decodeAssociateResponse } from '../protocol/pcp-v1-broker.ts';
import { BrokerMessageType } from '../protocol/message-types.ts';
import { jsonTransport, round, runLoad, type BenchMessage, type LoadOptions, type MessageEndpoint, type MessageTransport } from './harness.ts';
import { AGENT_CN, CONTROLLER_CN_PREFIX, cpuMs, makeBenchPki, rssMb, startBenchFabric, startBrokerChild, type BenchFabric, type BenchPki } from './fixtures.ts';
import { natsTransport, startNatsServer } from './nats.ts';

const { values: args } = parseArgs({
  options: {
    pairs: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    size: { type: 'string', default: '1024' },
    window: { type: 'string', default: '8' },
    rate: { type: 'string', default: '0' },
    'vs-nats': { type: 'boolean', default: false },
    idle: { type: 'string' },
    pcp: { type: 'string', default: '2' },
    fabric: { type: 'string' },
    'fabric-phase': { type: 'string', default: 'both' },
    'cpu-prof-dir': { type: 'string' },
  },
});

const PCP_MODES = ['2', '1', 'mixed'] as const;
type PcpMode = (typeof PCP_MODES)[number];
if (args.pcp !== 'all' && !(PCP_MODES as readonly string[]).includes(args.pcp)) {
  throw new Error(`--pcp ${args.pcp}: expected 2, 1, mixed or all`);
}
if (args.fabric !== undefined) {
  if (args.fabric !== '2') throw new Error(`--fabric ${args.fabric}: only 2 brokers are supported`);
  if (args.pcp === 'all' || args['vs-nats'] || args.idle) throw new Error('--fabric goes with neither --pcp all, --vs-nats nor --idle');
  if (!['both', 'same', 'cross'].includes(args['fabric-phase'])) throw new Error(`--fabric-phase ${args['fabric-phase']}: expected both, same or cross`);
}
/** `expires` of the benchmark's v1 messages. */
const V1_TTL_MS = 60_000;

const load: LoadOptions = {
  pairs: Number(args.pairs),
  seconds: Number(args.seconds),
  warmupSeconds: Number(args.warmup),
  sizeBytes: Number(args.size),
  window: Number(args.window),
  rate: Number(args.rate),
};

function connectWs(url: string, pki: BenchPki, name: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { ...pki.identity(name), perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** A PCP v2 session: JSON text frames. */
async function openV2(url: string, pki: BenchPki, name: string, address: string): Promise<MessageEndpoint> {
  const ws = await connectWs(url, pki, name);
  return {
    address,
    send: (msg) => ws.send(JSON.stringify(msg)),
    onMessage: (handler) => ws.on('message', (data: Buffer) => handler(JSON.parse(data.toString()) as BenchMessage)),
    close: async () => {
      ws.terminate();
    },
  };
}

/**
 * A PCP v1 session: associates (associate_request, waits for a successful associate_response),
 * then sends and reads binary v1 frames as pxp-agent does: `targets`, `expires`, data in its own
 * chunk, no `in-reply-to` (the broker correlates replies by transaction id).
 */
async function openV1(url: string, pki: BenchPki, name: string, address: string): Promise<MessageEndpoint> {
  const ws = await connectWs(url, pki, name);
  const request = associateRequest(address, V1_TTL_MS);
  await new Promise<void>((resolve, reject) => {
    const onMessage = (data: Buffer) => {
      const msg = decodeV1(data);
      if (msg.envelope.message_type !== BrokerMessageType.associateResponse) return;
      const res = decodeAssociateResponse(v1JsonData(msg));
      if (res.id !== request.envelope.id) return;
      ws.off('message', onMessage);
      if (res.success) resolve();
      else reject(new Error(`association of ${address} refused: ${res.reason ?? 'no reason given'}`));
    };
    ws.on('message', onMessage);
    ws.once('close', (code) => reject(new Error(`connection of ${address} closed (${code}) before its association`)));
    ws.send(encodeV1(request));
  });
  return {
    address,
    send: (msg) => {
      const envelope = { id: msg.id, message_type: msg.message_type, expires: expiresIn(V1_TTL_MS), targets: [msg.target], sender: msg.sender };
      ws.send(encodeV1({ envelope, data: JSON.stringify(msg.data) }));
    },
    onMessage: (handler) =>
      ws.on('message', (data: Buffer) => {
        const { envelope, data: bytes } = decodeV1(data);
        handler({
          id: envelope.id,
          message_type: envelope.message_type,
          target: envelope.targets[0] ?? address,
          sender: envelope.sender,
          data: JSON.parse(bytes!.toString()) as BenchMessage['data'],
        });
      }),
    close: async () => {
      ws.terminate();
    },
  };
}

/** Controllers and agents in the PCP versions `mode` names; `mixed` is v2 controllers and v1 agents. */
function pcpTransport(pki: BenchPki, port: number, mode: PcpMode): MessageTransport {
  const url = `wss://127.0.0.1:${port}`;
  const controllerV1 = mode === '1';
  const agentV1 = mode !== '2';
  return {
    requester: (i) => {
      const cn = `${CONTROLLER_CN_PREFIX}${i}`;
      const address = `pcp://${cn}/controller`;
      return controllerV1 ? openV1(`${url}/pcp/v1.0/controller`, pki, cn, address) : openV2(`${url}/pcp2/controller`, pki, cn, address);
    },
    responder: (i) => {
      const address = `pcp://${AGENT_CN}/r${i}`;
      return agentV1 ? openV1(`${url}/pcp/`, pki, AGENT_CN, address) : openV2(`${url}/pcp2/r${i}`, pki, AGENT_CN, address);
    },
  };
}

async function benchBaton(pki: BenchPki, mode: PcpMode): Promise<Record<string, unknown>> {
  const broker = await startBrokerChild(pki);
  const pid = broker.proc.pid!;
  const cpu0 = cpuMs(pid);
  const client0 = cpuMs(process.pid);
  const t0 = Date.now();
  const result = await runLoad(pcpTransport(pki, broker.port, mode), load);
  const brokerCpuMs = cpuMs(pid) - cpu0;
  const brokerCpuPct = round((100 * brokerCpuMs) / (Date.now() - t0), 1);
  const clientCpuPct = round((100 * (cpuMs(process.pid) - client0)) / (Date.now() - t0), 1);
  const rss = round(rssMb(pid), 1);
  await broker.stop();
  return {
    bench: 'broker',
    server: 'baton',
    pcp: mode,
    ...result,
    rss_mb: rss,
    server_cpu_pct: brokerCpuPct,
    client_cpu_pct: clientCpuPct,
    // Broker CPU over the whole run (connections and warm-up included) per routed message.
    server_cpu_us_per_msg: round((1000 * brokerCpuMs) / (2 * result.round_trips_total), 1),
    ...loadShape(),
  };
}

/** v2, v1 and mixed one after another (a broker each), as one line with the ratios to v2. */
async function benchAllPcp(pki: BenchPki): Promise<Record<string, unknown>> {
  const runs: Partial<Record<PcpMode, Record<string, unknown>>> = {};
  for (const mode of PCP_MODES) runs[mode] = await benchBaton(pki, mode);
  const pick = (r: Record<string, unknown>) => ({
    msgs_per_s: r.msgs_per_s,
    p50_ms: r.p50_ms,
    p99_ms: r.p99_ms,
    server_cpu_pct: r.server_cpu_pct,
    client_cpu_pct: r.client_cpu_pct,
    server_cpu_us_per_msg: r.server_cpu_us_per_msg,
  });
  const ratio = (mode: PcpMode, key: string) => round((runs[mode]![key] as number) / (runs['2']![key] as number), 3);
  const vsV2 = (mode: PcpMode) => ({
    msgs_per_s_ratio: ratio(mode, 'msgs_per_s'),
    p99_ratio: ratio(mode, 'p99_ms'),
    server_cpu_per_msg_ratio: ratio(mode, 'server_cpu_us_per_msg'),
  });
  return {
    bench: 'broker-pcp',
    v2: pick(runs['2']!),
    v1: pick(runs['1']!),
    mixed: pick(runs.mixed!),
    v1_vs_v2: vsV2('1'),
    mixed_vs_v2: vsV2('mixed'),
    // The target: v1 and mixed within 10% of v2.
    within_10pct: vsV2('1').msgs_per_s_ratio >= 0.9 && vsV2('mixed').msgs_per_s_ratio >= 0.9,
    ...loadShape(),
  };
}

async function benchNats(pki: BenchPki): Promise<Record<string, unknown>> {
  const nats = await startNatsServer(pki);
  if (!nats) return { bench: 'broker', server: 'nats', error: 'nats-server is not on PATH (Debian: apt-get install nats-server)' };
  const cpu0 = cpuMs(nats.pid);
  const client0 = cpuMs(process.pid);
  const t0 = Date.now();
  const result = await runLoad(jsonTransport(natsTransport(pki, nats.port)), load);
  const cpuPct = round((100 * (cpuMs(nats.pid) - cpu0)) / (Date.now() - t0), 1);
  const clientCpuPct = round((100 * (cpuMs(process.pid) - client0)) / (Date.now() - t0), 1);
  const rss = round(rssMb(nats.pid), 1);
  await nats.stop();
  return { bench: 'broker', server: 'nats', ...result, rss_mb: rss, server_cpu_pct: cpuPct, client_cpu_pct: clientCpuPct, tls: true, ...loadShape() };
}

type FabricPhase = 'same' | 'cross';

/**
 * One run of the load on the fabric: requesters on broker A, responders on A (`same`) or B
 * (`cross`). Each session counts as open once the directory has it on its broker; after the run,
 * the directory is empty again (so the next run's sessions, same URIs, are not released by these closes).
 */
async function fabricPhase(pki: BenchPki, fab: BenchFabric, mode: PcpMode, phase: FabricPhase): Promise<Record<string, unknown>> {
  const [a, b] = fab.brokers as [BenchFabric['brokers'][0], BenchFabric['brokers'][0]];
  const receiver = phase === 'cross' ? b : a;
  // Broker refusals (error_message) are counted, not taken for responses: a closed loop loses that slot.
  let refused = 0;
  const placed = (open: (i: number) => Promise<MessageEndpoint>, broker: string) => async (i: number): Promise<MessageEndpoint> => {
    const e = await open(i);
    await fab.directoryUntil((dir) => dir[e.address] === broker, `${e.address} on ${broker}`);
    return {
      ...e,
      onMessage: (handler) => e.onMessage((msg) => (msg.message_type === BrokerMessageType.errorMessage ? refused++ : handler(msg))),
    };
  };
  const transport: MessageTransport = {
    requester: placed(pcpTransport(pki, a.child.port, mode).requester, a.id),
    responder: placed(pcpTransport(pki, receiver.child.port, mode).responder, receiver.id),
  };
  const pids = fab.brokers.map((x) => x.child.proc.pid!);
  const cpu0 = pids.map(cpuMs);
  const redis0 = await fab.redisCpuMs();
  const client0 = cpuMs(process.pid);
  const t0 = Date.now();
  const result = await runLoad(transport, load);
  const elapsedMs = Date.now() - t0;
  const brokerCpuMs = pids.map((pid, i) => cpuMs(pid) - cpu0[i]!);
  const redisCpuMs = (await fab.redisCpuMs()) - redis0;
  const clientCpuMs = cpuMs(process.pid) - client0;
  await fab.directoryUntil((dir) => Object.keys(dir).length === 0, 'no sessions');
  // CPU over the whole run (connections and warm-up included) per routed message (two per round trip).
  const msgs = 2 * result.round_trips_total;
  const perMsg = (ms: number) => round((1000 * ms) / msgs, 1);
  const pct = (ms: number) => round((100 * ms) / elapsedMs, 1);
  const byBroker = (f: (ms: number) => number) => Object.fromEntries(fab.brokers.map((x, i) => [x.id, f(brokerCpuMs[i]!)]));
  return {
    msgs_per_s: result.msgs_per_s,
    p50_ms: result.p50_ms,
    p99_ms: result.p99_ms,
    round_trips: result.round_trips,
    refused,
    broker_cpu_us_per_msg: byBroker(perMsg),
    broker_cpu_pct: byBroker(pct),
    redis_cpu_us_per_msg: perMsg(redisCpuMs),
    redis_cpu_pct: pct(redisCpuMs),
    client_cpu_pct: pct(clientCpuMs),
  };
}

/** Two brokers in a fabric on a private Redis: the load within broker A, then across A and B. */
async function benchFabric(pki: BenchPki, mode: PcpMode): Promise<Record<string, unknown>> {
  const profile = args['cpu-prof-dir'] ? [['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof-dir']}`]] : [];
  const fab = await startBenchFabric(pki, ['broker-a', 'broker-b'], profile);
  const phases: FabricPhase[] = args['fabric-phase'] === 'both' ? ['same', 'cross'] : [args['fabric-phase'] as FabricPhase];
  const runs: Partial<Record<FabricPhase, Record<string, unknown>>> = {};
  try {
    for (const phase of phases) runs[phase] = await fabricPhase(pki, fab, mode, phase);
  } finally {
    await fab.stop();
  }
  const { same, cross } = runs;
  const ratio = (key: string) => round((cross![key] as number) / (same![key] as number), 3);
  return {
    bench: 'broker-fabric',
    brokers: 2,
    pcp: mode,
    ...runs,
    ...(same && cross ? { cross_vs_same: { msgs_per_s_ratio: ratio('msgs_per_s'), p99_ratio: ratio('p99_ms') } } : {}),
    // The targets: cross-broker at least half the same-broker throughput (closed loop);
    // p99 under 10 ms at a fixed rate (5,000 msgs/s).
    ...(same && cross && load.rate === 0 ? { cross_at_least_half: ratio('msgs_per_s') >= 0.5 } : {}),
    ...(cross && load.rate > 0 ? { cross_p99_under_10ms: (cross.p99_ms as number) < 10 } : {}),
    ...loadShape(),
  };
}

function loadShape() {
  return { pairs: load.pairs, size_bytes: load.sizeBytes, window: load.window, rate: load.rate, seconds: load.seconds };
}

/**
 * How a worker's start-up (node, tsx, its modules) costs, in CPU ms: a worker asked for no
 * sessions reports ready at once, so its CPU time is what every worker spends before connecting.
 */
async function idleWorkerStartupCpuMs(spawnWorker: (first: number, count: number) => ChildProcess): Promise<number> {
  const child = spawnWorker(0, 0);
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`idle worker exited with ${String(code)}`)));
  });
  const ms = cpuMs(child.pid!);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin!.end();
  await exited;
  return ms;
}

async function benchIdle(pki: BenchPki, sessions: number): Promise<Record<string, unknown>> {
  const broker = await startBrokerChild(pki, {}, ['--expose-gc', '--import', new URL('./gc-preload.mjs', import.meta.url).pathname]);
  const pid = broker.proc.pid!;
  // The broker's own view of the storm: the first and the last 'session opened' (pino's ISO time).
  let firstOpenMs = 0;
  let lastOpenMs = 0;
  createInterface({ input: broker.proc.stdout! }).on('line', (line) => {
    if (!line.includes('"session opened"')) return;
    const t = Date.parse((JSON.parse(line) as { time: string }).time);
    if (firstOpenMs === 0) firstOpenMs = t;
    lastOpenMs = t;
  });
  let heap = 0;
  const collect = async () => {
    const done = broker.nextLog((l) => (l.msg === 'gc done' ? ((heap = (l.memory as { heapUsed: number }).heapUsed), true) : false));
    broker.proc.kill('SIGUSR2');
    await done;
    return heap;
  };
  const spawnWorker = (first: number, count: number) =>
    spawn(
      process.execPath,
      ['--import', 'tsx', new URL('./idle-worker.ts', import.meta.url).pathname, `wss://127.0.0.1:${broker.port}`,
        pki.paths.cert(AGENT_CN), pki.paths.key(AGENT_CN), pki.paths.caCert, String(first), String(count)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
  const workerStartupCpuMs = await idleWorkerStartupCpuMs(spawnWorker);
  const heapBefore = await collect();
  const before = rssMb(pid);
  const PER_WORKER = 2500; // each process stays well below the per-process open-file limit
  const workers = [];
  const brokerCpu0 = cpuMs(pid);
  const started = Date.now();
  for (let first = 0; first < sessions; first += PER_WORKER) {
    const child = spawnWorker(first, Math.min(PER_WORKER, sessions - first));
    workers.push({ child, ready: new Promise<number>((resolve, reject) => {
      // The worker's CPU time when it has opened its sessions (it is idle from then on).
      createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('ready') && resolve(cpuMs(child.pid!)));
      child.once('exit', (code) => reject(new Error(`idle worker exited with ${String(code)}`)));
    }) });
  }
  const workerCpuMs = await Promise.all(workers.map((w) => w.ready));
  const connectS = (Date.now() - started) / 1000;
  const brokerCpuMs = cpuMs(pid) - brokerCpu0;
  const clientCpuMs = workerCpuMs.reduce((sum, ms) => sum + Math.max(0, ms - workerStartupCpuMs), 0);
  const brokerWindowS = (lastOpenMs - firstOpenMs) / 1000;
  const heapAfter = await collect();
  const after = rssMb(pid);
  for (const w of workers) w.child.stdin!.end();
  await broker.stop();
  return {
    bench: 'broker-idle',
    sessions,
    rss_mb_before: round(before, 1),
    rss_mb: round(after, 1),
    rss_kb_per_session: round(((after - before) * 1024) / sessions, 1),
    heap_kb_per_session: round((heapAfter - heapBefore) / 1024 / sessions, 1),
    // From the first worker's spawn to the last worker's "ready" (worker start-up included).
    connect_s: round(connectS, 2),
    connects_per_s: Math.round(sessions / connectS),
    // From the broker's first to its last 'session opened': the rate the broker sustained.
    broker_connects_per_s: brokerWindowS > 0 ? Math.round((sessions - 1) / brokerWindowS) : null,
    // CPU (user + system, 10 ms ticks) over the connect phase, per new session: the broker's
    // (TLS handshake, upgrade, session set-up, its log line), and the client workers' (their
    // handshakes and upgrades; each worker's start-up, measured once on a worker with no
    // sessions, subtracted).
    broker_cpu_ms_per_session: round(brokerCpuMs / sessions, 3),
    client_cpu_ms_per_session: round(clientCpuMs / sessions, 3),
    client_workers: workers.length,
    client_worker_startup_cpu_ms: workerStartupCpuMs,
  };
}

const pki = await makeBenchPki(args.idle ? 0 : load.pairs);
try {
  if (args.idle) {
    console.log(JSON.stringify(await benchIdle(pki, Number(args.idle))));
  } else if (args.fabric !== undefined) {
    console.log(JSON.stringify(await benchFabric(pki, args.pcp as PcpMode)));
  } else if (args.pcp === 'all') {
    console.log(JSON.stringify(await benchAllPcp(pki)));
  } else {
    const baton = await benchBaton(pki, args.pcp as PcpMode);
    console.log(JSON.stringify(baton));
    if (args['vs-nats']) {
      const nats = await benchNats(pki);
      console.log(JSON.stringify(nats));
      if (typeof nats.msgs_per_s === 'number') {
        console.log(JSON.stringify({
          bench: 'broker-vs-nats',
          pcp: args.pcp,
          msgs_per_s_ratio: round((baton.msgs_per_s as number) / nats.msgs_per_s, 3),
          p99_ratio: round((baton.p99_ms as number) / (nats.p99_ms as number), 3),
        }));
      }
    }
  }
} finally {
  rmSync(pki.dir, { recursive: true, force: true });
}
