// A real Puppet server (Debian's `puppetserver` 7) per test file, with Baton's test PKI instead
// of its own CA: private conf.d, services.d (the CA service replaced by the disabled one), Puppet
// confdir and ssldir, vardir, logdir and rundir in a temporary directory, HTTPS on a free port of
// 127.0.0.1, and the caller's codedir. Optionally it sends catalogs, facts and reports to a
// PuppetDB (Debian's `puppet-terminus-puppetdb`). Also Puppet agent nodes with private dirs and
// the PKI's certificates where Puppet expects them, to run `puppet agent --test` against it.
//
// Pitfalls (Debian's Puppet): ssldir defaults to /var/lib/puppet/ssl for root and publicdir to
// /var/cache/puppet/public, whatever --confdir says, so both are always set explicitly here; the
// agent wants a CRL (certificate_revocation=chain), which Baton's PKI does not make: ensureCrl().
// The packaged conf.d (/etc/puppet/puppetserver) is readable by root and `puppet` only, so every
// file of the server's configuration is written here, none copied.
import { execFile } from 'node:child_process';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { freePort } from '../../lib/net.ts';
import { pkiPaths } from '../../lib/pki.ts'; // also gives @peculiar/x509 its crypto provider
import type { TestPki } from './pki.ts';
import { pollUntil, spawnService, type ServiceProcess } from './postgres.ts';

export const PUPPETSERVER_JAR = '/usr/share/puppetserver/puppetserver.jar';
const JAVA = '/usr/bin/java';
const PUPPETSERVER_RUBY_LOAD_PATH = '/usr/lib/puppetserver/ruby/vendor_ruby';
const PUPPETSERVER_VENDORED_GEMS = '/usr/lib/puppetserver/vendored-jruby-gems';
const JRUBY_LIB = '/usr/share/jruby/lib';
/** The PuppetDB terminus (Debian: puppet-terminus-puppetdb). */
export const PUPPETDB_TERMINUS = '/usr/lib/ruby/vendor_ruby/puppet/indirector/catalog/puppetdb.rb';
/** JVMs on a 2-core machine shared with other tests: a cold start takes 35 to 90 s. */
export const JVM_START_TIMEOUT_MS = 180_000;

/** Whether a Puppet server can be started here (tests skip otherwise). */
export function puppetserverAvailable(): boolean {
  return existsSync(PUPPETSERVER_JAR) && existsSync(JAVA);
}

/** Whether the Puppet server can send data to PuppetDB here. */
export function puppetdbTerminusAvailable(): boolean {
  return existsSync(PUPPETDB_TERMINUS);
}

// ---------------------------------------------------------------------------------------------
// TLS: a CRL for the test CA, Puppet's ssldir layout, and a JSON client with a bound

/** Writes an empty CRL signed by the test CA (`<pki.dir>/crl.pem`) unless there is one; returns its path. */
export async function ensureCrl(pki: TestPki): Promise<string> {
  const path = join(pki.dir, 'crl.pem');
  if (existsSync(path)) return path;
  const paths = pkiPaths(pki.dir);
  const ca = new x509.X509Certificate(readFileSync(paths.caCert, 'utf8'));
  const keyPem = readFileSync(paths.caKey, 'utf8');
  const rsa = createPrivateKey(keyPem).asymmetricKeyType === 'rsa';
  const importAlg = rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' };
  const signingAlgorithm = rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', hash: 'SHA-256' };
  const signingKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), importAlg, false, ['sign']);
  const now = Date.now();
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.subject,
    thisUpdate: new Date(now - 5 * 60_000),
    nextUpdate: ca.notAfter,
    signingKey: signingKey as unknown as Parameters<typeof x509.X509CrlGenerator.create>[0]['signingKey'],
    signingAlgorithm,
    entries: [],
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(ca),
      new x509.Extension('2.5.29.20', false, new Uint8Array([0x02, 0x01, 0x01])), // cRLNumber 1
    ],
  });
  // OpenSSL (Puppet's Ruby) reads only the "X509 CRL" label.
  writeFileSync(path, x509.PemConverter.encode(crl.rawData, 'X509 CRL'), { mode: 0o644 });
  return path;
}

/** Puts the CA, `certname`'s certificate and key and the CRL where Puppet looks in `ssldir`. */
export async function installSsl(pki: TestPki, ssldir: string, certname: string): Promise<void> {
  const crl = await ensureCrl(pki);
  mkdirSync(join(ssldir, 'certs'), { recursive: true, mode: 0o755 });
  mkdirSync(join(ssldir, 'private_keys'), { recursive: true, mode: 0o750 });
  copyFileSync(pki.ca, join(ssldir, 'certs', 'ca.pem'));
  copyFileSync(pki.cert(certname), join(ssldir, 'certs', `${certname}.pem`));
  copyFileSync(pki.key(certname), join(ssldir, 'private_keys', `${certname}.pem`));
  copyFileSync(crl, join(ssldir, 'crl.pem'));
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
export function httpsJson(url: string, tls: TlsClient, opts: { method?: string; body?: unknown; timeoutMs?: number; /** Default application/json; file_content wants application/octet-stream. */ accept?: string } = {}): Promise<JsonResponse> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        headers: { accept: opts.accept ?? 'application/json', ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('error', reject);
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** JVM flags for a test service: small heap, a quick start over peak speed (2 shared cores). */
export function jvmArgs(heapMb: number, errorDir: string): string[] {
  return [
    `-Xms${Math.min(256, heapMb)}m`,
    `-Xmx${heapMb}m`,
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-XX:+CrashOnOutOfMemoryError',
    `-XX:ErrorFile=${join(errorDir, 'jvm_err_pid%p.log')}`,
    '-Djava.security.egd=file:/dev/urandom',
  ];
}

/** A logback configuration that writes everything to stdout (the helper keeps it). */
export function logbackXml(level = 'info'): string {
  return `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5p [%c{2}] %m%n</pattern></encoder>
  </appender>
  <root level="${level}"><appender-ref ref="STDOUT"/></root>
</configuration>
`;
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
  const dir = (...p: string[]) => {
    const d = join(root, ...p);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const confdir = dir('confdir');
  const ssldir = join(confdir, 'ssl');
  let codedir = opts.codedir;
  if (!codedir) {
    dir('code', 'environments', 'production', 'manifests');
    codedir = join(root, 'code');
  }
  const d = { conf: dir('conf.d'), services: dir('services.d'), var: dir('var'), run: dir('run'), log: dir('log'), home: dir('home'), gems: dir('gems') };
  const port = opts.port ?? (await freePort());
  await installSsl(opts.pki, ssldir, certname);

  const hocon = (v: unknown) => JSON.stringify(v, null, 2) + '\n'; // JSON is HOCON
  writeFileSync(join(root, 'logback.xml'), logbackXml());
  writeFileSync(join(d.conf, 'global.conf'), hocon({ global: { 'logging-config': join(root, 'logback.xml') } }));
  writeFileSync(
    join(d.conf, 'puppetserver.conf'),
    hocon({
      'jruby-puppet': {
        'ruby-load-path': [PUPPETSERVER_RUBY_LOAD_PATH],
        'gem-home': d.gems,
        'gem-path': [d.gems, PUPPETSERVER_VENDORED_GEMS],
        'server-conf-dir': confdir,
        'server-code-dir': codedir,
        'server-var-dir': d.var,
        'server-run-dir': d.run,
        'server-log-dir': d.log,
        'max-active-instances': 1,
      },
      'http-client': {},
      profiler: {},
    }),
  );
  writeFileSync(
    join(d.conf, 'webserver.conf'),
    hocon({
      webserver: {
        'client-auth': 'want',
        'ssl-host': '127.0.0.1',
        'ssl-port': port,
        'ssl-cert': join(ssldir, 'certs', `${certname}.pem`),
        'ssl-key': join(ssldir, 'private_keys', `${certname}.pem`),
        'ssl-ca-cert': join(ssldir, 'certs', 'ca.pem'),
        'ssl-crl-path': join(ssldir, 'crl.pem'),
      },
    }),
  );
  writeFileSync(join(d.conf, 'web-routes.conf'), hocon({ 'web-router-service': WEB_ROUTES }));
  writeFileSync(join(d.conf, 'auth.conf'), hocon({ authorization: { version: 1, rules: AUTH_RULES } }));
  writeFileSync(join(d.conf, 'metrics.conf'), hocon({ metrics: { 'server-id': 'localhost', registries: { puppetserver: { reporters: { jmx: { enabled: false } } } } } }));
  writeFileSync(join(d.conf, 'product.conf'), hocon({ product: { 'check-for-updates': false }, dropsonde: { enabled: false } }));
  writeFileSync(join(d.services, 'bootstrap.cfg'), SERVICES.join('\n') + '\n');
  writeFileSync(join(confdir, 'puppet.conf'), serverPuppetConf({ certname, ssldir, vardir: d.var, logdir: d.log, rundir: d.run, codedir, puppetdb: !!opts.puppetdbUrl }));
  if (opts.puppetdbUrl) {
    writeFileSync(join(confdir, 'puppetdb.conf'), `[main]\nserver_urls = ${opts.puppetdbUrl}\nsoft_write_failure = false\n`);
    writeFileSync(join(confdir, 'routes.yaml'), `---\nserver:\n  facts:\n    terminus: puppetdb\n    cache: yaml\n`);
  }

  const args = [
    ...jvmArgs(opts.heapMb ?? 512, d.log),
    '-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger',
    `-Djruby.lib=${JRUBY_LIB}`,
    '-jar', PUPPETSERVER_JAR,
    '--config', d.conf,
    '--bootstrap-config', d.services,
  ];
  const t0 = Date.now();
  const service = spawnService('puppetserver', JAVA, args, { cwd: root, env: { ...process.env, HOME: d.home }, logFile: join(d.log, 'puppetserver.log'), program: 'puppetserver' });
  const url = `https://127.0.0.1:${port}`;
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
    confdir,
    codedir,
    startupMs,
    service,
    logs: () => service.logs(),
    async stop() {
      await service.stop(30_000);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function serverPuppetConf(p: { certname: string; ssldir: string; vardir: string; logdir: string; rundir: string; codedir: string; puppetdb: boolean }): string {
  const lines = [
    '[main]',
    `certname = ${p.certname}`,
    `ssldir = ${p.ssldir}`,
    `vardir = ${p.vardir}`,
    `publicdir = ${join(p.vardir, 'public')}`,
    `logdir = ${p.logdir}`,
    `rundir = ${p.rundir}`,
    `codedir = ${p.codedir}`,
    'environment_timeout = 0',
    '[server]',
    ...(p.puppetdb ? ['storeconfigs = true', 'storeconfigs_backend = puppetdb', 'reports = puppetdb'] : ['reports = store']),
  ];
  return lines.join('\n') + '\n';
}

/** Puppet server 7's services (services.d), with the CA replaced by the disabled one. */
const SERVICES = [
  'puppetlabs.services.request-handler.request-handler-service/request-handler-service',
  'puppetlabs.services.jruby.jruby-puppet-service/jruby-puppet-pooled-service',
  'puppetlabs.services.jruby-pool-manager.jruby-pool-manager-service/jruby-pool-manager-service',
  'puppetlabs.services.puppet-profiler.puppet-profiler-service/puppet-profiler-service',
  'puppetlabs.trapperkeeper.services.webserver.jetty9-service/jetty9-service',
  'puppetlabs.trapperkeeper.services.webrouting.webrouting-service/webrouting-service',
  'puppetlabs.services.config.puppet-server-config-service/puppet-server-config-service',
  'puppetlabs.services.master.master-service/master-service',
  'puppetlabs.services.puppet-admin.puppet-admin-service/puppet-admin-service',
  'puppetlabs.trapperkeeper.services.authorization.authorization-service/authorization-service',
  'puppetlabs.services.versioned-code-service.versioned-code-service/versioned-code-service',
  'puppetlabs.trapperkeeper.services.scheduler.scheduler-service/scheduler-service',
  'puppetlabs.trapperkeeper.services.status.status-service/status-service',
  'puppetlabs.trapperkeeper.services.metrics.metrics-service/metrics-service',
  'puppetlabs.trapperkeeper.services.metrics.metrics-service/metrics-webservice',
  'puppetlabs.services.jruby.jruby-metrics-service/jruby-metrics-service',
  'puppetlabs.services.analytics.analytics-service/analytics-service',
  'puppetlabs.services.ca.certificate-authority-disabled-service/certificate-authority-disabled-service',
  'puppetlabs.trapperkeeper.services.watcher.filesystem-watch-service/filesystem-watch-service',
];

const WEB_ROUTES = {
  'puppetlabs.services.ca.certificate-authority-service/certificate-authority-service': '/puppet-ca',
  'puppetlabs.services.master.master-service/master-service': '/puppet',
  'puppetlabs.services.legacy-routes.legacy-routes-service/legacy-routes-service': '',
  'puppetlabs.services.puppet-admin.puppet-admin-service/puppet-admin-service': '/puppet-admin-api',
  'puppetlabs.trapperkeeper.services.status.status-service/status-service': '/status',
  'puppetlabs.trapperkeeper.services.metrics.metrics-service/metrics-webservice': '/metrics',
};

/** What agents and Baton may do: their own node, catalog, facts and report; files, environments and tasks for any client; status without a certificate; nothing else. */
const AUTH_RULES = [
  ...(['catalog', 'node', 'report', 'facts'] as const).map((what) => ({
    'match-request': { path: `^/puppet/v3/${what}/([^/]+)$`, type: 'regex', method: what === 'catalog' ? ['get', 'post'] : what === 'node' ? 'get' : 'put' },
    allow: '$1',
    'sort-order': 500,
    name: `baton test: own ${what}`,
  })),
  ...['file_content', 'file_metadata', 'file_bucket_file', 'static_file_content', 'environments', 'environment_classes', 'environment_modules', 'tasks', 'plans'].map((what) => ({
    'match-request': { path: `/puppet/v3/${what}`, type: 'path' },
    allow: '*',
    'sort-order': 500,
    name: `baton test: ${what}`,
  })),
  { 'match-request': { path: '/status/v1/', type: 'path', method: 'get' }, 'allow-unauthenticated': true, 'sort-order': 500, name: 'baton test: status' },
  { 'match-request': { path: '/', type: 'path' }, deny: '*', 'sort-order': 999, name: 'baton test: deny the rest' },
];

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
  const p = {
    confdir: join(root, 'conf'),
    ssldir: join(root, 'conf', 'ssl'),
    vardir: join(root, 'var'),
    publicdir: join(root, 'var', 'public'),
    logdir: join(root, 'log'),
    rundir: join(root, 'run'),
    codedir: join(root, 'code'),
  };
  for (const d of Object.values(p)) mkdirSync(d, { recursive: true });
  await installSsl(pki, p.ssldir, certname);
  const settings: Record<string, string> = {
    certname,
    server: '127.0.0.1',
    serverport: String(server.port),
    ssldir: p.ssldir,
    vardir: p.vardir,
    publicdir: p.publicdir,
    logdir: p.logdir,
    rundir: p.rundir,
    codedir: p.codedir,
  };
  writeFileSync(join(p.confdir, 'puppet.conf'), ['[main]', ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`), ''].join('\n'));
  const flags = [
    '--confdir', p.confdir,
    ...Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v]),
  ];
  return {
    certname,
    root,
    confdir: p.confdir,
    ssldir: p.ssldir,
    vardir: p.vardir,
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
