// Runs the `baton` command as a user does: client commands to completion, `baton up` as a
// long-running child whose banner says where everything runs, and client commands against a
// stand-in orchestrator (startStubApi) that can also leave requests unanswered.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { BATON_BIN } from './broker.ts'; // importing it builds dist/ when the sources are newer
import { makePki } from './pki.ts';

export { BATON_BIN };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `baton ...args` to its end; never throws for a non-zero exit. */
export function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [BATON_BIN, ...args], { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') return reject(err);
      resolve({ code: child.exitCode, stdout, stderr });
    });
  });
}

export interface UpFleet {
  proc: ChildProcess;
  /** Everything it printed on stdout so far. */
  output: string[];
  stderr: string;
  apiUrl: string;
  pids: number[];
  exited: Promise<number | null>;
}

/** Starts `baton up` in `cwd` with HOME=`home`, and resolves once it prints "Baton is up". */
export async function startUp(args: string[], cwd: string, home: string): Promise<UpFleet> {
  const proc = spawn(process.execPath, [BATON_BIN, 'up', ...args], { cwd, env: { ...process.env, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
  const fleet: UpFleet = { proc, output: [], stderr: '', apiUrl: '', pids: [], exited: once(proc, 'exit').then(([code]) => code as number | null) };
  proc.stderr!.on('data', (d: Buffer) => (fleet.stderr += d.toString()));
  const up = new Promise<void>((resolve) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      fleet.output.push(line);
      if (line === 'Ctrl-C stops everything.') resolve(); // the banner's last line
    });
  });
  await Promise.race([up, fleet.exited.then((code) => Promise.reject(new Error(`baton up exited (${String(code)}) before it was up:\n${fleet.stderr}`)))]);
  const text = fleet.output.join('\n');
  fleet.apiUrl = /orchestrator\s+(https:\/\/\S+)/.exec(text)![1]!;
  fleet.pids = [...text.matchAll(/\(pid ([0-9]+)\)/g)].map((m) => Number(m[1]));
  return fleet;
}

/** Pids of processes whose command line mentions `text` (like `pgrep -f`). */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) found.push(Number(entry));
    } catch {
      // it ended meanwhile
    }
  }
  return found;
}

export { isAlive } from '../../pxp-agent/process-runner.ts';

/** A request the stub orchestrator received; `res` answers it (or never, to stand for a server that hangs). */
export interface StubRequest {
  method: string;
  path: string;
  res: ServerResponse;
}

export interface StubApi {
  url: string;
  /** The CA file that trusts it. */
  ca: string;
  /** The client options that point `baton` at it. */
  args: string[];
  /** Resolves with the first request whose method and path match (including one received already). */
  received(method: string, path: string | RegExp): Promise<StubRequest>;
  close(): Promise<void>;
}

/**
 * A stand-in orchestrator on 127.0.0.1 (HTTPS, its own test CA): `answer` answers a request
 * through its `res`, or leaves it unanswered.
 */
export async function startStubApi(answer: (req: StubRequest) => void): Promise<StubApi> {
  const pki = await makePki([], 'baton-stub-api-');
  const seen: StubRequest[] = [];
  const waiters: { method: string; path: string | RegExp; resolve: (r: StubRequest) => void }[] = [];
  const matches = (r: StubRequest, method: string, path: string | RegExp) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path));
  const server = createHttpsServer({ cert: readFileSync(pki.cert('broker')), key: readFileSync(pki.key('broker')) }, (req, res) => {
    const r: StubRequest = { method: req.method ?? '', path: req.url ?? '', res };
    req.resume();
    req.on('end', () => {
      seen.push(r);
      for (const w of waiters.filter((x) => matches(r, x.method, x.path))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(r);
      }
      answer(r);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    ca: pki.ca,
    args: ['--url', url, '--ca', pki.ca, '--token', 'stub-token-0123456789'],
    received: (method, path) => {
      const found = seen.find((r) => matches(r, method, path));
      return found ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ method, path, resolve }));
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
      pki.remove();
    },
  };
}

export function answerJson(res: ServerResponse, value: unknown, status = 200): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export interface RunningCli {
  proc: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
  /** Resolves once stdout or stderr (as a terminal would mix them) has matched `re`. */
  printed(re: RegExp): Promise<void>;
}

/**
 * Starts `command` (argv) as a long-running child with pipes, and watches its output. With
 * `terminal`, it runs under util-linux `script` on a pseudo-terminal (stdin and stdout are TTYs;
 * what is written to `proc.stdin` is typed; its output, on stdout, is the terminal's).
 */
export function spawnCli(args: string[], opts: { terminal?: boolean; env?: NodeJS.ProcessEnv } = {}): RunningCli {
  const argv = [process.execPath, BATON_BIN, ...args];
  const proc = opts.terminal
    ? spawn('script', ['-q', '-e', '-f', '-c', `exec ${argv.map(shellQuote).join(' ')}`, '/dev/null'], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const watchers: { re: RegExp; resolve: () => void }[] = [];
  const run: RunningCli = {
    proc,
    stdout: '',
    stderr: '',
    exited: once(proc, 'exit').then(([code]) => code as number | null),
    printed: (re) => (re.test(run.stdout + run.stderr) ? Promise.resolve() : new Promise((resolve) => watchers.push({ re, resolve }))),
  };
  const check = () => {
    for (const w of [...watchers]) {
      if (!w.re.test(run.stdout + run.stderr)) continue;
      watchers.splice(watchers.indexOf(w), 1);
      w.resolve();
    }
  };
  proc.stdout!.on('data', (d: Buffer) => {
    run.stdout += d.toString('utf8');
    check();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    run.stderr += d.toString('utf8');
    check();
  });
  return run;
}

const shellQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** Whether util-linux `script` (a pseudo-terminal for a command) is installed. */
export function hasScript(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => existsSync(`${d || '.'}/script`));
}
