// `npm run bench:fabric -- --agents 50000 --workers 2`: N real agent sessions (the fleet simulator,
// several processes under the open-file limit) on one `baton broker --workers W` whose workers form
// a fabric on a private Redis. Prints one JSON line: how long until every agent is connected, the
// workers' RSS per session, and, after one worker is SIGKILLed, how long until every agent is back
// (the supervisor restarts the worker; its agents reconnect to whichever worker takes them).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ServiceProcess } from '../test/helpers/broker.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { fleetCpuMs, issueFleetCerts, startFleet, type Fleet } from '../test/fleet/fleet.ts';
import { BATON_BIN, cpuMs, makeBenchPki, rssMb } from './fixtures.ts';
import { round } from './harness.ts';

const { values: args } = parseArgs({ options: { agents: { type: 'string', default: '50000' }, workers: { type: 'string', default: '2' } } });
const N = Number(args.agents);
const W = Number(args.workers);
const SHM_DIR = '/dev/shm';
/** How often the fleet's connected count is read while waiting (a benchmark's measurement, not a test). */
const POLL_MS = 250;
/** The longest any phase may take before the bench gives up. */
const PHASE_LIMIT_MS = 15 * 60_000;
/** Local ports left for everything else on the machine. */
const LOCAL_PORT_MARGIN = 2_000;

// Every session is a connection from 127.0.0.1 to one port: each needs its own local port.
const [portLo, portHi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
if (portHi - portLo < N + LOCAL_PORT_MARGIN) {
  process.stderr.write(`bench:fabric: ${N} sessions need more local ports than net.ipv4.ip_local_port_range gives (${portLo}-${portHi}); raise it, e.g. sysctl -w net.ipv4.ip_local_port_range="1024 65535"\n`);
  process.exit(2);
}

const pki = await makeBenchPki(0);
const work = mkdtempSync(join(tmpdir(), 'baton-fabric-bench-'));
const redis = await startRedis();
let supervisor: ServiceProcess | null = null;
let fleet: Fleet | null = null;
try {
  const names = Array.from({ length: N }, (_, i) => `node${String(i).padStart(6, '0')}`);
  const certsT0 = performance.now();
  await issueFleetCerts(pki.dir, names);
  const certsS = (performance.now() - certsT0) / 1000;

  const config = join(work, 'broker.json');
  writeFileSync(config, JSON.stringify({
    host: '127.0.0.1', port: 0, 'ssl-ca-cert': pki.paths.caCert, 'ssl-cert': pki.paths.cert('broker'), 'ssl-key': pki.paths.key('broker'),
    'log-level': 'info', fabric: { redis: `redis://127.0.0.1:${redis.port}`, 'broker-id': 'bench' },
    // Every simulated agent connects from 127.0.0.1, as a whole fleet behind one NAT address would.
    'max-pending-per-source': 0,
  }));
  supervisor = new ServiceProcess(spawn(process.execPath, [BATON_BIN, 'broker', '--workers', String(W), '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const listening = await supervisor.waitForLog((l) => l.msg === 'broker workers listening');
  const port = listening.port as number;
  const pids = () => supervisor!.logs.filter((l) => l.msg === 'broker worker listening').reduce((m, l) => m.set(l.worker as number, l.worker_pid as number), new Map<number, number>());
  const workerRss = () => [...pids().values()].reduce((sum, pid) => sum + rssMb(pid), 0);
  const rss0 = workerRss();

  const connected = async () => (await fleet!.stats()).connected;
  const until = async (pred: (n: number) => boolean, what: string) => {
    const limit = performance.now() + PHASE_LIMIT_MS;
    for (;;) {
      const n = await connected();
      if (pred(n)) return n;
      if (performance.now() > limit) throw new Error(`${what}: still ${n} of ${N} after ${PHASE_LIMIT_MS} ms`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  };

  const t0 = performance.now();
  const brokerCpu0 = [...pids().values()].reduce((s, pid) => s + cpuMs(pid), 0);
  fleet = await startFleet({
    pkiDir: pki.dir, names, brokerUris: [`wss://127.0.0.1:${port}/pcp2/`], inMemoryTask: true, reconnect: 'default',
    ...(existsSync(SHM_DIR) ? { parentDir: SHM_DIR } : {}),
  });
  await until((n) => n === N, 'connecting');
  const connectS = (performance.now() - t0) / 1000;
  const brokerCpuConnect = [...pids().values()].reduce((s, pid) => s + cpuMs(pid), 0) - brokerCpu0;
  const rssPerSessionKb = ((workerRss() - rss0) * 1024) / N;

  // One worker SIGKILLed: until every agent is back on the (restarted) workers.
  const victim = pids().get(1)!;
  const restarted = supervisor.waitForNextLog((l) => l.msg === 'broker worker listening' && l.worker === 1);
  const t1 = performance.now();
  process.kill(victim, 'SIGKILL');
  await until((n) => n < N, 'noticing the SIGKILL');
  await restarted;
  await until((n) => n === N, 'reconnecting');
  const backS = (performance.now() - t1) / 1000;

  console.log(JSON.stringify({
    bench: 'fabric',
    agents: N,
    workers: W,
    fleet_processes: fleet.procs.length,
    certificates_s: round(certsS, 1),
    all_connected_s: round(connectS, 1),
    connects_per_s: Math.round(N / connectS),
    broker_cpu_ms_per_session: round(brokerCpuConnect / N, 3),
    fleet_cpu_ms_per_session: round(fleetCpuMs(fleet) / N, 3),
    broker_rss_kb_per_session: round(rssPerSessionKb, 1),
    worker_killed_all_back_s: round(backS, 1),
  }));
} finally {
  await fleet?.stop();
  await supervisor?.stop();
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
}
