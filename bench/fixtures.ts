// What the broker benchmarks share: a throw-away PKI, a broker child process, /proc readings.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { initCa, issueCert, pkiPaths, type PkiPaths } from '../lib/pki.ts';
import { ensureBuilt } from '../scripts/freshness.mjs';
import { startRedis, type TestRedis } from '../test/helpers/redis.ts';
import { fabricKeys } from '../broker/fabric/keys.ts';

export const BATON_BIN = new URL('../bin/baton.mjs', import.meta.url).pathname;

// Benchmarks measure the built `baton` (dist/), as users run it.
await ensureBuilt();
export const CONTROLLER_CN_PREFIX = 'bench-ctl-';
export const AGENT_CN = 'bench-agent';

export interface BenchPki {
  dir: string;
  paths: PkiPaths;
  identity(name: string): { cert: Buffer; key: Buffer; ca: Buffer };
}

export async function makeBenchPki(controllers: number): Promise<BenchPki> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  await initCa(dir);
  await issueCert(dir, 'broker', { altNames: ['localhost', '127.0.0.1'] });
  await issueCert(dir, AGENT_CN);
  for (let i = 0; i < controllers; i++) await issueCert(dir, `${CONTROLLER_CN_PREFIX}${i}`);
  const paths = pkiPaths(dir);
  const ca = readFileSync(paths.caCert);
  return { dir, paths, identity: (name) => ({ cert: readFileSync(paths.cert(name)), key: readFileSync(paths.key(name)), ca }) };
}

export interface BrokerChild {
  proc: ChildProcess;
  port: number;
  /** Resolves with the next log line that matches. */
  nextLog(pred: (l: { msg: string; [k: string]: unknown }) => boolean): Promise<void>;
  stop(): Promise<void>;
}

export async function startBrokerChild(pki: BenchPki, extra: Record<string, unknown> = {}, extraNodeFlags: string[] = []): Promise<BrokerChild> {
  const config = join(pki.dir, 'broker.json');
  writeFileSync(
    config,
    JSON.stringify({
      host: '127.0.0.1',
      port: 0,
      'ssl-ca-cert': pki.paths.caCert,
      'ssl-cert': pki.paths.cert('broker'),
      'ssl-key': pki.paths.key('broker'),
      'controller-cns': [`${CONTROLLER_CN_PREFIX}*`],
      'log-level': 'info',
      ...extra,
    }),
  );
  // BATON_BENCH_NODE_FLAGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the broker.
  const nodeFlags = [...(process.env.BATON_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean), ...extraNodeFlags];
  const proc = spawn(process.execPath, [...nodeFlags, BATON_BIN, 'broker', '--config', config], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let waiters: { pred: (l: { msg: string }) => boolean; resolve: () => void }[] = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let l: { msg: string };
    try {
      l = JSON.parse(line) as { msg: string };
    } catch {
      return; // not a log line
    }
    waiters = waiters.filter((w) => (w.pred(l) ? (w.resolve(), false) : true));
  });
  const nextLog = (pred: (l: { msg: string; port?: number }) => boolean) =>
    new Promise<void>((resolve) => waiters.push({ pred, resolve }));
  let port = 0;
  await Promise.race([
    nextLog((l) => (l.msg === 'listening' ? ((port = l.port!), true) : false)),
    new Promise((_, reject) => proc.once('exit', (code) => reject(new Error(`broker exited with ${String(code)}`)))),
  ]);
  return {
    proc,
    port,
    nextLog,
    stop: () =>
      new Promise((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/**
 * The built orchestrator as a child process with `configFile`; resolves with its port once it
 * listens. `onLog` sees every JSON log line it prints (the config's log-level must be info or
 * lower, for its 'listening' line).
 */
export async function startOrchestratorChild(configFile: string, onLog: (l: { msg: string; [k: string]: unknown }) => void = () => {}, nodeFlags: string[] = []): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [...nodeFlags, BATON_BIN, 'orchestrator', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const l = JSON.parse(line) as { msg: string; port?: number };
      if (l.msg === 'listening') resolve(l.port!);
      onLog(l);
    });
    proc.once('exit', (code) => reject(new Error(`orchestrator exited with ${String(code)}`)));
  });
  return { proc, port };
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU time (user + system) of a process in milliseconds. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** The fabric's key prefix in the benchmark's private Redis. */
export const BENCH_FABRIC_PREFIX = 'benchfabric';
/** Bound on waiting for the fabric directory to show what a benchmark step needs. */
const FABRIC_DIRECTORY_WAIT_MS = 30_000;

export interface BenchFabric {
  redis: TestRedis;
  /** The brokers, named by `ids` in order. */
  brokers: { id: string; child: BrokerChild }[];
  /** Resolves once `pred` holds of the session directory (URI → broker id); woken by keyspace notices, bounded. */
  directoryUntil(pred: (dir: Record<string, string>) => boolean, what: string): Promise<void>;
  /** Redis' own CPU time (INFO used_cpu_sys + used_cpu_user) in milliseconds. */
  redisCpuMs(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A private redis-server and one broker child per id, joined in a fabric on it. `nodeFlags[i]`
 * are extra node flags of broker i (e.g. `--cpu-prof`).
 */
export async function startBenchFabric(pki: BenchPki, ids: string[], nodeFlags: string[][] = []): Promise<BenchFabric> {
  const redis = await startRedis();
  const brokers: BenchFabric['brokers'] = [];
  const probe = new Redis(redis.url);
  const sub = new Redis(redis.url);
  const stop = async () => {
    for (const b of brokers) await b.child.stop();
    probe.disconnect();
    sub.disconnect();
    await redis.stop();
  };
  try {
    const dirKey = fabricKeys(BENCH_FABRIC_PREFIX).sessions;
    await probe.config('SET', 'notify-keyspace-events', 'Kh');
    const wakers = new Set<() => void>();
    sub.on('message', () => {
      for (const wake of wakers) wake();
      wakers.clear();
    });
    await sub.subscribe(`__keyspace@0__:${dirKey}`);
    for (const [i, id] of ids.entries()) {
      const fabric = { redis: redis.url, 'broker-id': id, 'key-prefix': BENCH_FABRIC_PREFIX };
      // Brokers start one after another: each reads broker.json before the next rewrites it.
      brokers.push({ id, child: await startBrokerChild(pki, { fabric }, nodeFlags[i] ?? []) });
    }
    const directoryUntil = async (pred: (dir: Record<string, string>) => boolean, what: string) => {
      const deadline = Date.now() + FABRIC_DIRECTORY_WAIT_MS;
      for (;;) {
        const changed = new Promise<void>((resolve) => wakers.add(resolve));
        if (pred(await probe.hgetall(dirKey))) return;
        const left = deadline - Date.now();
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the fabric directory did not show ${what} within ${FABRIC_DIRECTORY_WAIT_MS} ms`)), Math.max(0, left));
        });
        try {
          await Promise.race([changed, expired]);
        } finally {
          clearTimeout(timer);
        }
      }
    };
    const redisCpuMs = async () => {
      const info = await probe.info('cpu');
      const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
      return 1000 * (field('used_cpu_sys') + field('used_cpu_user'));
    };
    return { redis, brokers, directoryUntil, redisCpuMs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
