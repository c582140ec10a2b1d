// `npm run bench:broker [-- options]`: the broker's routing throughput and latency over TLS, an
// optional comparison with nats-server running the same harness, and idle-session memory.
// Prints one JSON line (with --vs-nats: the Baton line, the NATS line, then the ratio).
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { delay, round, runLoad, type Endpoint, type LoadOptions, type Transport } from './harness.ts';
import { AGENT_CN, CONTROLLER_CN_PREFIX, cpuMs, makeBenchPki, rssMb, startBrokerChild, type BenchPki } from './fixtures.ts';
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
  },
});

const load: LoadOptions = {
  pairs: Number(args.pairs),
  seconds: Number(args.seconds),
  warmupSeconds: Number(args.warmup),
  sizeBytes: Number(args.size),
  window: Number(args.window),
  rate: Number(args.rate),
};

function pcpTransport(pki: BenchPki, port: number): Transport {
  const url = `wss://127.0.0.1:${port}`;
  const open = async (path: string, name: string, address: string): Promise<Endpoint> => {
    const ws = new WebSocket(`${url}${path}`, { ...pki.identity(name), perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return {
      address,
      send: (_to, text) => ws.send(text),
      onMessage: (handler) => ws.on('message', (data: Buffer) => handler(data.toString())),
      close: async () => {
        ws.terminate();
      },
    };
  };
  return {
    requester: (i) => open('/pcp2/controller', `${CONTROLLER_CN_PREFIX}${i}`, `pcp://${CONTROLLER_CN_PREFIX}${i}/controller`),
    responder: (i) => open(`/pcp2/r${i}`, AGENT_CN, `pcp://${AGENT_CN}/r${i}`),
  };
}

async function benchBaton(pki: BenchPki): Promise<Record<string, unknown>> {
  const broker = await startBrokerChild(pki);
  const pid = broker.proc.pid!;
  const cpu0 = cpuMs(pid);
  const client0 = cpuMs(process.pid);
  const t0 = Date.now();
  const result = await runLoad(pcpTransport(pki, broker.port), load);
  const brokerCpuPct = round((100 * (cpuMs(pid) - cpu0)) / (Date.now() - t0), 1);
  const clientCpuPct = round((100 * (cpuMs(process.pid) - client0)) / (Date.now() - t0), 1);
  const rss = round(rssMb(pid), 1);
  await broker.stop();
  return { bench: 'broker', server: 'baton', ...result, rss_mb: rss, server_cpu_pct: brokerCpuPct, client_cpu_pct: clientCpuPct, ...loadShape() };
}

async function benchNats(pki: BenchPki): Promise<Record<string, unknown>> {
  const nats = await startNatsServer(pki);
  if (!nats) return { bench: 'broker', server: 'nats', error: 'nats-server is not on PATH (Debian: apt-get install nats-server)' };
  const cpu0 = cpuMs(nats.pid);
  const client0 = cpuMs(process.pid);
  const t0 = Date.now();
  const result = await runLoad(natsTransport(pki, nats.port), load);
  const cpuPct = round((100 * (cpuMs(nats.pid) - cpu0)) / (Date.now() - t0), 1);
  const clientCpuPct = round((100 * (cpuMs(process.pid) - client0)) / (Date.now() - t0), 1);
  const rss = round(rssMb(nats.pid), 1);
  await nats.stop();
  return { bench: 'broker', server: 'nats', ...result, rss_mb: rss, server_cpu_pct: cpuPct, client_cpu_pct: clientCpuPct, tls: true, ...loadShape() };
}

function loadShape() {
  return { pairs: load.pairs, size_bytes: load.sizeBytes, window: load.window, rate: load.rate, seconds: load.seconds };
}

async function benchIdle(pki: BenchPki, sessions: number): Promise<Record<string, unknown>> {
  const broker = await startBrokerChild(pki, {}, ['--expose-gc', '--import', new URL('./gc-preload.mjs', import.meta.url).pathname]);
  const pid = broker.proc.pid!;
  let heap = 0;
  const collect = async () => {
    const done = broker.nextLog((l) => (l.msg === 'gc done' ? ((heap = (l.memory as { heapUsed: number }).heapUsed), true) : false));
    broker.proc.kill('SIGUSR2');
    await done;
    return heap;
  };
  const heapBefore = await collect();
  const before = rssMb(pid);
  const PER_WORKER = 2500; // each process stays well below the per-process open-file limit
  const workers = [];
  const started = Date.now();
  for (let first = 0; first < sessions; first += PER_WORKER) {
    const count = Math.min(PER_WORKER, sessions - first);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', new URL('./idle-worker.ts', import.meta.url).pathname, `wss://127.0.0.1:${broker.port}`,
        pki.paths.cert(AGENT_CN), pki.paths.key(AGENT_CN), pki.paths.caCert, String(first), String(count)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    workers.push({ child, ready: new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`idle worker exited with ${String(code)}`)));
    }) });
  }
  await Promise.all(workers.map((w) => w.ready));
  const connectS = (Date.now() - started) / 1000;
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
    connect_s: round(connectS, 2),
    connects_per_s: Math.round(sessions / connectS),
  };
}

const pki = await makeBenchPki(args.idle ? 0 : load.pairs);
try {
  if (args.idle) {
    console.log(JSON.stringify(await benchIdle(pki, Number(args.idle))));
  } else {
    const baton = await benchBaton(pki);
    console.log(JSON.stringify(baton));
    if (args['vs-nats']) {
      const nats = await benchNats(pki);
      console.log(JSON.stringify(nats));
      if (typeof nats.msgs_per_s === 'number') {
        console.log(JSON.stringify({
          bench: 'broker-vs-nats',
          msgs_per_s_ratio: round((baton.msgs_per_s as number) / nats.msgs_per_s, 3),
          p99_ratio: round((baton.p99_ms as number) / (nats.p99_ms as number), 3),
        }));
      }
    }
  }
} finally {
  rmSync(pki.dir, { recursive: true, force: true });
}
