// One HTTPS request to a neighbour service (PuppetDB, a Puppet server) that ends within a time
// bound, answer read included, and reads at most a bounded answer. Rejects with a typed error
// whose code says what happened; callers turn it into their own (and never read its text).
import type { Agent } from 'node:https';
import { request } from 'node:https';
import { BatonError } from '../protocol/errors.ts';

export const HttpsRequestErrorCode = {
  /** Connection refused or reset, DNS, TLS: no answer came. */
  unreachable: 'https/unreachable',
  /** No complete answer within the bound. */
  timeout: 'https/timeout',
  /** The answer is larger than allowed. */
  tooLarge: 'https/too-large',
} as const;
export type HttpsRequestErrorCode = (typeof HttpsRequestErrorCode)[keyof typeof HttpsRequestErrorCode];

export class HttpsRequestError extends BatonError {
  declare readonly code: HttpsRequestErrorCode;
}

export interface HttpsAnswer {
  status: number;
  text: string;
}

export interface BoundedRequestOptions {
  agent: Agent;
  method: 'GET' | 'POST';
  headers?: Record<string, string | number>;
  body?: string;
  timeoutMs: number;
  maxBytes: number;
}

export function boundedRequest(url: URL, opts: BoundedRequestOptions): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: HttpsRequestError | null, answer?: HttpsAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else {
        resolve(answer!);
      }
    };
    const headers = { ...opts.headers, ...(opts.body === undefined ? {} : { 'content-length': Buffer.byteLength(opts.body) }) };
    const req = request(url, { method: opts.method, agent: opts.agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > opts.maxBytes) return finish(new HttpsRequestError(HttpsRequestErrorCode.tooLarge, `the answer is larger than ${opts.maxBytes} bytes`, { details: { max_bytes: opts.maxBytes } }));
        chunks.push(c);
      });
      res.on('error', (err) => finish(new HttpsRequestError(HttpsRequestErrorCode.unreachable, `the connection broke: ${err.message}`, { cause: err })));
      res.on('end', () => finish(null, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    const timer = setTimeout(
      () => finish(new HttpsRequestError(HttpsRequestErrorCode.timeout, `no answer within ${opts.timeoutMs} ms`, { details: { timeout_ms: opts.timeoutMs } })),
      opts.timeoutMs,
    );
    req.on('error', (err) => finish(new HttpsRequestError(HttpsRequestErrorCode.unreachable, err.message, { cause: err })));
    req.end(opts.body);
  });
}
