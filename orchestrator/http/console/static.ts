// The console's files, built by `npm run build` into dist/console/: index.html for every app path
// (the app routes by the history API), assets by name under assets/. No token is needed for them;
// every answer carries the console's Content-Security-Policy (no inline script or style).
import { readFile } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyReply } from 'fastify';
import { apiError, ApiErrorCode } from '../errors.ts';

export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Headers on every answer of the console (files, API answers and errors alike). */
export const CONSOLE_HEADERS = { 'content-security-policy': CONSOLE_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' } as const;

/** Asset names are not content-hashed, so browsers revalidate every time. */
export const CONSOLE_CACHE_CONTROL = 'no-cache';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** A path segment of an asset: no leading dot (so never `.` or `..`), no separators. */
const SAFE_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;
const MAX_ASSET_DEPTH = 8;

/** The index file's path relative to the console directory, named in the answer when it is missing. */
export const CONSOLE_INDEX = 'index.html';

/**
 * The file an asset path (what follows `/console/assets/`, percent-decoded) names inside
 * `<dir>/assets`, or null for anything that is not a plain relative path of safe segments.
 */
export function assetFile(dir: string, rest: string): string | null {
  const segments = rest.split('/');
  if (segments.length > MAX_ASSET_DEPTH || !segments.every((s) => SAFE_SEGMENT.test(s))) return null;
  const root = resolve(dir, 'assets');
  const file = resolve(root, ...segments);
  return file.startsWith(root + sep) ? file : null;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

function send(reply: FastifyReply, file: string, body: Buffer): FastifyReply {
  return reply.type(CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream').header('cache-control', CONSOLE_CACHE_CONTROL).send(body);
}

/** index.html; 503 naming the build step while the console has not been built. */
export async function sendIndex(reply: FastifyReply, dir: string): Promise<FastifyReply> {
  const file = join(dir, CONSOLE_INDEX);
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch (err) {
    if (isMissing(err)) throw apiError(ApiErrorCode.unavailable, `the console is not built (${CONSOLE_INDEX} is missing from ${dir}): run npm run build`, { build: 'npm run build' });
    throw err;
  }
  return send(reply, file, body);
}

export async function sendAsset(reply: FastifyReply, dir: string, rest: string): Promise<FastifyReply> {
  const file = assetFile(dir, rest);
  const notFound = () => apiError(ApiErrorCode.notFound, `no console asset ${JSON.stringify(rest)}`);
  if (!file) throw notFound();
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch (err) {
    if (isMissing(err)) throw notFound();
    throw err;
  }
  return send(reply, file, body);
}
