// `baton up` (what `npm start` runs): a whole local fleet in one supervised process tree — a private
// redis-server, a dev CA, a broker, the orchestrator and N agents, with a sample codedir and an
// admin token. Its agents run Puppet masterlessly by default (`puppet apply` of the codedir, each
// with private Puppet dirs: up/masterless-puppet.ts; `--puppet agent` keeps `puppet agent`), or
// with `--puppetserver` run `puppet agent` against a real Puppet server that `baton up` starts
// with the dev CA (up/puppetserver.ts).
// Ctrl-C (or SIGTERM, or SIGHUP) stops everything in order and keeps Redis's data; if `baton up`
// dies without doing so, the programs stop by themselves (IPC channel) and redis-server is stopped
// by its watchdog (up/watchdog.mjs).
import { accessSync, constants, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { delimiter, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_BROKER_PORT } from '../broker/defaults.ts';
import { freePort } from '../lib/net.ts';
import { projectPath } from '../lib/paths.ts';
import { DEFAULT_PUPPETSERVER_PORT } from '../lib/puppetserver.ts';
import { DEFAULT_ORCHESTRATOR_PORT } from '../orchestrator/defaults.ts';
import { ApiClient } from './client.ts';
import { CliError, CliErrorCode, ExitCode } from './errors.ts';
import { agentNames, agentPuppetConfig, CHEF_ORG, ensureChefClient, ensurePki, ensureSampleCode, ensureToken, fleetChefConfig, fleetPaths, PUPPET_MODES, PuppetMode, SAMPLE_COMMAND_WHITELIST, sampleTaskNames, writeJson, type FleetPaths } from './up/fleet-files.ts';
import { agentPuppetserverConfig, PUPPETSERVER_CERTNAME, requirePuppetserver, startFleetPuppetserver, type FleetPuppetserver } from './up/puppetserver.ts';
import { Supervisor, type Child } from './up/supervisor.ts';
import { positiveInt } from './args.ts';

export const DEV_VAR_DIR = 'var';
export const DEFAULT_REDIS_PORT = 6380;
export const DEFAULT_AGENT_COUNT = 3;
/** How long `baton up` waits for the orchestrator to see every agent, and how often it looks. */
const INVENTORY_WAIT_MS = 30_000;
const INVENTORY_POLL_MS = 200;

interface UpOptions {
  dir: string;
  agents: string;
  brokers: string;
  brokerPort: string;
  orchestratorPort: string;
  redisPort: string;
  redis?: string;
  logLevel: string;
  puppet: string;
  puppetserver?: boolean;
  puppetserverPort: string;
  /** Whether --puppet was given on the command line (it excludes --puppetserver). */
  puppetGiven?: boolean;
}

const BATON_BIN = () => projectPath('bin', 'baton.mjs');
const jsonLog = (msg: string) => (line: string) => {
  try {
    const l = JSON.parse(line) as { msg?: string };
    return l.msg === msg ? l : null;
  } catch {
    return null;
  }
};

function onPath(program: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir || '.', program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

function port(flag: string, value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535) throw new CliError(CliErrorCode.usage, `${flag} must be a port number (0 picks a free one), got '${value}'`);
  return Number(value);
}

/** A redis-server left behind by a `baton up` that was killed: stopped before a new one starts. */
async function stopStaleRedis(pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // gone
  }
  if (!cmdline.includes('redis-server')) return;
  process.stderr.write(`stopping a redis-server left over from an earlier run (pid ${pid})\n`);
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

async function waitForAgents(client: ApiClient, names: string[]): Promise<void> {
  const deadline = Date.now() + INVENTORY_WAIT_MS;
  for (;;) {
    const { items } = (await client.get('/orchestrator/v1/inventory')) as { items: { name: string; connected: boolean }[] };
    const connected = new Set(items.filter((i) => i.connected).map((i) => i.name));
    const missing = names.filter((n) => !connected.has(n));
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new CliError(CliErrorCode.childFailed, `the orchestrator does not see ${missing.join(', ')} connected after ${INVENTORY_WAIT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, INVENTORY_POLL_MS));
  }
}

function puppetMode(value: string): PuppetMode {
  if (!(PUPPET_MODES as readonly string[]).includes(value)) throw new CliError(CliErrorCode.usage, `--puppet must be one of ${PUPPET_MODES.join(', ')}, got '${value}'`);
  return value as PuppetMode;
}

/** The banner's line about Puppet runs. */
function puppetLine(mode: PuppetMode, codedir: string, server?: FleetPuppetserver): string {
  const bin = onPath('puppet');
  if (server) return `  puppet        puppet agent against the Puppet server, catalogs compiled from ${codedir}/environments/<env>; each agent's Puppet dirs and certificate in <agent dir>/puppet${bin ? '' : ' (puppet is not on PATH)'}`;
  if (mode === PuppetMode.agent) return `  puppet        puppet agent, with this machine's Puppet settings and Puppet server${bin ? '' : ' (puppet is not on PATH)'}`;
  if (!bin) return '  puppet        not on PATH: Puppet runs (baton job run) fail until it is installed (apt-get install puppet-agent)';
  return `  puppet        masterless: puppet apply of ${codedir}/environments/<env>/manifests; each agent's Puppet dirs in <agent dir>/puppet`;
}

async function startFleet(sup: Supervisor, p: FleetPaths, o: UpOptions): Promise<() => string> {
  const names = agentNames(positiveInt('--agents', o.agents)!);
  const mode = puppetMode(o.puppet);
  const ports = { broker: port('--broker-port', o.brokerPort), orchestrator: port('--orchestrator-port', o.orchestratorPort), redis: port('--redis-port', o.redisPort) };
  if (o.puppetserver && o.puppetGiven) throw new CliError(CliErrorCode.usage, '--puppetserver and --puppet exclude each other: with --puppetserver the agents run puppet agent against the Puppet server');
  const puppetserverPort = o.puppetserver ? port('--puppetserver-port', o.puppetserverPort) : null;
  if (o.puppetserver) requirePuppetserver();
  const redisBin = o.redis ? null : onPath('redis-server');
  if (!o.redis && !redisBin) {
    throw new CliError(CliErrorCode.missingProgram, 'redis-server (7.0 or newer) is not on PATH: install the Debian package redis-server (apt-get install redis-server), or give --redis redis://HOST:PORT');
  }
  await ensurePki(p.pki, ['broker', 'orchestrator', ...(o.puppetserver ? [PUPPETSERVER_CERTNAME] : [])], names);
  ensureSampleCode(p.code);
  const { token, file: tokenFile, tightenedFrom } = ensureToken();
  if (tightenedFrom !== undefined) process.stderr.write(`baton up: ${tokenFile} had mode ${tightenedFrom.toString(8).padStart(4, '0')} (others could read the admin token); made it 0600\n`);
  writeJson(p.tokensFile, [{ token, login: 'admin', permissions: ['*'] }], 0o600);
  const pki = (name: string) => ({ 'ssl-ca-cert': join(p.pki, 'certs', 'ca.pem'), 'ssl-cert': join(p.pki, 'certs', `${name}.pem`), 'ssl-key': join(p.pki, 'private_keys', `${name}.pem`) });
  const node = (name: string, args: string[], ready: string) => ({ name, command: process.execPath, args: [BATON_BIN(), ...args], ipc: true, ready: jsonLog(ready) });
  const lines: string[] = [];
  const pidOf = (c: Child) => `(pid ${c.pid})`;
  const rel = (path: string) => relative(process.cwd(), path) || '.';

  let redisUrl = o.redis;
  if (!redisUrl) {
    const redisPort = ports.redis === 0 ? await freePort() : ports.redis;
    const pidFile = join(p.redis, 'redis.pid');
    await stopStaleRedis(pidFile);
    mkdirSync(p.redis, { recursive: true });
    const { child } = await sup.start({
      name: 'redis', command: redisBin!, ipc: false, watchdog: true, ready: (l) => l.includes('Ready to accept connections'),
      args: ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', p.redis, '--appendonly', 'yes', '--pidfile', pidFile, '--daemonize', 'no', '--loglevel', 'notice'],
    });
    redisUrl = `redis://127.0.0.1:${redisPort}`;
    lines.push(`  redis         ${redisUrl}   data: ${rel(p.redis)} (append-only file)   ${pidOf(child)}`);
  } else {
    lines.push(`  redis         ${redisUrl} (given with --redis)`);
  }

  // The JVM takes longest: it starts while the rest does; the agents need only its port.
  let puppetserver: FleetPuppetserver | undefined;
  const serverPort = puppetserverPort === 0 ? await freePort() : puppetserverPort;
  const puppetserverStarting =
    serverPort === null ? undefined : startFleetPuppetserver(sup, { root: p.puppetserver, codedir: p.code, pkiDir: p.pki, port: serverPort, logLevel: o.logLevel });
  puppetserverStarting?.catch(() => undefined); // awaited below; a failure meanwhile stops everything there

  // One broker, or several as one fabric on the same Redis (the first on --broker-port, the rest
  // on free ports); agents are spread over them, each with the others to fail over to.
  const brokerCount = positiveInt('--brokers', o.brokers)!;
  const brokerUris: string[] = [];
  for (let i = 1; i <= brokerCount; i++) {
    const name = brokerCount === 1 ? 'broker' : `broker-${i}`;
    const file = brokerCount === 1 ? p.brokerConfig : p.brokerConfig.replace(/\.json$/, `-${i}.json`);
    const fabric = brokerCount === 1 ? {} : { fabric: { redis: redisUrl, 'broker-id': name } };
    writeJson(file, { host: '127.0.0.1', port: i === 1 ? ports.broker : 0, ...pki('broker'), 'log-level': o.logLevel, ...fabric });
    const broker = await sup.start(node(name, ['broker', '--config', file], 'listening'));
    const brokerPort = (broker.ready as { port: number }).port;
    brokerUris.push(`wss://127.0.0.1:${brokerPort}/pcp2/`);
    lines.push(`  ${name.padEnd(13)} wss://127.0.0.1:${brokerPort}/pcp2/<client type>${brokerCount === 1 ? '' : '   (fabric)'}   ${pidOf(broker.child)}`);
  }
  const brokerUri = brokerUris[0]!;
  /** The i-th agent's brokers: its own first, then the others (failover). */
  const brokersOf = (i: number) => brokerUris.map((_u, j) => brokerUris[(i + j) % brokerUris.length]!);

  ensureChefClient(p.chefClient);
  writeJson(p.orchestratorConfig, {
    host: '127.0.0.1', port: ports.orchestrator, ...pki('orchestrator'), 'broker-ws-uris': brokerCount === 1 ? [brokerUri] : brokerUris, redis: redisUrl,
    codedir: p.code, 'tokens-file': p.tokensFile, chef: fleetChefConfig(p.chefClient), 'log-level': o.logLevel,
  });
  const orch = await sup.start(node('orchestrator', ['orchestrator', '--config', p.orchestratorConfig], 'listening'));
  const orchPort = (orch.ready as { port: number }).port;
  const apiUrl = `https://127.0.0.1:${orchPort}`;
  lines.push(`  orchestrator  ${apiUrl}   ${pidOf(orch.child)}`);
  lines.push(`  console       ${apiUrl}/console/`);

  for (const [index, name] of names.entries()) {
    const a = p.agent(name);
    const puppetConfig = serverPort !== null ? await agentPuppetserverConfig(a.puppet, p.pki, name, serverPort) : agentPuppetConfig(mode, a.puppet, p.code, name);
    writeJson(a.config, {
      'broker-ws-uris': brokersOf(index), ...pki(name), 'spool-dir': a.spool, 'task-cache-dir': a.cache, 'master-uris': [apiUrl],
      'command-whitelist': SAMPLE_COMMAND_WHITELIST, 'log-level': o.logLevel, ...puppetConfig,
    });
    const agent = await sup.start(node(name, ['agent', '--config', a.config], 'connected to broker'));
    lines.push(`  agent         ${name.padEnd(14)} ${rel(a.dir)}   ${pidOf(agent.child)}`);
  }
  await waitForAgents(new ApiClient(apiUrl, token, readFileSync(join(p.pki, 'certs', 'ca.pem'))), names);
  if (puppetserverStarting) {
    puppetserver = await puppetserverStarting;
    lines.push(`  puppetserver  ${puppetserver.url}   dirs: ${rel(p.puppetserver)}   ${pidOf(puppetserver.child)}`);
  }

  const ca = join(p.pki, 'certs', 'ca.pem');
  const env: string[] = [];
  if (orchPort !== DEFAULT_ORCHESTRATOR_PORT) env.push(`export BATON_URL=${apiUrl}`);
  if (resolve(ca) !== resolve('var/pki/certs/ca.pem')) env.push(`export BATON_CA=${ca}`);
  const nodes = names.join(',');
  return () => [
    '',
    'Baton is up.',
    '',
    ...lines,
    `  code          ${rel(p.code)}   tasks: ${sampleTaskNames(p.code).join(', ')}`,
    puppetLine(mode, rel(p.code), puppetserver),
    `  CA            ${rel(ca)}`,
    `  admin token   ${tokenFile}   (header X-Authentication)`,
    `  Chef client   ${p.chefClient.name}, key ${rel(p.chefClient.key)}   (signed requests to ${apiUrl}/organizations/${CHEF_ORG})`,
    `  logs          ${rel(p.logs)}/<program>.log`,
    '',
    'Try:',
    ...env.map((e) => `  ${e}`),
    `  npx baton task run sample::echo message=hi --nodes ${nodes}`,
    `  npx baton push run uptime --nodes ${nodes}`,
    `  npx baton plan run sample::check_and_preview targets='${JSON.stringify(names)}'`,
    '  npx baton job run --environment production --noop',
    '  npx baton job run --environment production',
    '  npx baton inventory',
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run a local fleet: redis-server, dev CA, broker, orchestrator and agents, with sample tasks and an admin token')
    .option('--dir <dir>', 'state directory: pki, code, redis, agents, logs', DEV_VAR_DIR)
    .option('--agents <n>', 'how many local agents (agent1.local, …)', String(DEFAULT_AGENT_COUNT))
    .option('--brokers <n>', 'how many brokers; more than 1 form a fabric on the Redis, agents spread over them', '1')
    .option('--broker-port <port>', 'the (first) broker\'s port (0: a free one)', String(DEFAULT_BROKER_PORT))
    .option('--orchestrator-port <port>', 'orchestrator port (0: a free one)', String(DEFAULT_ORCHESTRATOR_PORT))
    .option('--redis-port <port>', 'port of the private redis-server (0: a free one)', String(DEFAULT_REDIS_PORT))
    .option('--redis <url>', 'use this Redis instead of starting one (redis://HOST:PORT)')
    .option('--puppet <mode>', `how the agents run Puppet: ${PuppetMode.apply} (masterless, the sample code's manifests) or ${PuppetMode.agent} (puppet agent, with this machine's Puppet server)`, PuppetMode.apply)
    .option('--puppetserver', 'also start a real Puppet server (Debian package puppetserver) with the dev CA and the code in <dir>/code; the agents run puppet agent against it')
    .option('--puppetserver-port <port>', 'port of the Puppet server (0: a free one)', String(DEFAULT_PUPPETSERVER_PORT))
    .option('--log-level <level>', "the programs' log level (logs go to <dir>/logs)", 'info')
    .action(async (o: UpOptions, cmd: Command) => {
      o.puppetGiven = cmd.getOptionValueSource('puppet') === 'cli';
      const paths = fleetPaths(resolve(o.dir));
      let finished = false;
      const finish = async (code: number, message?: string) => {
        if (finished) return;
        finished = true;
        if (message) process.stderr.write(`${message}\n`);
        await sup.stopAll();
        if (code === ExitCode.ok) process.stdout.write(`Stopped.${o.redis ? '' : ` Redis data is kept in ${relative(process.cwd(), paths.redis) || '.'}.`}\n`);
        process.exit(code);
      };
      const sup = new Supervisor(paths.logs, (child, code, signal) => {
        void finish(ExitCode.failure, `baton up: ${child.name} exited unexpectedly (${signal ?? `code ${String(code)}`}); stopping the rest. Its log is ${child.logFile}${child.tail.length ? `:\n  ${child.tail.slice(-5).join('\n  ')}` : ''}`);
      });
      // A closed terminal (SIGHUP) makes writes fail (EIO, EPIPE): they must not stop the cleanup.
      process.stdout.on('error', () => undefined);
      process.stderr.on('error', () => undefined);
      const stop = () => {
        process.stdout.write('\nStopping…\n');
        void finish(ExitCode.ok);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      process.on('SIGHUP', stop); // the terminal went away: its children, in their own process groups, would not hear it
      if (process.connected) process.on('disconnect', stop);
      try {
        const banner = await startFleet(sup, paths, o);
        if (!finished) process.stdout.write(banner());
      } catch (err) {
        if (finished) return;
        const usage = err instanceof CliError && (err.code === CliErrorCode.usage || err.code === CliErrorCode.missingProgram);
        await finish(usage ? ExitCode.usage : ExitCode.failure, `baton up: ${(err as Error).message}`);
      }
    });
}
