// Runs Puppet's real pxp-agent (1.15.23, from ../shared/interop/pxp-agent) against test brokers,
// with private spool, task cache, modules and log file. Interop tests only: when the folder is
// absent they skip (see `pxpAgentSkip`).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, copyFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestPki } from './pki.ts';

/** Where the interop build lives: `../shared/interop/pxp-agent` beside the repository, or `BATON_PXP_AGENT_DIR`. */
export const PXP_AGENT_DIR: string = process.env.BATON_PXP_AGENT_DIR
  ? resolve(process.env.BATON_PXP_AGENT_DIR)
  : fileURLToPath(new URL('../../../shared/interop/pxp-agent/', import.meta.url)).replace(/\/$/, '');

export const PXP_AGENT_BIN = join(PXP_AGENT_DIR, 'pxp-agent');
export const PXP_MODULE_PUPPET = join(PXP_AGENT_DIR, 'modules', 'pxp-module-puppet');

/** How long the agent may take from spawn to a connected (v2) or associated (v1) session. */
export const PXP_AGENT_CONNECT_TIMEOUT_MS = 30_000;
/** SIGTERM, then SIGKILL after this long. */
export const PXP_AGENT_STOP_GRACE_MS = 5_000;
const LOG_POLL_MS = 50;

/**
 * Logged by pxp-agent once `connect()` returned (for v2 the WebSocket is open; for v1 the
 * Associate Session response said success as well) and its connection monitor passed its checks
 * and started: from here it answers requests, and reconnects on its own.
 */
export const PXP_AGENT_CONNECTED_LOG = /Starting the monitor task/;

/** A skip message naming the folder when the real pxp-agent is not there, else false. */
export function pxpAgentSkip(): string | false {
  try {
    accessSync(PXP_AGENT_BIN, constants.X_OK);
    return false;
  } catch {
    return `Puppet's pxp-agent is not at ${PXP_AGENT_DIR} (../shared/interop/pxp-agent, or set BATON_PXP_AGENT_DIR): interop test skipped`;
  }
}

/** The broker URI pxp-agent expects: `/pcp/` for PCP v1, `/pcp2/` for v2 (it appends its client type to v2). */
export function pxpBrokerUri(port: number, version: '1' | '2' = '2', host = '127.0.0.1'): string {
  return `wss://${host}:${port}/${version === '1' ? 'pcp' : 'pcp2'}/`;
}

export interface PxpAgentDirs {
  root: string;
  spool: string;
  taskCache: string;
  modules: string;
  modulesConfig: string;
  logfile: string;
  config: string;
}

export interface StartPxpAgentOptions {
  pki: TestPki;
  /** The certificate CN, which is its identity: `pcp://<name>/agent`. */
  name: string;
  brokerUris: string[];
  /** Written to the config when given; left out, pxp-agent uses its own default ("1"). */
  pcpVersion?: '1' | '2';
  masterUris?: string[];
  /** Install pxp-module-puppet in the modules dir, with `puppet_bin` (default /usr/bin/puppet). */
  puppetModule?: boolean | { puppetBin: string };
  extraConfig?: Record<string, unknown>;
  /** Resolve only once connected (default true); false resolves right after the spawn. */
  waitConnected?: boolean;
}

export interface PxpAgentProcess {
  readonly pid: number;
  readonly dirs: PxpAgentDirs;
  readonly proc: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** The log file's text so far. */
  log(): string;
  /** Resolves with the first match in the log file (past or future); rejects after `timeoutMs` or when the agent exits. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Waits until `re` matches at least `n` times in the log file. */
  waitForLogCount(re: RegExp, n: number, timeoutMs?: number): Promise<void>;
  /** SIGTERM, SIGKILL after 5 s; resolves once it exited. Idempotent. Removes the temp dirs (log() keeps the last text). */
  stop(): Promise<void>;
  /** SIGKILL; resolves once it exited. Keeps the temp dirs (call stop() afterwards to remove them). */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of running) p.kill('SIGKILL');
  });
}

function pxpAgentDirs(): PxpAgentDirs {
  const root = mkdtempSync(join(tmpdir(), 'baton-pxp-agent-'));
  const dirs: PxpAgentDirs = {
    root,
    spool: join(root, 'spool'),
    taskCache: join(root, 'task-cache'),
    modules: join(root, 'modules'),
    modulesConfig: join(root, 'modules.d'),
    logfile: join(root, 'pxp-agent.log'),
    config: join(root, 'pxp-agent.conf'),
  };
  for (const d of [dirs.spool, dirs.taskCache, dirs.modules, dirs.modulesConfig]) mkdirSync(d);
  return dirs;
}

function installPuppetModule(dirs: PxpAgentDirs, puppetBin: string): void {
  const dest = join(dirs.modules, 'pxp-module-puppet');
  copyFileSync(PXP_MODULE_PUPPET, dest);
  chmodSync(dest, 0o755); // the source is read-only; pxp-agent needs to run it
  writeFileSync(join(dirs.modulesConfig, 'pxp-module-puppet.conf'), JSON.stringify({ puppet_bin: puppetBin }));
}

/** Spawns pxp-agent and (by default) waits until its log says it is connected. */
export async function startPxpAgent(opts: StartPxpAgentOptions): Promise<PxpAgentProcess> {
  const skip = pxpAgentSkip();
  if (skip) throw new Error(skip);
  await opts.pki.issue(opts.name);
  const dirs = pxpAgentDirs();
  if (opts.puppetModule) {
    installPuppetModule(dirs, typeof opts.puppetModule === 'object' ? opts.puppetModule.puppetBin : '/usr/bin/puppet');
  }
  writeFileSync(
    dirs.config,
    JSON.stringify({
      'broker-ws-uris': opts.brokerUris,
      ...(opts.pcpVersion === undefined ? {} : { 'pcp-version': opts.pcpVersion }),
      'ssl-ca-cert': opts.pki.ca,
      'ssl-cert': opts.pki.cert(opts.name),
      'ssl-key': opts.pki.key(opts.name),
      'master-uris': opts.masterUris ?? [],
      'modules-dir': dirs.modules,
      'modules-config-dir': dirs.modulesConfig,
      'spool-dir': dirs.spool,
      'task-cache-dir': dirs.taskCache,
      logfile: dirs.logfile,
      loglevel: 'debug',
      foreground: true,
      pidfile: join(dirs.root, 'pxp-agent.pid'),
      // Options of pxp-agent 1.15 (lib/src/configuration.cc; all but the first are hidden), in
      // seconds; defaults 5, 15, 10, 120. A closed WebSocket wakes the connection monitor at
      // once; otherwise it pings (and finds a dead connection) every ping-interval, which must
      // exceed cpp-pcp-client's fixed 5 s pong timeout, or pxp-agent exits (3) with a
      // "WebSocket configuration error".
      'connection-timeout': 2,
      'association-timeout': 5,
      'association-request-ttl': 5,
      'ping-interval': 6,
      ...opts.extraConfig,
    }),
  );
  // The wrapper sets LD_LIBRARY_PATH and execs bin/pxp-agent: the child's pid is the agent's.
  const proc = spawn(PXP_AGENT_BIN, ['--config-file', dirs.config], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dirs.root });
  if (proc.pid === undefined) {
    await once(proc, 'error').catch(() => undefined);
    throw new Error(`cannot spawn ${PXP_AGENT_BIN}`);
  }
  running.add(proc);
  killAllOnExit();
  let output = '';
  const collect = (d: Buffer) => {
    output = (output + d.toString()).slice(-8192);
  };
  proc.stdout!.on('data', collect);
  proc.stderr!.on('data', collect);
  let hasExited = false;
  const exited = new Promise<number | null>((res) =>
    proc.once('exit', (code) => {
      hasExited = true;
      running.delete(proc);
      res(code);
    }),
  );

  let finalLog: string | undefined; // kept once stop() removed the temp dirs
  const log = (): string => {
    if (finalLog !== undefined) return finalLog;
    try {
      return readFileSync(dirs.logfile, 'utf8');
    } catch {
      return '';
    }
  };
  const tail = () => `--- log tail ---\n${log().split('\n').slice(-40).join('\n')}\n--- stdout/stderr ---\n${output}`;

  const waitForLogCount = async (re: RegExp, n: number, timeoutMs = PXP_AGENT_CONNECT_TIMEOUT_MS): Promise<RegExpMatchArray> => {
    const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const matches = [...log().matchAll(global)];
      if (matches.length >= n) return matches[n - 1]!;
      if (hasExited) throw new Error(`pxp-agent exited (${proc.exitCode ?? proc.signalCode}) before its log matched ${re}\n${tail()}`);
      if (Date.now() > deadline) throw new Error(`pxp-agent's log did not match ${re} (x${n}) within ${timeoutMs} ms\n${tail()}`);
      await new Promise((r) => setTimeout(r, LOG_POLL_MS));
    }
  };

  let stopping: Promise<void> | undefined;
  const kill = async (): Promise<void> => {
    if (!hasExited) proc.kill('SIGKILL');
    await exited;
  };
  const agent: PxpAgentProcess = {
    pid: proc.pid,
    dirs,
    proc,
    exited,
    log,
    waitForLog: (re, timeoutMs) => waitForLogCount(re, 1, timeoutMs),
    waitForLogCount: async (re, n, timeoutMs) => void (await waitForLogCount(re, n, timeoutMs)),
    stop: () =>
      (stopping ??= (async () => {
        if (!hasExited) {
          proc.kill('SIGTERM');
          const timer = setTimeout(() => proc.kill('SIGKILL'), PXP_AGENT_STOP_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }
        finalLog = log();
        rmSync(dirs.root, { recursive: true, force: true });
      })()),
    kill,
  };
  if (opts.waitConnected === false) return agent;
  try {
    await agent.waitForLog(PXP_AGENT_CONNECTED_LOG, PXP_AGENT_CONNECT_TIMEOUT_MS);
  } catch (err) {
    await agent.stop();
    throw err;
  }
  return agent;
}
