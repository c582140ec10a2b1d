// Task files: downloaded over HTTPS only from `master-uris` (presenting the agent's certificate),
// verified by SHA-256 and size, cached by hash, and verified again before every run.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join, normalize, isAbsolute, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../lib/log.ts';
import { BatonError } from '../protocol/errors.ts';
import { DOWNLOAD_ATTEMPTS, DOWNLOAD_IDLE_TIMEOUT_MS, DOWNLOAD_RETRY_BASE_MS } from './defaults.ts';

export const TaskFileErrorCode = {
  badFilename: 'task/bad-filename',
  badUri: 'task/bad-uri',
  download: 'task/download-failed',
  tooLarge: 'task/too-large',
  truncated: 'task/truncated',
  checksum: 'task/checksum-mismatch',
} as const;

export class TaskFileError extends BatonError {}

export interface TaskFile {
  filename: string;
  uri: { path: string; params?: Record<string, string> };
  sha256: string;
  size_bytes: number;
}

export interface TlsIdentity {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** A relative path without `..`, absolute parts or backslashes. Throws otherwise. */
export function safeRelativePath(filename: string): string {
  const norm = normalize(filename);
  if (
    filename.includes('\\') ||
    filename.includes('\0') ||
    isAbsolute(filename) ||
    norm.startsWith('..') ||
    norm.split(sep).includes('..') ||
    norm === '.'
  ) {
    throw new TaskFileError(TaskFileErrorCode.badFilename, `task file name '${filename}' must be a relative path inside the task (no '..', no absolute path)`);
  }
  return norm;
}

/** The URL of a task file on one master; refuses anything that would leave that master. */
export function taskFileUrl(masterUri: string, uri: TaskFile['uri']): URL {
  const base = new URL(masterUri);
  if (!uri.path.startsWith('/') || uri.path.startsWith('//') || uri.path.includes('\\')) {
    throw new TaskFileError(TaskFileErrorCode.badUri, `task file path '${uri.path}' must be an absolute path on the master (downloads only come from master-uris)`);
  }
  const url = new URL(`${base.origin}${base.pathname.replace(/\/$/, '')}${uri.path}`);
  if (url.origin !== base.origin) {
    throw new TaskFileError(TaskFileErrorCode.badUri, `task file path '${uri.path}' leaves ${base.origin}`);
  }
  for (const [k, v] of Object.entries(uri.params ?? {})) url.searchParams.set(k, v);
  return url;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

export class TaskCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    readonly dir: string,
    private readonly masterUris: readonly string[],
    private readonly tls: TlsIdentity,
    private readonly log: Logger,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** The verified local path of a task file, downloading it when it is not cached. */
  async fetch(file: TaskFile): Promise<string> {
    const rel = safeRelativePath(file.filename);
    const sha = file.sha256.toLowerCase();
    const path = join(this.dir, sha, rel);
    if (existsSync(path)) {
      if ((await sha256File(path)) === sha) {
        const now = new Date();
        utimesSync(path, now, now); // last use, for the purge
        return path;
      }
      this.log.warn({ file: file.filename }, 'cached task file does not match its checksum; downloading it again');
      rmSync(path, { force: true });
    }
    const key = `${sha}/${rel}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.download(file, path).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /** Checks a cached file right before it runs; never run a file whose hash differs. */
  async verify(path: string, sha256: string): Promise<void> {
    const actual = await sha256File(path);
    if (actual !== sha256.toLowerCase()) {
      rmSync(path, { force: true });
      throw new TaskFileError(TaskFileErrorCode.checksum, `task file ${path} changed in the cache (sha256 ${actual}, expected ${sha256}); it was removed and not run`);
    }
  }

  private async download(file: TaskFile, path: string): Promise<string> {
    if (this.masterUris.length === 0) {
      throw new TaskFileError(TaskFileErrorCode.download, `cannot download '${file.filename}': master-uris is empty`);
    }
    // Every master in order; when none answers (a restarting server), again a few times with a
    // growing pause. A definite answer (HTTP error, wrong size or checksum) is not retried.
    let errors: string[] = [];
    for (let attempt = 0; attempt < DOWNLOAD_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, DOWNLOAD_RETRY_BASE_MS * 2 ** (attempt - 1)));
      errors = [];
      for (const master of this.masterUris) {
        const url = taskFileUrl(master, file.uri);
        try {
          await this.downloadFrom(url, file, path);
          return path;
        } catch (err) {
          if (err instanceof TaskFileError && err.code !== TaskFileErrorCode.download) throw err;
          if (err instanceof TaskFileError && /^HTTP \d+/.test(err.message)) throw new TaskFileError(TaskFileErrorCode.download, `cannot download '${file.filename}': ${url.origin}: ${err.message}`);
          errors.push(`${url.origin}: ${(err as Error).message}`);
        }
      }
      this.log.warn({ file: file.filename, attempt: attempt + 1, errors }, 'no master answered; trying again');
    }
    throw new TaskFileError(TaskFileErrorCode.download, `cannot download '${file.filename}': ${errors.join('; ')}`);
  }

  private async downloadFrom(url: URL, file: TaskFile, path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.${Date.now()}.part`;
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        // The Puppet server's file_content answers 400 to a request that does not name this type.
        const req = request(url, { ...this.tls, headers: { accept: 'application/octet-stream' }, timeout: DOWNLOAD_IDLE_TIMEOUT_MS }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new TaskFileError(TaskFileErrorCode.download, `HTTP ${res.statusCode} for ${url.pathname}`));
            return;
          }
          const out = createWriteStream(tmp, { mode: 0o700 });
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes > file.size_bytes) {
              res.destroy(new TaskFileError(TaskFileErrorCode.tooLarge, `'${file.filename}' is larger than its declared ${file.size_bytes} bytes; download aborted`));
              return;
            }
            hash.update(chunk);
          });
          pipeline(res, out).then(resolve, reject);
        });
        req.on('timeout', () => req.destroy(new TaskFileError(TaskFileErrorCode.download, `no data for ${DOWNLOAD_IDLE_TIMEOUT_MS} ms`)));
        req.on('error', reject);
        req.end();
      });
      if (bytes < file.size_bytes) {
        throw new TaskFileError(TaskFileErrorCode.truncated, `'${file.filename}' is truncated: got ${bytes} of ${file.size_bytes} bytes`);
      }
      const actual = hash.digest('hex');
      if (actual !== file.sha256.toLowerCase()) {
        throw new TaskFileError(TaskFileErrorCode.checksum, `'${file.filename}' has sha256 ${actual}, expected ${file.sha256}; it was not run`);
      }
      renameSync(tmp, path);
      this.log.info({ file: file.filename, bytes, sha256: actual }, 'task file downloaded');
    } catch (err) {
      rmSync(tmp, { force: true });
      if (err instanceof TaskFileError) throw err;
      throw new TaskFileError(TaskFileErrorCode.download, (err as Error).message, { cause: err });
    }
  }

  /** Removes cached files unused for longer than the TTL. */
  purge(ttlMs: number, nowMs = Date.now()): number {
    let removed = 0;
    for (const sha of readdirSync(this.dir)) {
      const dir = join(this.dir, sha);
      if (newestMtimeMs(dir) < nowMs - ttlMs) {
        rmSync(dir, { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }
}

function newestMtimeMs(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtimeMs(join(path, name)));
  return newest;
}
