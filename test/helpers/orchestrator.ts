// A real orchestrator process with its own codedir and tokens, against test brokers and Redis.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BATON_BIN, ServiceProcess } from './broker.ts';
import { http, type HttpOptions, type HttpResponse } from './http.ts';
import type { TestPki } from './pki.ts';

export const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
export const VIEWER_TOKEN = 'viewer-token-0123456789abcdef';
export const ECHO_ONLY_TOKEN = 'echo-only-token-0123456789ab';

/**
 * `sample::chaos_marker`: appends "<node> <pid>" to the file `<dir>/<node>` as it starts, sleeps
 * `seconds`, exits 0. The chaos suite counts executions from these files, not from Baton's own
 * records. The node is the agent's: a task runs in its transaction's spool directory, which a
 * fleet agent keeps at `<base>/<node>/spool/<transaction>`. Parameters arrive as PT_ variables
 * and are only ever quoted expansions, never parsed as shell code.
 */
export const CHAOS_MARKER_SCRIPT = [
  '#!/bin/sh',
  'here=$(pwd -P)',
  'node=$(basename "$(dirname "$(dirname "$here")")")',
  'printf \'%s %s\\n\' "$node" "$$" >> "$PT_dir/$node"',
  'sleep "$PT_seconds"',
  'echo marked',
  '',
].join('\n');

/** A codedir with a few sample tasks in `production`. */
export function makeCodedir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-codedir-'));
  const tasks = join(dir, 'environments', 'production', 'modules', 'sample', 'tasks');
  mkdirSync(tasks, { recursive: true });
  mkdirSync(join(dir, 'environments', 'staging', 'modules'), { recursive: true });
  const task = (name: string, script: string, metadata?: object) => {
    writeFileSync(join(tasks, `${name}.sh`), script);
    chmodSync(join(tasks, `${name}.sh`), 0o755);
    if (metadata) writeFileSync(join(tasks, `${name}.json`), JSON.stringify(metadata));
  };
  task('echo', '#!/bin/sh\necho "$PT_message"\n', { description: 'Echo a message', supports_noop: true, parameters: { message: { type: 'String[1]' } } });
  task('json', '#!/bin/sh\nprintf \'{"greeting":"hello %s","items":[]}\' "$PT_name"\n', { parameters: { name: { type: 'String' } } });
  task('fail', '#!/bin/sh\necho "going down" >&2\nexit 3\n', { parameters: {} });
  task('sleep', '#!/bin/sh\nsleep "$PT_seconds"\necho slept\n', { parameters: { seconds: { type: 'Integer[0, 3600]' } } });
  task('wait_for', '#!/bin/sh\nwhile [ ! -f "$PT_gate" ]; do sleep 0.05; done\necho "$PT_word"\n', { parameters: { gate: { type: 'String' }, word: { type: 'Optional[String]', default: 'done' } } });
  task('secret', '#!/bin/sh\necho "length ${#PT_password}"\n', { parameters: { password: { type: 'String', sensitive: true } } });
  task('count', '#!/bin/sh\necho run >> "$PT_file"\necho counted\n', { parameters: { file: { type: 'String' } } });
  task('gated_count', '#!/bin/sh\nwhile [ ! -f "$PT_gate" ]; do sleep 0.05; done\necho run >> "$PT_file"\necho counted\n', { parameters: { gate: { type: 'String' }, file: { type: 'String' } } });
  task('chaos_marker', CHAOS_MARKER_SCRIPT, { description: 'Marks one execution per run, then sleeps', parameters: { dir: { type: 'String[1]' }, seconds: { type: 'Integer[0, 3600]' } } });
  return dir;
}

export function writeTokens(dir: string): string {
  const path = join(dir, 'tokens.json');
  writeFileSync(path, JSON.stringify([
    { token: ADMIN_TOKEN, login: 'admin', permissions: ['*'] },
    { token: VIEWER_TOKEN, login: 'viewer', permissions: ['jobs:view', 'inventory:view', 'tasks:view'] },
    { token: ECHO_ONLY_TOKEN, login: 'operator', permissions: ['jobs:run', 'jobs:view', 'tasks:run:sample::echo'] },
  ]));
  return path;
}

export class OrchestratorProcess extends ServiceProcess {
  port = 0;
  ca!: Buffer;

  url(path: string): string {
    return `https://127.0.0.1:${this.port}${path}`;
  }

  api(path: string, opts: HttpOptions = {}): Promise<HttpResponse> {
    return http(this.url(path), { ca: this.ca, token: ADMIN_TOKEN, ...opts });
  }
}

export interface StartOrchestratorOptions {
  pki: TestPki;
  brokerUris: string[];
  redisUrl: string;
  codedir: string;
  keyPrefix?: string;
  config?: Record<string, unknown>;
  port?: number;
  /** The certificate CN, and so the controller identity pcp://<name>/controller (default orchestrator). */
  name?: string;
}

export async function startOrchestratorProcess(opts: StartOrchestratorOptions): Promise<OrchestratorProcess> {
  const name = opts.name ?? 'orchestrator';
  await opts.pki.issue(name, ['127.0.0.1', 'localhost']);
  const dir = mkdtempSync(join(tmpdir(), 'baton-orch-'));
  const configFile = join(dir, 'orchestrator.json');
  writeFileSync(configFile, JSON.stringify({
    host: '127.0.0.1',
    port: opts.port ?? 0,
    'ssl-ca-cert': opts.pki.ca,
    'ssl-cert': opts.pki.cert(name),
    'ssl-key': opts.pki.key(name),
    'broker-ws-uris': opts.brokerUris,
    redis: opts.redisUrl,
    'key-prefix': opts.keyPrefix ?? `t${process.pid}`,
    codedir: opts.codedir,
    'tokens-file': writeTokens(dir),
    'log-level': 'debug',
    ...opts.config,
  }));
  const proc = spawn(process.execPath, [BATON_BIN, 'orchestrator', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const o = new OrchestratorProcess(proc);
  o.ca = readFileSync(opts.pki.ca);
  const exited = o.exited.then((code) => {
    throw new Error(`orchestrator exited (${String(code)}) before listening: ${o.stderr}`);
  });
  const listening = await Promise.race([o.waitForLog((l) => l.msg === 'listening'), exited]);
  o.port = listening.port as number;
  return o;
}

/** Resolves once the orchestrator's inventory shows `count` connected nodes (it follows a subscription). */
export async function waitForConnected(o: OrchestratorProcess, count: number): Promise<void> {
  for (;;) {
    const changed = o.waitForNextLog((l) => l.msg === 'inventory changed');
    const items = (await o.api('/orchestrator/v1/inventory')).json.items as { connected: boolean }[];
    if (items.filter((i) => i.connected).length >= count) return;
    await changed;
  }
}

/** Follows a job's events until it ends; returns them all. */
export async function waitForJobEnd(o: OrchestratorProcess, jobId: string): Promise<{ type: string; details: Record<string, unknown>; id: string }[]> {
  const events: { type: string; details: Record<string, unknown>; id: string }[] = [];
  let start = 1;
  for (;;) {
    const ended = o.waitForNextLog((l) => l.msg === 'job ended' && l.job === jobId);
    const res = await o.api(`/orchestrator/v1/jobs/${jobId}/events?start=${start}`);
    events.push(...res.json.items);
    start = Number(res.json['next-events'].event);
    if (events.some((e) => e.type === 'job_finished' || e.type === 'job_aborted')) return events;
    await ended; // an event, not a sleep: the orchestrator says the job ended
  }
}

/** Stops what an orchestrator test started, agents first (any of them may be missing). */
export async function stopStack(s: { agents: Iterable<{ stop(): Promise<void> }>; orch?: ServiceProcess; broker?: ServiceProcess; redis?: { stop(): Promise<void> }; pki?: { remove(): void } }): Promise<void> {
  for (const a of s.agents) await a.stop();
  await s.orch?.stop();
  await s.broker?.stop();
  await s.redis?.stop();
  s.pki?.remove();
}
