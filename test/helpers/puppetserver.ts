// A real Puppet server (Debian's `puppetserver` 7) per test file, with Baton's test PKI instead
// of its own CA, in a temporary directory on a free port of 127.0.0.1 with the caller's codedir:
// the launch and configuration are lib/puppetserver.ts (which `baton up --puppetserver` uses
// too; its pitfalls are noted there). Optionally it sends catalogs, facts and reports to a
// PuppetDB (Debian's `puppet-terminus-puppetdb`). Also Puppet agent nodes with private dirs and
// the PKI's certificates where Puppet expects them, to run `puppet agent --test` against it.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../lib/net.ts';
import { ensureCrl as ensurePkiCrl } from '../../lib/pki.ts';
import {
  installSsl as installSslFiles,
  JVM_START_TIMEOUT_MS,
  jvmArgs,
  logbackXml,
  PUPPETDB_TERMINUS,
  PUPPETSERVER_JAR,
  puppetAgentDirs,
  puppetdbTerminusAvailable,
  puppetserverAvailable,
  writePuppetserverConfig,
  type SslFiles,
} from '../../lib/puppetserver.ts';
import { http } from './http.ts';
import type { TestPki } from './pki.ts';
import { pollUntil, spawnService, type ServiceProcess } from './postgres.ts';

export { JVM_START_TIMEOUT_MS, jvmArgs, logbackXml, PUPPETDB_TERMINUS, PUPPETSERVER_JAR, puppetdbTerminusAvailable, puppetserverAvailable };

// ---------------------------------------------------------------------------------------------
// TLS: a CRL for the test CA, Puppet's ssldir layout, and a JSON client with a bound

/** Writes an empty CRL signed by the test CA (`<pki.dir>/crl.pem`) unless there is one; returns its path. */
export function ensureCrl(pki: TestPki): Promise<string> {
  return ensurePkiCrl(pki.dir);
}

async function sslFiles(pki: TestPki, certname: string): Promise<SslFiles> {
  return { ca: pki.ca, cert: pki.cert(certname), key: pki.key(certname), crl: await ensureCrl(pki) };
}

/** Puts the CA, `certname`'s certificate and key and the CRL where Puppet looks in `ssldir`. */
export async function installSsl(pki: TestPki, ssldir: string, certname: string): Promise<void> {
  installSslFiles(await sslFiles(pki, certname), ssldir, certname);
}

export interface TlsClient {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** The test CA and `name`'s certificate as client credentials. */
export function tlsClient(pki: TestPki, name?: string): TlsClient {
  const ca = readFileSync(pki.ca);
  return name ? { ca, cert: readFileSync(pki.cert(name)), key: readFileSync(pki.key(name)) } : { ca };
}

export interface JsonResponse {
  status: number;
  text: string;
  json: unknown;
}

/** One HTTPS request with a deadline (a JVM that is still starting may accept and not answer). */
export async function httpsJson(url: string, tls: TlsClient, opts: { method?: string; body?: unknown; timeoutMs?: number; /** Default application/json; file_content wants application/octet-stream. */ accept?: string } = {}): Promise<JsonResponse> {
  const res = await http(url, {
    ...(opts.method ? { method: opts.method } : {}),
    ...(opts.body === undefined ? {} : { body: opts.body }),
    ca: tls.ca,
    ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
    headers: { accept: opts.accept ?? 'application/json' },
    timeoutMs: opts.timeoutMs ?? 10_000,
  });
  return { status: res.status, text: res.text, json: res.json as unknown };
}

// ---------------------------------------------------------------------------------------------
// The Puppet server

export interface PuppetserverOptions {
  pki: TestPki;
  /** The server's certificate name (issued from the PKI with SANs localhost and 127.0.0.1); default `puppet`. */
  certname?: string;
  /** Its codedir (`environments/<env>/manifests/site.pp`, modules); default an empty private one with `production`. */
  codedir?: string;
  /** Send catalogs, facts and reports to this PuppetDB (`https://127.0.0.1:<ssl port>`). */
  puppetdbUrl?: string;
  /** Default a free one. */
  port?: number;
  heapMb?: number;
  startTimeoutMs?: number;
}

export interface TestPuppetserver {
  url: string;
  port: number;
  certname: string;
  /** The private directory that holds everything but the codedir. */
  root: string;
  confdir: string;
  codedir: string;
  /** Milliseconds from spawning the JVM to `/status/v1/simple` saying running. */
  startupMs: number;
  service: ServiceProcess;
  logs(): string;
  /** Stops the JVM (SIGTERM to its group, SIGKILL after 30 s) and removes its directory. */
  stop(): Promise<void>;
}

export async function startPuppetserver(opts: PuppetserverOptions): Promise<TestPuppetserver> {
  if (!puppetserverAvailable()) throw new Error(`puppetserver is not installed (no ${PUPPETSERVER_JAR}; Debian: apt-get install puppetserver)`);
  if (opts.puppetdbUrl && !puppetdbTerminusAvailable()) {
    throw new Error(`the PuppetDB terminus is not installed (no ${PUPPETDB_TERMINUS}; Debian: apt-get install puppet-terminus-puppetdb)`);
  }
  const certname = opts.certname ?? 'puppet';
  await opts.pki.issue(certname, ['localhost', '127.0.0.1']);
  const root = mkdtempSync(join(tmpdir(), 'baton-puppetserver-'));
  const port = opts.port ?? (await freePort());
  const launch = writePuppetserverConfig({
    root,
    certname,
    codedir: opts.codedir,
    ssl: await sslFiles(opts.pki, certname),
    port,
    puppetdbUrl: opts.puppetdbUrl,
    heapMb: opts.heapMb,
  });
  const t0 = Date.now();
  const service = spawnService('puppetserver', launch.command, launch.args, { cwd: launch.cwd, env: launch.env, logFile: join(launch.logdir, 'puppetserver.log'), program: 'puppetserver' });
  const { url } = launch;
  const tls = tlsClient(opts.pki);
  try {
    await pollUntil(
      `puppetserver on port ${port}`,
      async () => {
        const res = await httpsJson(`${url}/status/v1/simple`, tls, { timeoutMs: 5_000 });
        return res.status === 200 && res.text.trim() === 'running' ? true : undefined;
      },
      { timeoutMs: opts.startTimeoutMs ?? JVM_START_TIMEOUT_MS, service },
    );
  } catch (err) {
    await service.stop(5_000);
    const logs = service.logs();
    rmSync(root, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n--- puppetserver output (last lines) ---\n${logs}`);
  }
  const startupMs = Date.now() - t0;
  return {
    url,
    port,
    certname,
    root,
    confdir: launch.confdir,
    codedir: launch.codedir,
    startupMs,
    service,
    logs: () => service.logs(),
    async stop() {
      await service.stop(30_000);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Puppet agent nodes

export interface PuppetRun {
  /** `puppet agent --test --detailed-exitcodes`: 0 no changes, 2 changes, 1/4/6 failures. */
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface PuppetAgentNode {
  certname: string;
  root: string;
  confdir: string;
  ssldir: string;
  vardir: string;
  /** The flags that keep `puppet agent` in this node's directories and point it at the server. */
  flags: string[];
  /** `puppet agent --test --detailed-exitcodes ...flags ...extra`. */
  run(extra?: string[], timeoutMs?: number): Promise<PuppetRun>;
  remove(): void;
}

/**
 * A Puppet agent with private dirs (also written into its puppet.conf, so that a `puppet agent`
 * started with only `--confdir` stays in them) and `certname`'s certificate from the PKI.
 */
export async function puppetAgentNode(pki: TestPki, certname: string, server: { port: number }): Promise<PuppetAgentNode> {
  await pki.issue(certname);
  const root = mkdtempSync(join(tmpdir(), `baton-agent-${certname}-`));
  const { confdir, ssldir, vardir, flags } = puppetAgentDirs({ root, certname, ssl: await sslFiles(pki, certname), server });
  return {
    certname,
    root,
    confdir,
    ssldir,
    vardir,
    flags,
    run(extra = [], timeoutMs = 120_000) {
      const t0 = Date.now();
      return new Promise((resolve) => {
        execFile(
          'puppet',
          ['agent', '--test', '--detailed-exitcodes', '--color=false', ...flags, ...extra],
          { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, HOME: root }, maxBuffer: 16 * 1024 * 1024 },
          (err, stdout, stderr) => {
            const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
            resolve({ code, stdout, stderr, ms: Date.now() - t0 });
          },
        );
      });
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * The skip message of a test that needs the whole Puppet stack (agent, server, PuppetDB on
 * PostgreSQL, the server's PuppetDB terminus), naming the Debian packages missing; false when
 * all are installed.
 */
export async function puppetStackMissing(): Promise<string | false> {
  const { puppetAvailable } = await import('./puppet.ts');
  const { puppetdbAvailable } = await import('./puppetdb.ts');
  const { postgresAvailable } = await import('./postgres.ts');
  const lacking = [
    !puppetAvailable() && 'puppet-agent',
    !puppetserverAvailable() && 'puppetserver',
    !puppetdbAvailable() && 'puppetdb',
    !postgresAvailable() && 'postgresql',
    !puppetdbTerminusAvailable() && 'puppet-terminus-puppetdb',
  ].filter(Boolean);
  return lacking.length ? `Debian packages not installed: ${lacking.join(', ')}` : false;
}
