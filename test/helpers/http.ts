// A small HTTPS client for API tests: real TLS, the test CA, optional client certificate.
import { request, type Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface HttpResponse {
  status: number;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Record<string, string | string[] | undefined>;
  /** Whether the connection resumed an earlier TLS session instead of a full handshake. */
  tlsSessionReused: boolean;
}

export interface HttpOptions {
  method?: string;
  token?: string;
  body?: unknown;
  rawBody?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  headers?: Record<string, string>;
  /** An https.Agent of its own (connection reuse, TLS session cache); default the global agent. */
  agent?: Agent;
  /** Fails the request when the socket is idle this long (a service that accepts and never answers). */
  timeoutMs?: number;
  /** The local (source) address of the connection, e.g. another 127.0.0.0/8 address than the test's others. */
  localAddress?: string;
}

export function http(url: string, opts: HttpOptions = {}): Promise<HttpResponse> {
  const payload = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
        headers: {
          ...(opts.token ? { 'X-Authentication': opts.token } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
        ...(opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false }),
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        ...(opts.agent ? { agent: opts.agent } : {}),
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
      },
      (res) => {
        const tlsSessionReused = (res.socket as TLSSocket).isSessionReused();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers, tlsSessionReused });
        });
      },
    );
    // Only a deadline of our own: the global agent's socket timeout (Node 20: 5 s) must not end a long poll.
    if (opts.timeoutMs !== undefined) req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}
