// PuppetDB as the node query source, as in a Puppet Enterprise installation: a job's `query`
// scope (PQL text or a PuppetDB AST) goes to PuppetDB's query API (`/pdb/query/v4`) over TLS with
// a client certificate, and the target is the certnames at the top level of the answer. Every
// request ends within `puppetdb-timeout`, answer read included.
import { Agent } from 'node:https';
import { createSecureContext } from 'node:tls';
import { boundedRequest, HttpsRequestError, HttpsRequestErrorCode } from '../../lib/https-request.ts';
import { BatonError } from '../../protocol/errors.ts';
import { exceedsJsonDepth } from '../../protocol/json-depth.ts';

export const PuppetDbErrorCode = {
  /** Connection refused, reset, DNS, TLS: PuppetDB cannot be reached. */
  unreachable: 'puppetdb/unreachable',
  /** No complete answer within puppetdb-timeout. */
  timeout: 'puppetdb/timeout',
  /** PuppetDB answered 4xx: the query (or our certificate) was refused. */
  refused: 'puppetdb/refused',
  /** PuppetDB answered 5xx, or something that is not a JSON array of rows. */
  failed: 'puppetdb/failed',
} as const;
export type PuppetDbErrorCode = (typeof PuppetDbErrorCode)[keyof typeof PuppetDbErrorCode];

export class PuppetDbError extends BatonError {
  declare readonly code: PuppetDbErrorCode;
}

/** The largest answer read from PuppetDB; a larger one fails as `puppetdb/failed`. */
export const MAX_PUPPETDB_ANSWER_BYTES = 256 * 1024 * 1024;
/** Nesting an answer may have (facts are nested documents). */
const MAX_ANSWER_DEPTH = 256;
const QUERY_PATH = '/pdb/query/v4';
/** PuppetDB's status service (trapperkeeper's): 200 while it is running, 503 otherwise. */
const STATUS_PATH = '/status/v1/services/puppetdb-status';
const MAX_STATUS_ANSWER_BYTES = 1024 * 1024;

export interface PuppetDbOptions {
  url: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  timeoutMs: number;
}

/** One row of PuppetDB's `inventory` entity, as the orchestrator uses it. */
export interface PuppetDbNode {
  certname: string;
  environment: string | null;
  facts: Record<string, unknown>;
}

/** A PuppetDB query from a scope: PQL text as it is; an AST gets `["from", "nodes", …]` when it has no `from`. */
export function puppetDbQuery(q: unknown): string | unknown[] {
  if (typeof q === 'string') {
    const text = q.trim();
    if (!text.startsWith('[')) return text;
    return puppetDbQuery(JSON.parse(text) as unknown);
  }
  if (Array.isArray(q)) return q[0] === 'from' ? q : ['from', 'nodes', q];
  throw new PuppetDbError(PuppetDbErrorCode.refused, `a query must be PQL text or a PuppetDB AST array, got ${q === null ? 'null' : typeof q}`);
}

/** The certnames at the top level of an answer, sorted and de-duplicated. */
export function certnamesOf(rows: readonly unknown[]): string[] {
  const out = new Set<string>();
  for (const r of rows) {
    const c = typeof r === 'object' && r !== null ? (r as { certname?: unknown }).certname : undefined;
    if (typeof c === 'string') out.add(c);
  }
  return [...out].sort();
}

export class PuppetDbClient {
  private readonly agent: Agent;
  private readonly base: URL;

  constructor(private readonly opts: PuppetDbOptions) {
    this.base = new URL(opts.url);
    if (this.base.protocol !== 'https:') throw new PuppetDbError(PuppetDbErrorCode.unreachable, `puppetdb.url '${opts.url}' must be https://`);
    try {
      // Unusable certificates fail here, when the orchestrator starts, not on the first query.
      createSecureContext({ ca: opts.ca, cert: opts.cert, key: opts.key });
    } catch (cause) {
      throw new PuppetDbError(PuppetDbErrorCode.unreachable, `the TLS files for PuppetDB cannot be used: ${(cause as Error).message}`, { cause });
    }
    this.agent = new Agent({ ca: opts.ca, cert: opts.cert, key: opts.key, keepAlive: true, maxSockets: 8 });
  }

  get url(): string {
    return this.base.toString();
  }

  /** The certnames a scope's query selects. */
  async certnames(q: unknown): Promise<string[]> {
    return certnamesOf(await this.query(puppetDbQuery(q)));
  }

  /** Every node PuppetDB knows, with its environment and (with `facts`) its facts. */
  async nodes(opts: { facts: boolean }): Promise<PuppetDbNode[]> {
    const fields = opts.facts ? ['certname', 'environment', 'facts'] : ['certname', 'environment'];
    const rows = await this.query(['from', 'inventory', ['extract', fields]]);
    const out: PuppetDbNode[] = [];
    for (const r of rows as { certname?: unknown; environment?: unknown; facts?: unknown }[]) {
      if (typeof r?.certname !== 'string') continue;
      const facts = typeof r.facts === 'object' && r.facts !== null ? (r.facts as Record<string, unknown>) : {};
      out.push({ certname: r.certname, environment: typeof r.environment === 'string' ? r.environment : null, facts });
    }
    return out.sort((a, b) => (a.certname < b.certname ? -1 : a.certname > b.certname ? 1 : 0));
  }

  /** Runs a query; rejects with a PuppetDbError naming what happened. */
  async query(query: string | unknown[]): Promise<unknown[]> {
    let res;
    try {
      res = await boundedRequest(new URL(QUERY_PATH, this.base), {
        agent: this.agent,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query }),
        timeoutMs: this.opts.timeoutMs,
        maxBytes: MAX_PUPPETDB_ANSWER_BYTES,
      });
    } catch (err) {
      if (!(err instanceof HttpsRequestError)) throw err;
      if (err.code === HttpsRequestErrorCode.timeout) {
        throw new PuppetDbError(PuppetDbErrorCode.timeout, `PuppetDB at ${this.url} did not answer within ${this.opts.timeoutMs} ms (puppetdb-timeout)`, { details: { timeout_ms: this.opts.timeoutMs } });
      }
      if (err.code === HttpsRequestErrorCode.tooLarge) throw new PuppetDbError(PuppetDbErrorCode.failed, `PuppetDB's answer is larger than ${MAX_PUPPETDB_ANSWER_BYTES} bytes`);
      throw new PuppetDbError(PuppetDbErrorCode.unreachable, `cannot reach PuppetDB at ${this.url}: ${err.message}`, { cause: err });
    }
    if (res.status >= 400) {
      const code = res.status < 500 ? PuppetDbErrorCode.refused : PuppetDbErrorCode.failed;
      throw new PuppetDbError(code, `PuppetDB answered ${res.status}: ${res.text.trim().slice(0, 500) || '(no body)'}`, { details: { status: res.status } });
    }
    if (exceedsJsonDepth(res.text, MAX_ANSWER_DEPTH)) throw new PuppetDbError(PuppetDbErrorCode.failed, `PuppetDB's answer nests deeper than ${MAX_ANSWER_DEPTH} levels`);
    let rows: unknown;
    try {
      rows = JSON.parse(res.text);
    } catch {
      throw new PuppetDbError(PuppetDbErrorCode.failed, `PuppetDB answered ${res.status} with something that is not JSON`);
    }
    if (!Array.isArray(rows)) throw new PuppetDbError(PuppetDbErrorCode.failed, 'PuppetDB answered with something other than an array of rows');
    return rows;
  }

  /** The health probe: PuppetDB's status service answers 200 (`running`) within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<void> {
    const res = await boundedRequest(new URL(STATUS_PATH, this.base), { agent: this.agent, method: 'GET', headers: { accept: 'application/json' }, timeoutMs, maxBytes: MAX_STATUS_ANSWER_BYTES });
    if (res.status !== 200) throw new PuppetDbError(PuppetDbErrorCode.failed, `PuppetDB's status service answered ${res.status}`, { details: { status: res.status } });
  }

  close(): void {
    this.agent.destroy();
  }
}
