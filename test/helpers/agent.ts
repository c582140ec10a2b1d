// Runs a real agent process (`baton agent`) against test brokers, with its own spool and cache.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { PcpClient } from '../../protocol/client/pcp-client.ts';
import { BATON_BIN, ServiceProcess } from './broker.ts';
import { identity, type Identity } from './pcp-client.ts';
import type { TestPki } from './pki.ts';

export interface AgentDirs {
  root: string;
  spool: string;
  cache: string;
  config: string;
}

export function agentDirs(): AgentDirs {
  const root = mkdtempSync(join(tmpdir(), 'baton-agent-'));
  return { root, spool: join(root, 'spool'), cache: join(root, 'cache'), config: join(root, 'agent.json') };
}

export interface StartAgentOptions {
  pki: TestPki;
  name: string;
  brokerUris: string[];
  masterUris?: string[];
  dirs?: AgentDirs;
  config?: Record<string, unknown>;
}

export class AgentProcess extends ServiceProcess {
  constructor(
    proc: ConstructorParameters<typeof ServiceProcess>[0],
    readonly dirs: AgentDirs,
  ) {
    super(proc);
  }
}

/** Starts an agent and waits until it is connected to a broker. */
export async function startAgentProcess(opts: StartAgentOptions): Promise<AgentProcess> {
  const dirs = opts.dirs ?? agentDirs();
  writeFileSync(
    dirs.config,
    JSON.stringify({
      'broker-ws-uris': opts.brokerUris,
      'ssl-ca-cert': opts.pki.ca,
      'ssl-cert': opts.pki.cert(opts.name),
      'ssl-key': opts.pki.key(opts.name),
      'spool-dir': dirs.spool,
      'task-cache-dir': dirs.cache,
      'master-uris': opts.masterUris ?? [],
      'reconnect-initial-delay': 50,
      'reconnect-max-delay': 200,
      'log-level': 'debug',
      ...opts.config,
    }),
  );
  // The IPC channel: the agent stops if this test process dies.
  const proc = spawn(process.execPath, [BATON_BIN, 'agent', '--config', dirs.config], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const agent = new AgentProcess(proc, dirs);
  const exited = agent.exited.then((code) => {
    throw new Error(`agent exited (${String(code)}) before connecting: ${agent.stderr}`);
  });
  await Promise.race([agent.waitForLog((l) => l.msg === 'connected to broker'), exited]);
  return agent;
}

/** A controller session built on Baton's own PCP client. */
export function startController(pki: TestPki, brokerUris: string[], name = 'orchestrator'): Promise<PcpClient> {
  return startSession(pki, brokerUris, name, 'controller');
}

/** An agent session that answers nothing (a hung host): it is connected, and silent. */
export function startSilentAgent(pki: TestPki, brokerUris: string[], name: string): Promise<PcpClient> {
  return startSession(pki, brokerUris, name, 'agent');
}

async function startSession(pki: TestPki, brokerUris: string[], name: string, clientType: string): Promise<PcpClient> {
  const id: Identity = identity(pki, name);
  const client = new PcpClient({
    brokerUris,
    clientType,
    tls: id,
    log: pino({ level: 'silent' }),
    backoff: { initialMs: 50, maxMs: 200 },
  });
  client.start();
  await client.waitConnected(10_000);
  return client;
}
