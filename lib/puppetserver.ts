// A real Puppet server (Debian's `puppetserver` 7) run privately with Baton's PKI instead of its
// own CA: every file of its configuration written here (conf.d, services.d with the CA service
// replaced by the disabled one, auth.conf, a Puppet confdir and ssldir, vardir, logdir, rundir)
// under one directory, HTTPS on 127.0.0.1, the caller's codedir. `baton up --puppetserver` runs it
// as a supervised child; the tests run it per test file (test/helpers/puppetserver.ts). Also the
// private Puppet dirs of a `puppet agent` that runs against it.
//
// Pitfalls (Debian's Puppet): ssldir defaults to /var/lib/puppet/ssl for root and publicdir to
// /var/cache/puppet/public, whatever --confdir says, so both are always set explicitly here; the
// agent wants a CRL (certificate_revocation=chain): lib/pki.ts ensureCrl(). The packaged conf.d
// (/etc/puppet/puppetserver) is readable by root and `puppet` only, so nothing is copied from it.
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

/** Debian's Puppet server (`apt-get install puppetserver`); BATON_PUPPETSERVER_JAR names another jar. */
export const PUPPETSERVER_JAR = '/usr/share/puppetserver/puppetserver.jar';
export const PUPPETSERVER_PACKAGE = 'puppetserver';
export const JAVA = '/usr/bin/java';
const PUPPETSERVER_RUBY_LOAD_PATH = '/usr/lib/puppetserver/ruby/vendor_ruby';
const PUPPETSERVER_VENDORED_GEMS = '/usr/lib/puppetserver/vendored-jruby-gems';
const JRUBY_LIB = '/usr/share/jruby/lib';
/** The PuppetDB terminus (Debian: puppet-terminus-puppetdb). */
export const PUPPETDB_TERMINUS = '/usr/lib/ruby/vendor_ruby/puppet/indirector/catalog/puppetdb.rb';
export const DEFAULT_PUPPETSERVER_PORT = 8140;
export const DEFAULT_PUPPETSERVER_HEAP_MB = 512;
/** JVMs on a 2-core machine: a cold start takes 35 to 90 s. */
export const JVM_START_TIMEOUT_MS = 180_000;
/** What the Puppet server logs once every service has started. */
export const PUPPETSERVER_READY_LINE = 'Puppet Server has successfully started and is now ready to handle requests';

export const puppetserverJar = (): string => process.env.BATON_PUPPETSERVER_JAR || PUPPETSERVER_JAR;

/** Whether a Puppet server can be started here. */
export function puppetserverAvailable(): boolean {
  return existsSync(puppetserverJar()) && existsSync(JAVA);
}

/** Whether the Puppet server can send data to PuppetDB here. */
export function puppetdbTerminusAvailable(): boolean {
  return existsSync(PUPPETDB_TERMINUS);
}

/** What `baton up --puppetserver` and the tests say when the package is missing. */
export const puppetserverMissing = (): string =>
  `the Puppet server is not installed (no ${existsSync(puppetserverJar()) ? JAVA : puppetserverJar()}): install the Debian package ${PUPPETSERVER_PACKAGE} (apt-get install ${PUPPETSERVER_PACKAGE})`;

/** The files Puppet needs for TLS: the CA (chain), a certificate and its key, and the CA's CRL. */
export interface SslFiles {
  ca: string;
  cert: string;
  key: string;
  crl: string;
}

/** Puts the CA, `certname`'s certificate and key and the CRL where Puppet looks in `ssldir`. */
export function installSsl(files: SslFiles, ssldir: string, certname: string): void {
  mkdirSync(join(ssldir, 'certs'), { recursive: true, mode: 0o755 });
  mkdirSync(join(ssldir, 'private_keys'), { recursive: true, mode: 0o750 });
  copyFileSync(files.ca, join(ssldir, 'certs', 'ca.pem'));
  copyFileSync(files.cert, join(ssldir, 'certs', `${certname}.pem`));
  copyFileSync(files.key, join(ssldir, 'private_keys', `${certname}.pem`));
  copyFileSync(files.crl, join(ssldir, 'crl.pem'));
}

/** JVM flags for a small service: small heap, a quick start over peak speed (2 shared cores). */
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

/** A logback configuration that writes everything to stdout (whoever runs the JVM keeps it). */
export function logbackXml(level = 'info'): string {
  return `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5p [%c{2}] %m%n</pattern></encoder>
  </appender>
  <root level="${level}"><appender-ref ref="STDOUT"/></root>
</configuration>
`;
}

export interface PuppetserverSetup {
  /** The directory that holds everything but the codedir (created; its files are rewritten). */
  root: string;
  /** Its codedir (`environments/<env>/manifests`, modules); default an empty `<root>/code` with `production`. */
  codedir?: string;
  /** The server's certificate name; its certificate needs the SANs agents reach it by (127.0.0.1). */
  certname: string;
  ssl: SslFiles;
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Send catalogs, facts and reports to this PuppetDB (`https://127.0.0.1:<ssl port>`). */
  puppetdbUrl?: string;
  heapMb?: number;
  logLevel?: string;
}

/** How to start a configured Puppet server, and where its parts are. */
export interface PuppetserverLaunch {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  url: string;
  port: number;
  certname: string;
  root: string;
  confdir: string;
  ssldir: string;
  codedir: string;
  logdir: string;
}

/** Writes the Puppet server's whole configuration under `setup.root` and returns how to start it. */
export function writePuppetserverConfig(setup: PuppetserverSetup): PuppetserverLaunch {
  const { root, certname, port } = setup;
  const host = setup.host ?? '127.0.0.1';
  const dir = (...p: string[]) => {
    const d = join(root, ...p);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const confdir = dir('confdir');
  const ssldir = join(confdir, 'ssl');
  let codedir = setup.codedir;
  if (!codedir) {
    dir('code', 'environments', 'production', 'manifests');
    codedir = join(root, 'code');
  }
  const d = { conf: dir('conf.d'), services: dir('services.d'), var: dir('var'), run: dir('run'), log: dir('log'), home: dir('home'), gems: dir('gems') };
  installSsl(setup.ssl, ssldir, certname);

  const hocon = (v: unknown) => JSON.stringify(v, null, 2) + '\n'; // JSON is HOCON
  writeFileSync(join(root, 'logback.xml'), logbackXml(setup.logLevel));
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
        'ssl-host': host,
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
  writeFileSync(join(confdir, 'puppet.conf'), serverPuppetConf({ certname, ssldir, vardir: d.var, logdir: d.log, rundir: d.run, codedir, puppetdb: !!setup.puppetdbUrl }));
  if (setup.puppetdbUrl) {
    writeFileSync(join(confdir, 'puppetdb.conf'), `[main]\nserver_urls = ${setup.puppetdbUrl}\nsoft_write_failure = false\n`);
    writeFileSync(join(confdir, 'routes.yaml'), `---\nserver:\n  facts:\n    terminus: puppetdb\n    cache: yaml\n`);
  }
  const args = [
    ...jvmArgs(setup.heapMb ?? DEFAULT_PUPPETSERVER_HEAP_MB, d.log),
    '-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger',
    `-Djruby.lib=${JRUBY_LIB}`,
    '-jar', puppetserverJar(),
    '--config', d.conf,
    '--bootstrap-config', d.services,
  ];
  return { command: JAVA, args, cwd: root, env: { ...process.env, HOME: d.home }, url: `https://${host}:${port}`, port, certname, root, confdir, ssldir, codedir, logdir: d.log };
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
    name: `baton: own ${what}`,
  })),
  ...['file_content', 'file_metadata', 'file_bucket_file', 'static_file_content', 'environments', 'environment_classes', 'environment_modules', 'tasks', 'plans'].map((what) => ({
    'match-request': { path: `/puppet/v3/${what}`, type: 'path' },
    allow: '*',
    'sort-order': 500,
    name: `baton: ${what}`,
  })),
  { 'match-request': { path: '/status/v1/', type: 'path', method: 'get' }, 'allow-unauthenticated': true, 'sort-order': 500, name: 'baton: status' },
  { 'match-request': { path: '/', type: 'path' }, deny: '*', 'sort-order': 999, name: 'baton: deny the rest' },
];

/** `GET /status/v1/simple`: `running` once the server serves requests. */
export function puppetserverStatus(url: string, ca: Buffer, timeoutMs = 5_000): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/status/v1/simple`, { ca, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: text.trim() }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// A Puppet agent's private dirs

export interface PuppetAgentDirs {
  certname: string;
  root: string;
  confdir: string;
  ssldir: string;
  vardir: string;
  publicdir: string;
  /** The settings that keep `puppet agent` in these dirs and point it at the server. */
  settings: Record<string, string>;
  /** The same as flags (`--confdir DIR --certname NAME ...`). */
  flags: string[];
}

/**
 * Makes a Puppet agent's private dirs under `root` (kept when they exist), installs `ssl` there
 * as `certname`'s, and writes the settings into its puppet.conf too, so that a `puppet agent`
 * started with only `--confdir` stays in them.
 */
export function puppetAgentDirs(opts: { root: string; certname: string; ssl: SslFiles; server: { host?: string; port: number } }): PuppetAgentDirs {
  const { root, certname } = opts;
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
  installSsl(opts.ssl, p.ssldir, certname);
  const settings: Record<string, string> = {
    certname,
    server: opts.server.host ?? '127.0.0.1',
    serverport: String(opts.server.port),
    ssldir: p.ssldir,
    vardir: p.vardir,
    publicdir: p.publicdir,
    logdir: p.logdir,
    rundir: p.rundir,
    codedir: p.codedir,
  };
  writeFileSync(join(p.confdir, 'puppet.conf'), ['[main]', ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`), ''].join('\n'));
  const flags = ['--confdir', p.confdir, ...Object.entries(settings).flatMap(([k, v]) => [`--${k}`, v])];
  return { certname, root, confdir: p.confdir, ssldir: p.ssldir, vardir: p.vardir, publicdir: p.publicdir, settings, flags };
}
