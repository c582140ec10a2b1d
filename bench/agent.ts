// `npm run bench:agent`: the agent's footprint and overheads. Starts a broker, an HTTPS file
// server and one agent (child processes but the file server), drives it as a controller, and
// prints one JSON line: {idle_rss_mb, connect_ms, echo_roundtrip_p50_ms, task_overhead_ms}.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:https';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { issueCert } from '../lib/pki.ts';
import { PcpClient } from '../protocol/client/pcp-client.ts';
import { pxpRequest } from '../protocol/pxp.ts';
import { delay, round } from './harness.ts';
import { BATON_BIN, CONTROLLER_CN_PREFIX, makeBenchPki, rssMb, startBrokerChild } from './fixtures.ts';

const { values: args } = parseArgs({
  options: { echoes: { type: 'string', default: '500' }, tasks: { type: 'string', default: '30' }, settle: { type: 'string', default: '3' } },
});
const execFileP = promisify(execFile);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const pki = await makeBenchPki(1);
await issueCert(pki.dir, 'bench-node', {});
await issueCert(pki.dir, 'files', { altNames: ['127.0.0.1'] });
const work = mkdtempSync(join(tmpdir(), 'baton-bench-agent-'));
const broker = await startBrokerChild(pki);
try {
  // The task: an empty shell script, served like a Puppet server serves task files.
  const script = '#!/bin/sh\n:\n';
  const files = createServer(
    { ca: readFileSync(pki.paths.caCert), cert: readFileSync(pki.paths.cert('files')), key: readFileSync(pki.paths.key('files')), requestCert: true },
    (_req, res) => res.end(script),
  ).listen(0, '127.0.0.1');
  await once(files, 'listening');
  const filesUrl = `https://127.0.0.1:${(files.address() as { port: number }).port}`;

  const config = join(work, 'agent.json');
  writeFileSync(config, JSON.stringify({
    'broker-ws-uris': [`wss://127.0.0.1:${broker.port}/pcp2/`],
    'ssl-ca-cert': pki.paths.caCert, 'ssl-cert': pki.paths.cert('bench-node'), 'ssl-key': pki.paths.key('bench-node'),
    'spool-dir': join(work, 'spool'), 'task-cache-dir': join(work, 'cache'), 'master-uris': [filesUrl], 'log-level': 'info',
  }));
  const agent = spawn(process.execPath, [BATON_BIN, 'agent', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const connected = await new Promise<{ connect_ms: number }>((resolve, reject) => {
    createInterface({ input: agent.stdout }).on('line', (line) => {
      const l = JSON.parse(line) as { msg: string; connect_ms: number };
      if (l.msg === 'connected to broker') resolve(l);
    });
    agent.once('exit', (code) => reject(new Error(`agent exited with ${String(code)}`)));
  });
  await delay(Number(args.settle) * 1000);
  const idleRss = rssMb(agent.pid!);

  const ctl = new PcpClient({
    brokerUris: [`wss://127.0.0.1:${broker.port}`],
    clientType: 'controller',
    tls: pki.identity(`${CONTROLLER_CN_PREFIX}0`),
    log: pino({ level: 'silent' }),
  });
  ctl.start();
  await ctl.waitConnected();
  const target = 'pcp://bench-node/agent';
  let seq = 0;

  const echoes: number[] = [];
  for (let i = 0; i < Number(args.echoes); i++) {
    const t0 = performance.now();
    await ctl.request(pxpRequest(target, { transaction_id: `echo-${seq++}`, module: 'echo', action: 'echo', params: { argument: 'x' } }, true));
    echoes.push(performance.now() - t0);
  }

  const sha256 = createHash('sha256').update(script).digest('hex');
  const params = { task: 'bench::noop', input: {}, files: [{ filename: 'noop.sh', uri: { path: '/noop.sh', params: {} }, sha256, size_bytes: script.length }] };
  const runThroughAgent = async () => {
    const transaction_id = `task-${seq++}`;
    const t0 = performance.now();
    const outcome = ctl.expectTransaction(transaction_id, 30_000);
    await ctl.request(pxpRequest(target, { transaction_id, module: 'task', action: 'run', params, notify_outcome: true }, false));
    const res = await outcome;
    if (res.message_type !== 'http://puppetlabs.com/rpc_non_blocking_response') throw new Error(JSON.stringify(res.data));
    return performance.now() - t0;
  };
  await runThroughAgent(); // fills the cache
  const local = join(work, 'noop.sh');
  writeFileSync(local, script);
  chmodSync(local, 0o700);
  const viaAgent: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < Number(args.tasks); i++) {
    viaAgent.push(await runThroughAgent());
    const t0 = performance.now();
    await execFileP(local, []);
    direct.push(performance.now() - t0);
  }
  await ctl.stop();
  agent.kill('SIGTERM');
  await once(agent, 'exit');
  files.close();
  console.log(JSON.stringify({
    bench: 'agent',
    idle_rss_mb: round(idleRss, 1),
    connect_ms: connected.connect_ms,
    echo_roundtrip_p50_ms: round(median(echoes), 3),
    task_overhead_ms: round(median(viaAgent) - median(direct), 2),
    task_via_agent_p50_ms: round(median(viaAgent), 2),
    task_direct_p50_ms: round(median(direct), 2),
  }));
} finally {
  await broker.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(pki.dir, { recursive: true, force: true });
}
