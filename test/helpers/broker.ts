// Runs a real broker process (`baton broker`) on a free port and follows its JSON log.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestPki } from './pki.ts';

export const BATON_BIN = new URL('../../bin/baton.mjs', import.meta.url).pathname;

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export class BrokerProcess {
  readonly logs: LogLine[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  port = 0;

  constructor(readonly proc: ChildProcess) {
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
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  url(path = '/pcp2/agent'): string {
    return `wss://127.0.0.1:${this.port}${path}`;
  }

  async metrics(): Promise<string> {
    const res = await fetchInsecure(`https://127.0.0.1:${this.port}/metrics`);
    return res;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    this.proc.kill('SIGTERM');
    await exited;
  }
}

export interface StartBrokerOptions {
  pki: TestPki;
  config?: Record<string, unknown>;
  logLevel?: string;
}

export async function startBrokerProcess(opts: StartBrokerOptions): Promise<BrokerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-broker-'));
  const configFile = join(dir, 'broker.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      'ssl-ca-cert': opts.pki.ca,
      'ssl-cert': opts.pki.cert('broker'),
      'ssl-key': opts.pki.key('broker'),
      host: '127.0.0.1',
      port: 0,
      'log-level': opts.logLevel ?? 'debug',
      ...opts.config,
    }),
  );
  const proc = spawn(process.execPath, [BATON_BIN, 'broker', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BATON_PORT: '', BATON_HOST: '' },
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const broker = new BrokerProcess(proc);
  const exited = once(proc, 'exit').then(([code]) => {
    throw new Error(`broker exited (${String(code)}) before listening: ${stderr}`);
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
