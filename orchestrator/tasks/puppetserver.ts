// Tasks from a Puppet server's tasks API, as in Puppet Enterprise: the list from
// `GET /puppet/v3/tasks?environment=`, one task's metadata and file entries from
// `GET /puppet/v3/tasks/<module>/<task>?environment=`. The file entries' URIs are the Puppet
// server's own (`/puppet/v3/file_content/tasks/...`), so agents whose `master-uris` point at it
// download the files from it. Every request presents the orchestrator's certificate (the Puppet
// server refuses anonymous ones) and ends within `puppetserver-timeout`, answer read included.
// Answers are checked against a schema, and file paths and names are checked to be plain paths
// on that server before they are passed on to agents; nothing else is done with them here.
import { Agent } from 'node:https';
import { boundedRequest, HttpsRequestError, HttpsRequestErrorCode, type HttpsAnswer } from '../../lib/https-request.ts';
import type { Logger } from '../../lib/log.ts';
import { exceedsJsonDepth } from '../../protocol/json-depth.ts';
import { compile, describeErrors } from '../../protocol/validate.ts';
import { puppetserverTaskDetailsSchema, puppetserverTaskListSchema } from '../../schemas/orchestrator-config.ts';
import { splitTaskName, TaskCatalogError, TaskErrorCode, type TaskDescription, type TaskFileEntry, type TaskMetadata } from './catalog.ts';
import { TaskSourceKind, type TaskSource } from './source.ts';

/** `details.reason` of a `service-unavailable` error from the Puppet server. */
export const PuppetserverReason = {
  /** Connection refused, reset, DNS, TLS. */
  unreachable: 'unreachable',
  /** No complete answer within puppetserver-timeout. */
  timeout: 'timeout',
  /** It answered 4xx (other than not found): our certificate or request was refused. */
  refused: 'refused',
  /** It answered 5xx. */
  failed: 'failed',
  /** It answered 200 with something that is not what its tasks API answers. */
  invalidAnswer: 'invalid-answer',
} as const;
export type PuppetserverReason = (typeof PuppetserverReason)[keyof typeof PuppetserverReason];

export const PUPPETSERVER_SERVICE = 'puppetserver';
/** The largest answer read from the Puppet server; a larger one is an invalid answer. */
export const MAX_PUPPETSERVER_ANSWER_BYTES = 16 * 1024 * 1024;
const MAX_ANSWER_DEPTH = 64;
const TASKS_PATH = '/puppet/v3/tasks';
/** Puppet's environment names. */
const ENVIRONMENT_RE = /^[a-z0-9_]+$/;
/** The Puppet server's own error kinds for a task it found but cannot describe (bad metadata). */
const TASK_ERROR_KIND_PREFIX = 'puppet.task';

interface DetailsAnswer {
  name?: string;
  metadata: TaskMetadata;
  files: { filename: string; sha256: string; size_bytes: number; uri: { path: string; params: { environment: string; code_id?: string | null } } }[];
}
type ListAnswer = { name: string }[];

const validateDetails = compile<DetailsAnswer>(puppetserverTaskDetailsSchema);
const validateList = compile<ListAnswer>(puppetserverTaskListSchema);

export interface PuppetserverTaskSourceOptions {
  url: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  timeoutMs: number;
  log?: Logger;
}

type Answer = HttpsAnswer;

export class PuppetserverTaskSource implements TaskSource {
  readonly kind = TaskSourceKind.puppetserver;
  private readonly agent: Agent;
  private readonly base: URL;

  constructor(private readonly opts: PuppetserverTaskSourceOptions) {
    this.base = new URL(opts.url);
    if (this.base.protocol !== 'https:') throw new TypeError(`task-source.puppetserver.url '${opts.url}' must be https://`);
    this.agent = new Agent({ ca: opts.ca, cert: opts.cert, key: opts.key, keepAlive: true, maxSockets: 8 });
  }

  get url(): string {
    return this.base.origin;
  }

  async list(environment: string): Promise<string[]> {
    if (!ENVIRONMENT_RE.test(environment)) throw unknownEnvironment(environment);
    const res = await this.get(TASKS_PATH, environment);
    if (res.status === 404) throw unknownEnvironment(environment);
    const rows = this.parse(res, validateList, 'its task list');
    const names = new Set<string>();
    for (const r of rows) if (splitTaskName(r.name)) names.add(r.name);
    return [...names].sort();
  }

  async describe(environment: string, name: string): Promise<TaskDescription> {
    const parts = splitTaskName(name);
    if (!parts) throw unknownTask(environment, name);
    if (!ENVIRONMENT_RE.test(environment)) throw unknownEnvironment(environment);
    const res = await this.get(`${TASKS_PATH}/${parts.module}/${parts.task}`, environment);
    if (res.status === 404) {
      // Environment, module or task not found: the environment's task list tells which.
      await this.list(environment);
      throw unknownTask(environment, name);
    }
    if (res.status === 500) {
      const kind = errorKind(res.text);
      if (kind?.startsWith(TASK_ERROR_KIND_PREFIX)) {
        throw new TaskCatalogError(TaskErrorCode.invalidMetadata, `the Puppet server cannot describe task '${name}' (${kind}): ${brief(res.text)}`, { details: { task: name, environment } });
      }
    }
    const answer = this.parse(res, validateDetails, `task '${name}'`);
    const files = answer.files.map((f) => this.fileEntry(f, environment, name));
    return { name: parts.task === 'init' ? parts.module : `${parts.module}::${parts.task}`, environment, metadata: answer.metadata, files };
  }

  close(): void {
    this.agent.destroy();
  }

  /** A file entry for agents, from checked fields only; its path must be a plain one on this server. */
  private fileEntry(f: DetailsAnswer['files'][number], environment: string, task: string): TaskFileEntry {
    const bad = (what: string) => this.unavailable(PuppetserverReason.invalidAnswer, `the Puppet server described task '${task}' with ${what}`);
    const segments = f.uri.path.split('/').slice(1);
    if (segments.some((s) => s === '' || s === '.' || s === '..' || safeDecode(s) === null || safeDecode(s) === '.' || safeDecode(s) === '..' || safeDecode(s)!.includes('/'))) {
      throw bad(`a file path that is not a plain path under /puppet/v3/ ('${f.uri.path.slice(0, 200)}')`);
    }
    const name = f.filename.split('/');
    if (f.filename.includes('\\') || f.filename.includes('\0') || name.some((s) => s === '' || s === '.' || s === '..')) {
      throw bad(`a file name that is not a relative path inside the task ('${f.filename.slice(0, 200)}')`);
    }
    if (f.uri.params.environment !== environment) throw bad(`a file of another environment ('${f.uri.params.environment.slice(0, 100)}')`);
    const params: TaskFileEntry['uri']['params'] = { environment };
    if (typeof f.uri.params.code_id === 'string') params.code_id = f.uri.params.code_id;
    return { filename: f.filename, uri: { path: f.uri.path, params }, sha256: f.sha256.toLowerCase(), size_bytes: f.size_bytes };
  }

  /** A 200 answer as JSON checked against its schema; any other status is the server's failure. */
  private parse<T>(res: Answer, validate: ReturnType<typeof compile<T>>, what: string): T {
    if (res.status !== 200) {
      const reason = res.status >= 400 && res.status < 500 ? PuppetserverReason.refused : PuppetserverReason.failed;
      throw this.unavailable(reason, `the Puppet server at ${this.url} answered ${res.status} for ${what}: ${brief(res.text)}`, res.status);
    }
    if (exceedsJsonDepth(res.text, MAX_ANSWER_DEPTH)) throw this.unavailable(PuppetserverReason.invalidAnswer, `the Puppet server's answer for ${what} nests deeper than ${MAX_ANSWER_DEPTH} levels`);
    let value: unknown;
    try {
      value = JSON.parse(res.text);
    } catch {
      throw this.unavailable(PuppetserverReason.invalidAnswer, `the Puppet server answered ${what} with something that is not JSON`);
    }
    if (!validate(value)) throw this.unavailable(PuppetserverReason.invalidAnswer, `the Puppet server's answer for ${what} is not valid: ${describeErrors(validate.errors, 'answer')}`);
    return value;
  }

  private unavailable(reason: PuppetserverReason, msg: string, status?: number): TaskCatalogError {
    this.opts.log?.warn({ service: PUPPETSERVER_SERVICE, reason, ...(status ? { status } : {}) }, msg);
    return new TaskCatalogError(TaskErrorCode.unavailable, msg, { details: { service: PUPPETSERVER_SERVICE, reason } });
  }

  /** One GET with the environment, ended within puppetserver-timeout; rejects only when no answer came. */
  private async get(path: string, environment: string): Promise<Answer> {
    const url = new URL(path, this.base);
    url.searchParams.set('environment', environment);
    try {
      return await boundedRequest(url, { agent: this.agent, method: 'GET', headers: { accept: 'application/json' }, timeoutMs: this.opts.timeoutMs, maxBytes: MAX_PUPPETSERVER_ANSWER_BYTES });
    } catch (err) {
      if (!(err instanceof HttpsRequestError)) throw err;
      if (err.code === HttpsRequestErrorCode.timeout) throw this.unavailable(PuppetserverReason.timeout, `the Puppet server at ${this.url} did not answer within ${this.opts.timeoutMs} ms (puppetserver-timeout)`);
      if (err.code === HttpsRequestErrorCode.tooLarge) throw this.unavailable(PuppetserverReason.invalidAnswer, `the Puppet server's answer is larger than ${MAX_PUPPETSERVER_ANSWER_BYTES} bytes`);
      throw this.unavailable(PuppetserverReason.unreachable, `cannot reach the Puppet server at ${this.url}: ${err.message}`);
    }
  }
}

function unknownTask(environment: string, name: string): TaskCatalogError {
  return new TaskCatalogError(TaskErrorCode.unknownTask, `could not find a task named '${name}' in environment '${environment}'`, { details: { task: name, environment } });
}

function unknownEnvironment(environment: string): TaskCatalogError {
  return new TaskCatalogError(TaskErrorCode.unknownEnvironment, `unknown environment '${environment}'`, { details: { environment } });
}

/** The `kind` of a Puppet server JSON error body, if it is one. */
function errorKind(text: string): string | null {
  if (exceedsJsonDepth(text, MAX_ANSWER_DEPTH)) return null;
  try {
    const v = JSON.parse(text) as { kind?: unknown };
    return typeof v?.kind === 'string' ? v.kind : null;
  } catch {
    return null;
  }
}

function safeDecode(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

function brief(text: string): string {
  return text.trim().replace(/\s+/g, ' ').slice(0, 300) || '(no body)';
}
