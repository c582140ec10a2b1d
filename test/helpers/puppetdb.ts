// A real PuppetDB (Debian's `puppetdb` 7) per test file, on a private PostgreSQL (postgres.ts):
// its own conf.d (config.ini, database.ini, jetty.ini, auth.conf), vardir and logs in a temporary
// directory, HTTPS only, on a free port of 127.0.0.1, with a certificate from Baton's test PKI.
// The packaged configuration (/etc/puppetdb) is only a model: every file is written here.
//
// PuppetDB stores commands (facts, catalogs, reports) asynchronously: a query right after
// `puppet agent` may not see them yet; poll with a bound (waitFor below).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../lib/net.ts';
import type { TestPki } from './pki.ts';
import { pollUntil, spawnService, type ServiceProcess, type TestPostgres } from './postgres.ts';
import { httpsJson, JVM_START_TIMEOUT_MS, jvmArgs, logbackXml, tlsClient, type TlsClient } from './puppetserver.ts';

export const PUPPETDB_JAR = '/usr/share/puppetdb/puppetdb.jar';
const JAVA = '/usr/bin/java';

/** Whether PuppetDB can be started here (tests skip otherwise). */
export function puppetdbAvailable(): boolean {
  return existsSync(PUPPETDB_JAR) && existsSync(JAVA);
}

export interface PuppetdbOptions {
  pki: TestPki;
  postgres: TestPostgres;
  /** Its certificate name (issued with SANs localhost and 127.0.0.1); default `puppetdb`. */
  certname?: string;
  /** HTTPS port; default a free one (pick it beforehand to give the URL to a Puppet server started in parallel). */
  port?: number;
  /** Only these certificate names may use the API (certificate-allowlist); default any certificate of the CA. */
  allowlist?: string[];
  heapMb?: number;
  startTimeoutMs?: number;
}

export interface TestPuppetdb {
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  certname: string;
  root: string;
  /** Milliseconds from spawning the JVM to puppetdb-status `running`. */
  startupMs: number;
  service: ServiceProcess;
  /** The test CA and this PuppetDB's own certificate, usable as client credentials. */
  tls: TlsClient;
  /** GET /pdb/query/v4?query=<pql> (throws unless 200). */
  query<T = unknown>(pql: string, tls?: TlsClient): Promise<T>;
  /** Runs `pql` until `accept` takes its answer, within `timeoutMs` (PuppetDB stores commands asynchronously). */
  waitFor<T = unknown>(pql: string, accept: (rows: T) => boolean, timeoutMs?: number): Promise<T>;
  logs(): string;
  /** Stops the JVM (SIGTERM to its group, SIGKILL after 30 s) and removes its directory; not the PostgreSQL. */
  stop(): Promise<void>;
}

export async function startPuppetdb(opts: PuppetdbOptions): Promise<TestPuppetdb> {
  if (!puppetdbAvailable()) throw new Error(`puppetdb is not installed (no ${PUPPETDB_JAR}; Debian: apt-get install puppetdb)`);
  const certname = opts.certname ?? 'puppetdb';
  await opts.pki.issue(certname, ['localhost', '127.0.0.1']);
  const root = mkdtempSync(join(tmpdir(), 'baton-puppetdb-'));
  const conf = join(root, 'conf.d');
  const vardir = join(root, 'var');
  const logdir = join(root, 'log');
  for (const d of [conf, vardir, logdir, join(root, 'home')]) mkdirSync(d, { recursive: true });
  const port = opts.port ?? (await freePort());
  const db = opts.postgres.puppetdb;

  const ini = (sections: Record<string, Record<string, string | number>>) =>
    Object.entries(sections)
      .map(([name, kv]) => [`[${name}]`, ...Object.entries(kv).map(([k, v]) => `${k} = ${v}`)].join('\n'))
      .join('\n\n') + '\n';
  writeFileSync(join(root, 'logback.xml'), logbackXml());
  const allowlist = join(root, 'certificate-allowlist');
  if (opts.allowlist) writeFileSync(allowlist, opts.allowlist.join('\n') + '\n');
  writeFileSync(
    join(conf, 'config.ini'),
    ini({
      global: { vardir, 'logging-config': join(root, 'logback.xml') },
      'command-processing': { threads: 1 },
      ...(opts.allowlist ? { puppetdb: { 'certificate-allowlist': allowlist } } : {}),
    }),
  );
  writeFileSync(
    join(conf, 'database.ini'),
    ini({
      database: { subname: db.subname, username: db.user, password: db.password },
      'read-database': { subname: db.subname, username: db.readUser, password: db.readPassword },
    }),
  );
  // No `port`: no plain HTTP listener (it would answer anyone without a certificate).
  writeFileSync(
    join(conf, 'jetty.ini'),
    ini({
      jetty: {
        'ssl-host': '127.0.0.1',
        'ssl-port': port,
        'ssl-cert': opts.pki.cert(certname),
        'ssl-key': opts.pki.key(certname),
        'ssl-ca-cert': opts.pki.ca,
      },
    }),
  );
  writeFileSync(join(conf, 'repl.ini'), ini({ nrepl: { enabled: 'false' } }));
  writeFileSync(join(conf, 'auth.conf'), JSON.stringify({ authorization: { version: 1, rules: AUTH_RULES } }, null, 2) + '\n');
  writeFileSync(join(root, 'bootstrap.cfg'), SERVICES.join('\n') + '\n');

  const args = [
    ...jvmArgs(opts.heapMb ?? 384, logdir),
    '-cp', PUPPETDB_JAR,
    'clojure.main', '-m', 'puppetlabs.puppetdb.core',
    'services',
    '--config', conf,
    '--bootstrap-config', join(root, 'bootstrap.cfg'),
  ];
  const t0 = Date.now();
  const service = spawnService('puppetdb', JAVA, args, { cwd: root, env: { ...process.env, HOME: join(root, 'home') }, logFile: join(logdir, 'puppetdb.log'), program: 'puppetdb' });
  const url = `https://127.0.0.1:${port}`;
  const tls = tlsClient(opts.pki, certname);
  try {
    await pollUntil(
      `puppetdb on port ${port}`,
      async () => {
        const res = await httpsJson(`${url}/status/v1/services/puppetdb-status`, tls, { timeoutMs: 5_000 });
        return res.status === 200 && (res.json as { state?: string } | undefined)?.state === 'running' ? true : undefined;
      },
      { timeoutMs: opts.startTimeoutMs ?? JVM_START_TIMEOUT_MS, service },
    );
  } catch (err) {
    await service.stop(5_000);
    const logs = service.logs();
    rmSync(root, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n--- puppetdb output (last lines) ---\n${logs}`);
  }
  const startupMs = Date.now() - t0;
  const query = async <T>(pql: string, client: TlsClient = tls): Promise<T> => {
    const res = await httpsJson(`${url}/pdb/query/v4?query=${encodeURIComponent(pql)}`, client, { timeoutMs: 30_000 });
    if (res.status !== 200) throw new Error(`PuppetDB answered ${res.status} to ${pql}: ${res.text.slice(0, 500)}`);
    return res.json as T;
  };
  return {
    url,
    port,
    certname,
    root,
    startupMs,
    service,
    tls,
    query,
    waitFor: <T>(pql: string, accept: (rows: T) => boolean, timeoutMs = 60_000) =>
      pollUntil(
        `PuppetDB: ${pql}`,
        async () => {
          const rows = await query<T>(pql);
          return accept(rows) ? rows : undefined;
        },
        { timeoutMs, intervalMs: 250, service },
      ),
    logs: () => service.logs(),
    async stop() {
      await service.stop(30_000);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** PuppetDB 7's services (bootstrap.cfg). */
const SERVICES = [
  'puppetlabs.trapperkeeper.services.webserver.jetty9-service/jetty9-service',
  'puppetlabs.trapperkeeper.services.webrouting.webrouting-service/webrouting-service',
  'puppetlabs.trapperkeeper.services.authorization.authorization-service/authorization-service',
  'puppetlabs.trapperkeeper.services.metrics.metrics-service/metrics-webservice',
  'puppetlabs.trapperkeeper.services.status.status-service/status-service',
  'puppetlabs.trapperkeeper.services.scheduler.scheduler-service/scheduler-service',
  'puppetlabs.puppetdb.cli.services/puppetdb-service',
  'puppetlabs.puppetdb.command/command-service',
  'puppetlabs.puppetdb.pdb-routing/maint-mode-service',
  'puppetlabs.puppetdb.pdb-routing/pdb-routing-service',
  'puppetlabs.puppetdb.config/config-service',
  'puppetlabs.puppetdb.dashboard/dashboard-redirect-service',
];

/** The trapperkeeper authorization rules (status and metrics; the /pdb API is governed by the certificate allowlist). */
const AUTH_RULES = [
  { 'match-request': { path: '/status/v1/', type: 'path', method: 'get' }, 'allow-unauthenticated': true, 'sort-order': 500, name: 'baton test: status' },
  { 'match-request': { path: '/metrics', type: 'path', method: ['get', 'post'] }, allow: '*', 'sort-order': 500, name: 'baton test: metrics' },
  { 'match-request': { path: '/', type: 'path' }, deny: '*', 'sort-order': 999, name: 'baton test: deny the rest' },
];
