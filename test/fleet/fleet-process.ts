// A fleet of agents in one process: real Agent instances (each its own certificate, TLS session,
// spool and cache), for tests and benchmarks that need many nodes. Started with an IPC channel;
// prints "ready N" when all are connected; stops them all on SIGTERM or when the parent goes.
// argv[2]: JSON {brokerUris, pkiDir, names, masterUris, baseDir, inMemoryTask?, reconnect?}, or
// `@FILE` for a file holding that JSON (thousands of names exceed the 128 KiB limit of one argument).
// Over IPC it answers `{type: 'stats'}` with `{type: 'stats', connected, connectErrors}`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { pkiPaths } from '../../lib/pki.ts';
import { compile } from '../../protocol/validate.ts';
import { taskRunParamsSchema } from '../../schemas/pxp.ts';
import { Agent } from '../../pxp-agent/agent.ts';
import { AGENT_DEFAULTS, type ResolvedAgentConfig } from '../../pxp-agent/defaults.ts';
import type { PxpModule } from '../../pxp-agent/modules/types.ts';

interface FleetSpec {
  brokerUris: string[];
  pkiDir: string;
  names: string[];
  masterUris: string[];
  baseDir: string;
  /** Replace `task run` with an in-memory echo of the input (benchmarks of the orchestrator). */
  inMemoryTask?: boolean;
  /**
   * Reconnection delays of the agents (ms). Absent: 100/1000, so that tests recover fast;
   * `'default'`: the product's own defaults (storm measurements).
   */
  reconnect?: { initialMs: number; maxMs: number } | 'default';
}

const arg = process.argv[2]!;
const spec = JSON.parse(arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg) as FleetSpec;
const paths = pkiPaths(spec.pkiDir);
const log = pino({ level: process.env.FLEET_LOG_LEVEL ?? 'warn' }, pino.destination(2));

const inMemoryTask: PxpModule = {
  name: 'task',
  actions: {
    run: {
      kind: 'instant',
      validate: compile(taskRunParamsSchema),
      run: (params) => ({ exitcode: 0, stdout: JSON.stringify({ echoed: (params as { input: unknown }).input }), stderr: '' }),
    },
  },
};

function reconnectConfig(r: FleetSpec['reconnect']): Partial<ResolvedAgentConfig> {
  if (r === 'default') return {};
  return { 'reconnect-initial-delay': r?.initialMs ?? 100, 'reconnect-max-delay': r?.maxMs ?? 1000 };
}

const agents = spec.names.map((name) => {
  const config: ResolvedAgentConfig = {
    ...AGENT_DEFAULTS,
    'broker-ws-uris': spec.brokerUris,
    'ssl-ca-cert': paths.caCert,
    'ssl-cert': paths.cert(name),
    'ssl-key': paths.key(name),
    'spool-dir': join(spec.baseDir, name, 'spool'),
    'task-cache-dir': join(spec.baseDir, name, 'cache'),
    'master-uris': spec.masterUris,
    ...reconnectConfig(spec.reconnect),
  };
  return new Agent(config, log.child({ node: name }), spec.inMemoryTask ? [inMemoryTask] : []);
});

// Agents start in waves, so that thousands of TLS handshakes do not all time out together.
const WAVE = 50;
for (let i = 0; i < agents.length; i += WAVE) {
  const wave = agents.slice(i, i + WAVE);
  await Promise.all(wave.map((a) => {
    const up = new Promise((resolve) => a.client.once('connected', resolve));
    a.start();
    return up;
  }));
}
process.stdout.write(`ready ${agents.length}\n`);

// Why connection attempts failed, by error code (for storm measurements).
const connectErrors: Record<string, number> = {};
for (const a of agents) {
  a.client.on('connectError', (_uri, err) => {
    const code = (err as { code?: string }).code ?? 'other';
    connectErrors[code] = (connectErrors[code] ?? 0) + 1;
  });
}
process.on('message', (m: { type?: string }) => {
  if (m?.type === 'stats') process.send?.({ type: 'stats', connected: agents.filter((a) => a.client.connected).length, connectErrors });
});

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await Promise.all(agents.map((a) => a.stop()));
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
if (process.connected) process.on('disconnect', () => void stop());
