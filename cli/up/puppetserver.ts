// `baton up --puppetserver`: a real Puppet server (Debian's `puppetserver`) as one more supervised
// child, with the fleet's dev CA (a certificate for `puppet` with SANs 127.0.0.1 and localhost, a
// CRL), the fleet's codedir and its own dirs in <dir>/puppetserver (lib/puppetserver.ts writes its
// configuration); and the agents' Puppet config for `puppet agent` against it, each agent in its
// own Puppet dirs with its own certificate.
import { readFileSync } from 'node:fs';
import { freePort } from '../../lib/net.ts';
import {
  JVM_START_TIMEOUT_MS,
  PUPPETSERVER_READY_LINE,
  puppetAgentDirs,
  puppetserverAvailable,
  puppetserverMissing,
  puppetserverStatus,
  writePuppetserverConfig,
  type SslFiles,
} from '../../lib/puppetserver.ts';
import { DEFAULT_PUPPET_COMMAND } from '../../pxp-agent/defaults.ts';
import { CliError, CliErrorCode } from '../errors.ts';
import type { PuppetAgentConfig } from './masterless-puppet.ts';
import type { Child, Supervisor } from './supervisor.ts';

/** The Puppet server's certificate name (the name Puppet gives its server by default). */
export const PUPPETSERVER_CERTNAME = 'puppet';
/** How long the server may take to say `running` after it logged that it started. */
const STATUS_WAIT_MS = 30_000;
const STATUS_POLL_MS = 250;

/** Throws the usage-class error that names the package when the Puppet server is not installed. */
export function requirePuppetserver(): void {
  if (!puppetserverAvailable()) throw new CliError(CliErrorCode.missingProgram, `--puppetserver: ${puppetserverMissing()}, or run without --puppetserver (the agents then run Puppet masterlessly)`);
}

/** The CA, `name`'s certificate and key in the fleet's PKI, and the CA's CRL (made when missing). */
export async function fleetSsl(pkiDir: string, name: string): Promise<SslFiles> {
  const { ensureCrl, pkiPaths } = await import('../../lib/pki.ts');
  const paths = pkiPaths(pkiDir);
  return { ca: paths.caCert, cert: paths.cert(name), key: paths.key(name), crl: await ensureCrl(pkiDir) };
}

/** Baton's log levels as logback's. */
const LOGBACK_LEVEL: Record<string, string> = { fatal: 'error', error: 'error', warn: 'warn', info: 'info', debug: 'debug', trace: 'trace', silent: 'off' };

export interface FleetPuppetserver {
  url: string;
  port: number;
  child: Child;
}

/**
 * Writes the Puppet server's configuration and starts it; resolves once it has logged that it
 * started and answers `running` on /status/v1/simple. Port 0 picks a free one.
 */
export async function startFleetPuppetserver(sup: Supervisor, o: { root: string; codedir: string; pkiDir: string; port: number; logLevel: string }): Promise<FleetPuppetserver> {
  const port = o.port === 0 ? await freePort() : o.port;
  const ssl = await fleetSsl(o.pkiDir, PUPPETSERVER_CERTNAME);
  const launch = writePuppetserverConfig({ root: o.root, codedir: o.codedir, certname: PUPPETSERVER_CERTNAME, ssl, port, logLevel: LOGBACK_LEVEL[o.logLevel] ?? 'info' });
  const { child } = await sup.start({
    name: 'puppetserver',
    command: launch.command,
    args: launch.args,
    env: launch.env,
    cwd: launch.cwd,
    ipc: false,
    watchdog: true, // a JVM cannot notice that `baton up` died
    readyTimeoutMs: JVM_START_TIMEOUT_MS,
    ready: (line) => line.includes(PUPPETSERVER_READY_LINE),
  });
  const ca = readFileSync(ssl.ca);
  const deadline = Date.now() + STATUS_WAIT_MS;
  let last = '';
  for (;;) {
    try {
      const res = await puppetserverStatus(launch.url, ca);
      if (res.status === 200 && res.text === 'running') break;
      last = `HTTP ${res.status}: ${res.text.slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw sup.failure(child, `started but did not answer 'running' on ${launch.url}/status/v1/simple within ${STATUS_WAIT_MS / 1000} s (last: ${last})`);
    await new Promise((r) => setTimeout(r, STATUS_POLL_MS));
  }
  return { url: launch.url, port, child };
}

/**
 * The Puppet keys of a local agent's config for `puppet agent` against the fleet's Puppet server:
 * its private Puppet dirs in `puppetDir` (its certificate, the CA and the CRL installed in their
 * ssldir; refreshed on every start), server 127.0.0.1 and the server's port.
 */
export async function agentPuppetserverConfig(puppetDir: string, pkiDir: string, certname: string, serverPort: number): Promise<PuppetAgentConfig> {
  const dirs = puppetAgentDirs({ root: puppetDir, certname, ssl: await fleetSsl(pkiDir, certname), server: { port: serverPort } });
  return { 'puppet-bin': 'puppet', 'puppet-settings': dirs.flags, 'puppet-command': [...DEFAULT_PUPPET_COMMAND] };
}
