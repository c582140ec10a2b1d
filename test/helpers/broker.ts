// Runs a real broker process (`baton broker`) on a free port and follows its JSON log.
import { spawn, type ChildProcess } from 'node:child_process';
import { ensureBuilt } from '../../scripts/freshness.mjs';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestPki } from './pki.ts';

export const BATON_BIN = new URL('../../bin/baton.mjs', import.meta.url).pathname;

// Tests drive the built `baton` (dist/), as users run it: build it first when the sources are newer
// (npm test does so in pretest; this covers a single test file run on its own).
await ensureBuilt();

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A `baton` child process whose JSON log lines on stdout can be awaited as events. */
export class ServiceProcess {
  readonly logs: LogLine[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<number | null>;
  stderr = '';

  constructor(readonly proc: ChildProcess) {
    proc.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = once(proc, 'exit').then(([code]) => code as number | null);
    createInterface({ input: proc.stdout! }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      this.logs.push(line);
      this.waiters = this.waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
    });
  }

  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(pred: (l: LogLine) => boolean): Promise<LogLine> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return this.waitForNextLog(pred);
  }

  /** Resolves once `n` log lines (past and future) match. */
  async waitForCount(pred: (l: LogLine) => boolean, n: number): Promise<void> {
    let seen = this.logs.filter(pred).length;
    while (seen < n) {
      await this.waitForNextLog(pred);
      seen = this.logs.filter(pred).length; // several lines may have come in one chunk
    }
  }

  /** Resolves with the first matching log line from now on. */
  waitForNextLog(pred: (l: LogLine) => boolean): Promise<LogLine> {
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  /** Stops with SIGTERM (or another signal) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }
}

export class BrokerProcess extends ServiceProcess {
  port = 0;

  url(path = '/pcp2/agent'): string {
    return `wss://127.0.0.1:${this.port}${path}`;
  }

  async metrics(): Promise<string> {
    return fetchInsecure(`https://127.0.0.1:${this.port}/metrics`);
  }
}

export interface StartBrokerOptions {
  pki: TestPki;
  config?: Record<string, unknown>;
  logLevel?: string;
  /** Extra arguments after `baton broker --config FILE` (e.g. `['--workers', '2']`). */
  args?: string[];
  /** Runs the broker with this open-file limit (`ulimit -n`), as a machine with a low limit would. */
  openFiles?: number;
}

export async function startBrokerProcess(opts: StartBrokerOptions & { port?: number }): Promise<BrokerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-broker-'));
  const configFile = join(dir, 'broker.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      'ssl-ca-cert': opts.pki.ca,
      'ssl-cert': opts.pki.cert('broker'),
      'ssl-key': opts.pki.key('broker'),
      host: '127.0.0.1',
      port: opts.port ?? 0,
      'log-level': opts.logLevel ?? 'debug',
      ...opts.config,
    }),
  );
  const argv = [process.execPath, BATON_BIN, 'broker', '--config', configFile, ...(opts.args ?? [])];
  const [file, ...args] = opts.openFiles === undefined ? argv : ['/bin/sh', '-c', `ulimit -n ${opts.openFiles} && exec "$@"`, 'sh', ...argv];
  const proc = spawn(file!, args, {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'], // the IPC channel: the broker stops if this test process dies
    env: { ...process.env, BATON_PORT: '', BATON_HOST: '' },
  });
  const broker = new BrokerProcess(proc);
  const exited = broker.exited.then((code) => {
    throw new Error(`broker exited (${String(code)}) before listening: ${broker.stderr}`);
  });
  const listening = await Promise.race([broker.waitForLog((l) => l.msg === 'listening'), exited]);
  broker.port = listening.port as number;
  return broker;
}

/** GET over HTTPS without verifying the server (status and metrics in tests). */
export async function fetchInsecure(url: string): Promise<string> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    request(url, { rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

/** Reads one sample of a Prometheus text exposition, e.g. `metricValue(text, 'x_total', {reason: 'y'})`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  const prefix = want ? `${name}{${want}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? NaN : Number(line.slice(prefix.length));
}
