// A private PostgreSQL cluster per test file (for PuppetDB): `initdb` in a temporary directory,
// `postgres` on a free port of 127.0.0.1 with its socket in that directory, and a database and
// roles for PuppetDB. Never the machine's own clusters. initdb and postgres refuse to run as root,
// so under root they run as the `postgres` user (else `nobody`) through setpriv, on directories
// chowned to it.
//
// Also the process plumbing that the Puppet server and PuppetDB helpers share: a service in its
// own process group, its output kept (the tail, for failure messages) and a watchdog that stops it
// if the test process dies without doing so.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { freePort } from '../../lib/net.ts';

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Service processes

/** `baton up`'s watchdog (as in redis.ts): it stops the service when the test process is gone. */
const WATCHDOG = new URL('../../cli/up/watchdog.mjs', import.meta.url).pathname;
const LOG_TAIL_LINES = 300;

export interface ServiceProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  readonly running: boolean;
  /** The last lines of its stdout and stderr (all of it is also in `logFile`). */
  logs(): string;
  readonly logFile: string;
  /** Calls `fn` with each line of output (stdout and stderr). */
  onLine(fn: (line: string) => void): void;
  /** SIGTERM to its process group, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface ServiceSpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Where all its output goes. */
  logFile: string;
  /** What the watchdog looks for in /proc/<pid>/cmdline (guards against a recycled pid). */
  program: string;
}

/** Starts `cmd` in its own process group (so that stop() reaches every process it started). */
export function spawnService(name: string, cmd: string, args: string[], opts: ServiceSpawnOptions): ServiceProcess {
  const proc = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const tail: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  const file = createWriteStream(opts.logFile, { flags: 'a' });
  file.on('error', () => undefined); // the directory may be removed before the last line
  for (const stream of [proc.stdout!, proc.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
      file.write(line + '\n');
      for (const fn of listeners) fn(line);
    });
  }
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.once('error', (err) => {
      tail.push(`${name}: ${err.message}`);
      resolve();
    });
  });
  const watchdog =
    proc.pid === undefined ? undefined : spawn(process.execPath, [WATCHDOG, String(proc.pid), opts.program], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  watchdog?.unref();
  watchdog?.channel?.unref();
  void exited.then(() => {
    watchdog?.kill();
    file.end();
  });
  const gone = () => proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-proc.pid!, signal);
    } catch {
      // the group is gone already
    }
  };
  return {
    name,
    proc,
    exited,
    get running() {
      return !gone();
    },
    logs: () => tail.join('\n'),
    logFile: opts.logFile,
    onLine: (fn) => void listeners.push(fn),
    async stop(graceMs = 30_000) {
      if (gone()) {
        signalGroup('SIGKILL'); // anything it left behind in its group
        return;
      }
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      signalGroup('SIGKILL');
    },
  };
}

/**
 * Calls `probe` every `intervalMs` until it returns a value (not undefined), the service dies, or
 * `timeoutMs` passes. There is no event for "ready" from outside a JVM: look, a bounded number of times.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; service?: ServiceProcess },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    if (opts.service && !opts.service.running) throw new Error(`${what}: ${opts.service.name} exited (${describeExit(opts.service.proc)})`);
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${opts.timeoutMs} ms${last ? ` (last error: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  }
}

const describeExit = (p: ChildProcess) => (p.signalCode ? `signal ${p.signalCode}` : `code ${String(p.exitCode)}`);

// ---------------------------------------------------------------------------------------------
// Running as an unprivileged user

export interface RunAs {
  /** The command prefix (setpriv ...) or [] when no switch is needed. */
  prefix: string[];
  uid: number;
  gid: number;
  user: string;
}

/** How to run a program that refuses root: as `postgres` (else `nobody`) when we are root, as ourselves otherwise. */
export function unprivileged(preferred = ['postgres', 'nobody']): RunAs {
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return { prefix: [], uid, gid: process.getgid?.() ?? 0, user: String(uid) };
  for (const user of preferred) {
    try {
      const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
      const [u, g] = [id('-u'), id('-g')];
      return { prefix: ['setpriv', `--reuid=${u}`, `--regid=${g}`, '--init-groups', '--'], uid: u, gid: g, user };
    } catch {
      // no such user; try the next one
    }
  }
  throw new Error(`running as root and none of the users ${preferred.join(', ')} exists to run PostgreSQL as`);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** The newest PostgreSQL's bin directory under /usr/lib/postgresql (Debian's layout), or null. */
export function postgresBindir(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'postgres')) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

export interface PostgresDatabase {
  name: string;
  /** The owner (PuppetDB's write user). */
  user: string;
  password: string;
  /** A role that may only read (PuppetDB's read-database). */
  readUser: string;
  readPassword: string;
  /** PuppetDB's `subname`: //127.0.0.1:<port>/<name>. */
  subname: string;
}

export interface TestPostgres {
  host: '127.0.0.1';
  port: number;
  socketDir: string;
  dataDir: string;
  /** The database made for PuppetDB (owner `puppetdb`, read-only role `puppetdb_read`, extension pg_trgm). */
  puppetdb: PostgresDatabase;
  service: ServiceProcess;
  /** Runs SQL as the superuser through the socket; returns psql's unaligned output. */
  psql(sql: string, database?: string): Promise<string>;
  logs(): string;
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** Name of PuppetDB's database and owner role; default `puppetdb`. */
  database?: string;
  /** Milliseconds for initdb plus startup; default 60 s. */
  startTimeoutMs?: number;
}

const START_ATTEMPTS = 3;
const SUPERUSER = 'postgres';

/** Whether a private PostgreSQL can be started here (tests skip otherwise). */
export function postgresAvailable(): boolean {
  return postgresBindir() !== null;
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<TestPostgres> {
  const bindir = postgresBindir();
  if (!bindir) throw new Error('PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; Debian: apt-get install postgresql)');
  const as = unprivileged();
  const root = mkdtempSync(join(tmpdir(), 'baton-pg-'));
  try {
    chmodSync(root, 0o755); // the unprivileged user must reach its directories
    const dataDir = join(root, 'data');
    const socketDir = join(root, 'sock');
    for (const d of [dataDir, socketDir]) {
      mkdirSync(d, { mode: 0o700 });
      chownSync(d, as.uid, as.gid);
    }
    const bin = (name: string) => join(bindir, name);
    const initdb = [bin('initdb'), '-D', dataDir, '-U', SUPERUSER, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync'];
    const argv = [...as.prefix, ...initdb];
    await run(argv[0]!, argv.slice(1), { cwd: root, timeout: opts.startTimeoutMs ?? 60_000 }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`initdb failed: ${err.message}\n${err.stderr ?? ''}`);
    });
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
      const port = await freePort();
      try {
        const service = await startServer(bin, as, root, dataDir, socketDir, port, opts.startTimeoutMs ?? 60_000);
        return await ready(bin, root, dataDir, socketDir, port, service, opts.database ?? 'puppetdb');
      } catch (err) {
        lastError = err as Error; // most likely the port was taken in between: try another
      }
    }
    throw lastError ?? new Error('postgres did not start');
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}

async function startServer(bin: (n: string) => string, as: RunAs, root: string, dataDir: string, socketDir: string, port: number, timeoutMs: number): Promise<ServiceProcess> {
  const cmd = [
    bin('postgres'),
    '-D', dataDir,
    '-p', String(port),
    '-k', socketDir,
    '-c', 'listen_addresses=127.0.0.1',
    // A throw-away cluster: no durability, little memory.
    '-c', 'fsync=off',
    '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off',
    '-c', 'shared_buffers=32MB',
    '-c', 'max_connections=100',
  ];
  const argv = [...as.prefix, ...cmd];
  const service = spawnService('postgres', argv[0]!, argv.slice(1), { cwd: root, logFile: join(root, 'postgres.log'), program: 'postgres' });
  const up = new Promise<void>((resolve, reject) => {
    service.onLine((line) => {
      if (line.includes('database system is ready to accept connections')) resolve();
    });
    void service.exited.then(() => reject(new Error(`postgres exited before it was ready:\n${service.logs()}`)));
  });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`postgres was not ready within ${timeoutMs} ms:\n${service.logs()}`)), timeoutMs);
  });
  try {
    await Promise.race([up, late]);
    return service;
  } catch (err) {
    await service.stop(5_000);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

async function ready(bin: (n: string) => string, root: string, dataDir: string, socketDir: string, port: number, service: ServiceProcess, name: string): Promise<TestPostgres> {
  const psql = async (sql: string, database = 'postgres') => {
    const args = ['-h', socketDir, '-p', String(port), '-U', SUPERUSER, '-d', database, '-v', 'ON_ERROR_STOP=1', '-X', '-q', '-A', '-t', '-c', sql];
    try {
      return (await run(bin('psql'), args, { timeout: 30_000 })).stdout;
    } catch (err) {
      throw new Error(`psql failed: ${(err as Error).message}\n${(err as { stderr?: string }).stderr ?? ''}`);
    }
  };
  const self: TestPostgres = {
    host: '127.0.0.1',
    port,
    socketDir,
    dataDir,
    service,
    puppetdb: undefined as unknown as PostgresDatabase,
    psql,
    logs: () => service.logs(),
    async stop() {
      await service.stop(15_000); // SIGTERM: smart shutdown; its children follow the postmaster
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    self.puppetdb = await createPuppetdbDatabase(self, name);
  } catch (err) {
    await self.stop();
    throw err;
  }
  writeFileSync(join(root, 'README'), `private PostgreSQL cluster of a Baton test (port ${port}); removed when the test stops it\n`);
  return self;
}

/**
 * The database PuppetDB 7 wants: owned by its write user, the pg_trgm extension (created by a
 * superuser; PuppetDB's migrations need it), and a read user with SELECT only (PuppetDB checks
 * that its read-database user can do nothing else, and logs errors otherwise).
 */
async function createPuppetdbDatabase(pg: TestPostgres, name: string): Promise<PostgresDatabase> {
  const db: PostgresDatabase = {
    name,
    user: name,
    password: randomBytes(12).toString('hex'),
    readUser: `${name}_read`,
    readPassword: randomBytes(12).toString('hex'),
    subname: `//127.0.0.1:${pg.port}/${name}`,
  };
  await pg.psql(`CREATE ROLE "${db.user}" LOGIN PASSWORD '${db.password}'`);
  await pg.psql(`CREATE ROLE "${db.readUser}" LOGIN PASSWORD '${db.readPassword}'`);
  await pg.psql(`CREATE DATABASE "${db.name}" OWNER "${db.user}" ENCODING 'UTF8' TEMPLATE template0`);
  await pg.psql(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`, db.name);
  await pg.psql(`CREATE EXTENSION pg_trgm`, db.name);
  await pg.psql(`GRANT CONNECT ON DATABASE "${db.name}" TO "${db.readUser}"`);
  for (const grant of ['SELECT ON TABLES', 'USAGE ON SEQUENCES', 'EXECUTE ON FUNCTIONS']) {
    await pg.psql(`ALTER DEFAULT PRIVILEGES FOR USER "${db.user}" IN SCHEMA public GRANT ${grant} TO "${db.readUser}"`, db.name);
  }
  return db;
}
