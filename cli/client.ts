// The HTTP client of the `baton` commands: the orchestrator's HTTPS API with its CA and token.
// API errors carry the API's own message (Puppet `{kind, msg}`, Chef `{error: [...]}`, or text);
// a server that cannot be reached, or that does not answer within the request's timeout, is a
// connection error. Both exit with code 3.
import { existsSync, readFileSync } from 'node:fs';
import { request, type RequestOptions as HttpsRequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ApiError, CliError, CliErrorCode, usageError } from './errors.ts';

export const DEFAULT_API_URL = 'https://127.0.0.1:8143';
export const DEV_CA_PATH = 'var/pki/certs/ca.pem';
export const TOKEN_HEADER = 'X-Authentication';
/** Chef Push Jobs organisation used by `baton push`. */
export const PUSH_ORG = 'baton';
/** How long a request may take, from connecting to its last byte, unless it says otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** `~/.baton/token` (HOME decides where `~` is). */
export const tokenFilePath = (): string => join(homedir(), '.baton', 'token');

export interface ApiOptions {
  url?: string;
  token?: string;
  ca?: string;
  json?: boolean;
}

/** Adds --url, --token, --ca and --json to a command that talks to the orchestrator. */
export function addApiOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', `orchestrator URL (default: BATON_URL, else ${DEFAULT_API_URL})`)
    .option('--token <token>', 'API token (default: BATON_TOKEN, else ~/.baton/token)')
    .option('--ca <file>', `CA certificate (PEM) of the orchestrator (default: BATON_CA, else ./${DEV_CA_PATH} if present)`)
    .option('--json', 'machine-readable output (JSON)');
}

export interface RequestOptions {
  /** The request's deadline (default: the client's, DEFAULT_REQUEST_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Cancels the request (it then fails with a connection error). */
  signal?: AbortSignal;
}

export interface OpenOptions extends RequestOptions {
  body?: unknown;
  accept?: string;
}

export interface Response {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export class ApiClient {
  readonly url: URL;

  constructor(
    url: string,
    private readonly token: string | undefined,
    private readonly ca: Buffer | undefined,
    readonly timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {
    try {
      this.url = new URL(url);
    } catch {
      throw usageError(`--url: '${url}' is not a URL`);
    }
    if (this.url.protocol !== 'https:') throw usageError(`--url: the orchestrator is served over HTTPS (got ${url})`);
  }

  /**
   * The raw response stream, for any status. The timeout runs until the response's headers arrive:
   * the caller reads the body (a feed may stay open for as long as its job runs).
   */
  open(method: string, path: string, opts: OpenOptions = {}): Promise<IncomingMessage> {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const target = new URL(path, this.url);
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const options: HttpsRequestOptions = {
      method,
      agent: false,
      headers: {
        accept: opts.accept ?? 'application/json',
        ...(this.token ? { [TOKEN_HEADER]: this.token } : {}),
        ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
      ...(this.ca ? { ca: this.ca } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    return new Promise((resolvePromise, reject) => {
      const req = request(target, options, (res) => {
        clearTimeout(timer);
        resolvePromise(res);
      });
      const timer = setTimeout(() => req.destroy(this.timeoutError(method, path, timeoutMs)), timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(this.connectionError(err));
      });
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** A whole exchange, within its timeout; an error status is an ApiError. */
  async send(method: string, path: string, opts: OpenOptions = {}): Promise<Response> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    const res = await this.open(method, path, { ...opts, timeoutMs });
    const timer = setTimeout(() => res.destroy(this.timeoutError(method, path, timeoutMs)), Math.max(0, deadline - Date.now()));
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (err) {
      throw this.connectionError(err as NodeJS.ErrnoException);
    } finally {
      clearTimeout(timer);
    }
    const out = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
    if (out.status >= 400) throw apiErrorOf(out, method, path);
    return out;
  }

  async json<T = any>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await this.send(method, path, { ...opts, body });
    return parseJson(res) as T;
  }

  get<T = any>(path: string, opts: RequestOptions = {}): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.json<T>('GET', path, undefined, opts);
  }

  post<T = any>(path: string, body: unknown = {}, opts: RequestOptions = {}): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.json<T>('POST', path, body, opts);
  }

  private timeoutError(method: string, path: string, timeoutMs: number): CliError {
    return new CliError(CliErrorCode.connection, `the orchestrator at ${this.url.origin} did not answer ${method} ${path} within ${timeoutMs / 1000} s`, { details: { timeoutMs } });
  }

  private connectionError(err: NodeJS.ErrnoException): CliError {
    if (err instanceof CliError) return err;
    const why = err.code ? `${err.code}: ${err.message}` : err.message;
    return new CliError(CliErrorCode.connection, `cannot reach the orchestrator at ${this.url.origin}: ${why}`, { cause: err });
  }
}

function parseJson(res: Response): unknown {
  if (res.body.length === 0) return null;
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new ApiError(`the orchestrator answered with something that is not JSON: ${res.body.toString('utf8').slice(0, 200)}`, res.status, undefined);
  }
}

/** The API's own words for an error response. */
export function apiErrorOf(res: Response, method: string, path: string): ApiError {
  const text = res.body.toString('utf8').trim();
  let message = text;
  let kind: string | undefined;
  try {
    const j = JSON.parse(text) as { kind?: unknown; msg?: unknown; error?: unknown; message?: unknown };
    if (typeof j.msg === 'string') message = j.msg;
    else if (Array.isArray(j.error)) message = j.error.join('; ');
    else if (typeof j.error === 'string') message = j.error;
    else if (typeof j.message === 'string') message = j.message;
    if (typeof j.kind === 'string') kind = j.kind;
  } catch {
    // a plain text error (Nomad's face answers text)
  }
  const what = kind ? `${kind}: ` : '';
  return new ApiError(`${method} ${path} failed with HTTP ${res.status}: ${what}${message || '(no message)'}`, res.status, kind);
}

/** The client for the --url, --token and --ca options, the BATON_* variables and the defaults. */
export function apiClient(opts: ApiOptions, env: NodeJS.ProcessEnv = process.env): ApiClient {
  const url = opts.url ?? (env.BATON_URL || DEFAULT_API_URL);
  let token = opts.token ?? (env.BATON_TOKEN || undefined);
  if (token === undefined && existsSync(tokenFilePath())) token = readFileSync(tokenFilePath(), 'utf8').trim();
  let caPath = opts.ca ?? (env.BATON_CA || undefined);
  if (caPath === undefined && existsSync(DEV_CA_PATH)) caPath = DEV_CA_PATH;
  let ca: Buffer | undefined;
  if (caPath !== undefined) {
    try {
      ca = readFileSync(resolve(caPath));
    } catch (err) {
      throw usageError(`--ca: cannot read ${caPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return new ApiClient(url, token, ca);
}
