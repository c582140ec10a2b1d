// An HTTPS server for task files, as a Puppet server or the orchestrator serves them: it requires
// a client certificate from the test CA and can misbehave on purpose (truncate, lie, hang).
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TestPki } from './pki.ts';

export type Behaviour = 'ok' | 'truncate' | 'hang' | 'status500';

export interface ServedFile {
  body: Buffer;
  behaviour: Behaviour;
}

export class FileServer {
  readonly files = new Map<string, ServedFile>();
  readonly requests: { path: string; cn: string | undefined }[] = [];
  private server!: Server;

  get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  static async start(pki: TestPki): Promise<FileServer> {
    await pki.issue('files', ['127.0.0.1', 'localhost']);
    const fs = new FileServer();
    fs.server = createServer(
      { ca: readFileSync(pki.ca), cert: readFileSync(pki.cert('files')), key: readFileSync(pki.key('files')), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        const url = new URL(req.url ?? '/', 'https://x');
        const cert = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        fs.requests.push({ path: url.pathname + url.search, cn: cert?.subject?.CN as string | undefined });
        const file = fs.files.get(url.pathname);
        if (!file) {
          res.writeHead(404).end('not found');
          return;
        }
        switch (file.behaviour) {
          case 'status500':
            res.writeHead(500).end('boom');
            return;
          case 'hang':
            res.writeHead(200, { 'content-length': file.body.length });
            res.write(file.body.subarray(0, 1));
            return; // never ends
          case 'truncate':
            res.writeHead(200);
            res.end(file.body.subarray(0, Math.floor(file.body.length / 2)));
            return;
          default:
            res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(file.body);
        }
      },
    );
    fs.server.listen(0, '127.0.0.1');
    await once(fs.server, 'listening');
    return fs;
  }

  /** Serves `body` at `path`; returns the task-file entry of a `task run` request. */
  add(path: string, filename: string, body: string | Buffer, behaviour: Behaviour = 'ok') {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    this.files.set(path, { body: buf, behaviour });
    return { filename, uri: { path, params: { environment: 'production' } }, sha256: sha256(buf), size_bytes: buf.length };
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
