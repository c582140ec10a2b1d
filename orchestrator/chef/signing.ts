// Chef Server API request signing (the signed-header protocol of Chef's mixlib-authentication,
// signing versions 1.0, 1.1 and 1.3): checks a request's X-Ops-* headers against the public key
// of the client that signed it. Pure: the caller gives the clock and the key lookup, and keys
// arrive parsed (KeyObject), so nothing is read or parsed per request but the headers.
import * as nodeCrypto from 'node:crypto';
import { createHash, publicDecrypt, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { BatonError } from '../../protocol/errors.ts';

/** Seconds a request's X-Ops-Timestamp may be off the server's clock, either way (Chef's 15 min). */
export const DEFAULT_CHEF_CLOCK_SKEW_S = 900;

/** The digest each signing version uses, for the body hash and (1.0/1.1) the path and user id. */
export const CHEF_SIGN_ALGORITHM_FOR_VERSION = { '1.0': 'sha1', '1.1': 'sha1', '1.3': 'sha256' } as const;
export type ChefSignVersion = keyof typeof CHEF_SIGN_ALGORITHM_FOR_VERSION;
export type ChefSignAlgorithm = (typeof CHEF_SIGN_ALGORITHM_FOR_VERSION)[ChefSignVersion];

/** X-Ops-Server-API-Version values accepted; a request without the header is version 0. */
export const CHEF_SERVER_API_VERSIONS: readonly string[] = ['0', '1', '2'];
export const DEFAULT_CHEF_SERVER_API_VERSION = '0';

/** Most X-Ops-Authorization-N lines read (a 16384-bit key's signature takes 46 lines of 60). */
export const MAX_CHEF_SIGNATURE_LINES = 64;

export const ChefAuthErrorCode = {
  /** One or more of the required X-Ops-* headers is absent or empty (`details.headers`). */
  missingHeaders: 'chef-auth/missing-headers',
  /** X-Ops-Sign names no version, or one other than 1.0, 1.1 and 1.3. */
  unsupportedVersion: 'chef-auth/unsupported-version',
  /** X-Ops-Sign names an algorithm that is not its version's (sha1 for 1.0/1.1, sha256 for 1.3). */
  algorithmMismatch: 'chef-auth/algorithm-mismatch',
  /** X-Ops-Server-API-Version is not one of CHEF_SERVER_API_VERSIONS. */
  unsupportedApiVersion: 'chef-auth/unsupported-api-version',
  /** X-Ops-Timestamp is not an ISO 8601 time. */
  badTimestamp: 'chef-auth/bad-timestamp',
  /** X-Ops-Timestamp is too far from the server's clock (`details.offset_s`, `details.allowed_s`). */
  clockSkew: 'chef-auth/clock-skew',
  /** No public key is known for X-Ops-Userid (`details.userid`). */
  unknownClient: 'chef-auth/unknown-client',
  /** The body's digest is not X-Ops-Content-Hash. */
  contentHashMismatch: 'chef-auth/content-hash-mismatch',
  /** The signature does not verify with the client's public key. */
  badSignature: 'chef-auth/bad-signature',
} as const;
export type ChefAuthErrorCode = (typeof ChefAuthErrorCode)[keyof typeof ChefAuthErrorCode];

export class ChefAuthError extends BatonError {
  declare readonly code: ChefAuthErrorCode;
}

export interface ChefSignedRequest {
  method: string;
  /** The request path as sent, without the query string (one is cut off if present). */
  path: string;
  /** Node's headers: lowercase names. */
  headers: IncomingHttpHeaders;
  /** The body as received (X-Ops-Content-Hash is over its bytes); '' without one. */
  body: string | Buffer;
}

export interface ChefVerifyOptions {
  nowMs: number;
  /** Seconds X-Ops-Timestamp may be off `nowMs`, either way (DEFAULT_CHEF_CLOCK_SKEW_S). */
  skewS: number;
  /** The client's RSA public key, or null when no such client is known. */
  publicKeyFor: (userid: string) => KeyObject | null;
}

export interface ChefVerified {
  userid: string;
  version: ChefSignVersion;
}

/** The fields a signature covers, canonical except `path` (canonicalised here). */
export interface ChefSignedFields {
  version: ChefSignVersion;
  method: string;
  path: string;
  contentHash: string;
  /** The canonical timestamp: UTC ISO 8601 without fractional seconds (`2024-01-02T03:04:05Z`). */
  timestamp: string;
  userid: string;
  /** Covered by version 1.3 only. */
  serverApiVersion: string;
}

const H = {
  sign: 'x-ops-sign',
  userid: 'x-ops-userid',
  timestamp: 'x-ops-timestamp',
  contentHash: 'x-ops-content-hash',
  serverApiVersion: 'x-ops-server-api-version',
} as const;
const AUTHORIZATION = Array.from({ length: MAX_CHEF_SIGNATURE_LINES }, (_, i) => `x-ops-authorization-${i + 1}`);
/** Required headers: Node's lowercase name, and the name as Chef writes it (for messages). */
const REQUIRED: readonly (readonly [string, string])[] = [
  [H.sign, 'X-Ops-Sign'],
  [H.userid, 'X-Ops-Userid'],
  [H.timestamp, 'X-Ops-Timestamp'],
  [H.contentHash, 'X-Ops-Content-Hash'],
  [AUTHORIZATION[0]!, 'X-Ops-Authorization-1'],
];
const DIGEST_NAME = { sha1: 'SHA-1', sha256: 'SHA-256' } as const;

/** Whether the request carries Chef signing headers at all (it is then verified, not token-checked). */
export function isChefSigned(headers: IncomingHttpHeaders): boolean {
  return headers[H.sign] !== undefined || headers[H.userid] !== undefined || headers[AUTHORIZATION[0]!] !== undefined;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return typeof v === 'string' ? v : v?.[0];
}

/** A header value as shown in a message: quoted, and cut short when long. */
function shown(s: string): string {
  return JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}…` : s);
}

function fail(code: ChefAuthErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new ChefAuthError(code, message, details === undefined ? {} : { details });
}

// X-Ops-Sign as clients write it, parsed once (the general parser handles any other spelling).
const KNOWN_SIGN = new Map<string, { algorithm: string | undefined; version: string }>();
for (const [version, algorithm] of Object.entries(CHEF_SIGN_ALGORITHM_FOR_VERSION)) {
  for (const end of ['', ';']) {
    KNOWN_SIGN.set(`algorithm=${algorithm};version=${version}${end}`, { algorithm, version });
    KNOWN_SIGN.set(`version=${version};algorithm=${algorithm}${end}`, { algorithm, version });
  }
}

/** `algorithm=sha1;version=1.0;`: fields split on ';', names and values trimmed, empty parts skipped. */
function parseSignDescription(text: string): { algorithm: string | undefined; version: string | undefined } {
  const known = KNOWN_SIGN.get(text);
  if (known) return known;
  let algorithm: string | undefined;
  let version: string | undefined;
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === 'algorithm') algorithm = part.slice(eq + 1).trim();
    else if (name === 'version') version = part.slice(eq + 1).trim();
  }
  return { algorithm, version };
}

function signVersion(text: string): ChefSignVersion {
  const { algorithm, version } = parseSignDescription(text);
  if (version === undefined || !Object.hasOwn(CHEF_SIGN_ALGORITHM_FOR_VERSION, version)) {
    const what = version === undefined ? 'names no version' : `names version ${shown(version)}`;
    fail(ChefAuthErrorCode.unsupportedVersion, `X-Ops-Sign ${shown(text)} ${what}; supported signing versions are ${Object.keys(CHEF_SIGN_ALGORITHM_FOR_VERSION).join(', ')}`, { sign: text });
  }
  const v = version as ChefSignVersion;
  // Clients of version 1.0 may leave the algorithm out: it is then sha1 (as mixlib-authentication reads it).
  const expected = CHEF_SIGN_ALGORITHM_FOR_VERSION[v];
  if ((algorithm ?? 'sha1') !== expected) {
    fail(ChefAuthErrorCode.algorithmMismatch, `X-Ops-Sign ${shown(text)}: signing version ${v} uses algorithm ${expected}, not ${shown(algorithm ?? 'sha1')}`, { sign: text });
  }
  return v;
}

// ISO 8601 as Ruby's Time.parse reads it: date, 'T' (or a space), time, optional fraction and zone.
// Without a zone the time is UTC (Ruby takes the server's local zone; Chef servers run in UTC).
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/;

/** Milliseconds since the epoch, and whether `text` is already canonical; null when it is no time. */
function parseTimestamp(text: string): { ms: number; canonical: boolean } | null {
  const m = ISO_TIME.exec(text);
  if (!m) return null;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = Number(m[6]);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  let offsetMin = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  // Like Ruby's Time, an impossible day or second 60 carries into the next month or minute.
  // (setUTCFullYear, not Date.UTC, which reads years 0-99 as 19xx.)
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  const fractionMs = m[7] === undefined ? 0 : Number(`0.${m[7]}`) * 1000;
  const ms = d.getTime() - offsetMin * 60_000 + fractionMs;
  // Canonical: whole seconds, 'Z', and fields that did not carry over (days up to 28 always exist).
  const canonical = text.length === 20 && text[10] === 'T' && m[8] === 'Z' && second < 60 && day <= 28;
  return { ms, canonical };
}

/** Ruby's `Time.parse(ts).utc.iso8601`: UTC, fractional seconds cut off. */
function canonicalTime(ms: number): string {
  return `${new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19)}Z`;
}

/** Repeated '/' collapsed, a trailing '/' removed unless the path is '/'; the query cut off. */
export function canonicalChefPath(path: string): string {
  const q = path.indexOf('?');
  let p = q < 0 ? path : path.slice(0, q);
  if (p.includes('//')) p = p.replace(/\/{2,}/g, '/');
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

// crypto.hash (Node >= 20.12) is a one-shot digest without a Hash stream object: in the
// orchestrator, where a verification runs with cold caches between submits, it costs about a
// third of createHash. Older Node falls back to createHash.
const oneShotHash = (nodeCrypto as { hash?: typeof nodeCrypto.hash }).hash;

function b64Digest(algorithm: ChefSignAlgorithm, data: string | Buffer): string {
  return oneShotHash ? oneShotHash(algorithm, data, 'base64') : createHash(algorithm).update(data).digest('base64');
}

/** The text a client signs: its `version`'s canonical request. */
export function chefStringToSign(f: ChefSignedFields): string {
  const path = canonicalChefPath(f.path);
  const method = f.method.toUpperCase();
  if (f.version === '1.3') {
    return `Method:${method}\nPath:${path}\nX-Ops-Content-Hash:${f.contentHash}\nX-Ops-Sign:version=1.3\nX-Ops-Timestamp:${f.timestamp}\nX-Ops-UserId:${f.userid}\nX-Ops-Server-API-Version:${f.serverApiVersion}`;
  }
  const userid = f.version === '1.1' ? b64Digest('sha1', f.userid) : f.userid;
  return `Method:${method}\nHashed Path:${b64Digest('sha1', path)}\nX-Ops-Content-Hash:${f.contentHash}\nX-Ops-Timestamp:${f.timestamp}\nX-Ops-UserId:${userid}`;
}

function signatureVerifies(version: ChefSignVersion, key: KeyObject, signed: string, signature: Buffer): boolean {
  try {
    // The KeyObject itself (PKCS#1 v1.5 is the default padding of both): an options object costs ~20% more per call.
    if (version === '1.3') return verify('sha256', Buffer.from(signed), key, signature);
    // 1.0/1.1: RSA private_encrypt of the text itself (PKCS#1 v1.5 type 1, no DigestInfo).
    const decrypted = publicDecrypt(key, signature);
    const expected = Buffer.from(signed);
    return decrypted.length === expected.length && timingSafeEqual(decrypted, expected);
  } catch {
    return false; // not a signature of this key's size, or bad padding
  }
}

/**
 * Verifies a Chef-signed request, or throws a ChefAuthError naming what is wrong. Checked in
 * order: required headers, X-Ops-Sign, X-Ops-Server-API-Version, X-Ops-Timestamp and the clock,
 * the client, X-Ops-Content-Hash against the body, the signature.
 */
export function verifyChefRequest(req: ChefSignedRequest, opts: ChefVerifyOptions): ChefVerified {
  const { headers } = req;
  let missing: string[] | undefined;
  for (const [name, shownName] of REQUIRED) {
    if (!header(headers, name)) (missing ??= []).push(shownName);
  }
  if (missing) {
    fail(ChefAuthErrorCode.missingHeaders, `the Chef-signed request lacks the header${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, { headers: missing });
  }
  const sign = header(headers, H.sign)!;
  const userid = header(headers, H.userid)!;
  const timestamp = header(headers, H.timestamp)!;
  const contentHash = header(headers, H.contentHash)!;

  const version = signVersion(sign);
  const serverApiVersion = header(headers, H.serverApiVersion) ?? DEFAULT_CHEF_SERVER_API_VERSION;
  if (!CHEF_SERVER_API_VERSIONS.includes(serverApiVersion)) {
    fail(ChefAuthErrorCode.unsupportedApiVersion, `X-Ops-Server-API-Version ${shown(serverApiVersion)} is not supported; supported versions are ${CHEF_SERVER_API_VERSIONS.join(', ')}`, { server_api_version: serverApiVersion });
  }

  const time = parseTimestamp(timestamp);
  if (!time) fail(ChefAuthErrorCode.badTimestamp, `X-Ops-Timestamp ${shown(timestamp)} is not an ISO 8601 time (like 2024-01-02T03:04:05Z)`);
  const offsetMs = opts.nowMs - time.ms;
  if (!(Math.abs(offsetMs) < opts.skewS * 1000)) {
    const offsetS = Math.round(Math.abs(offsetMs) / 1000);
    const minutes = offsetS >= 120 ? ` (${Math.round(offsetS / 60)} min)` : '';
    const side = offsetMs > 0 ? 'behind' : 'ahead of';
    fail(
      ChefAuthErrorCode.clockSkew,
      `X-Ops-Timestamp ${timestamp} is ${offsetS} s${minutes} ${side} the server's clock (${new Date(opts.nowMs).toISOString()}); at most ${opts.skewS} s either way is allowed: check the client's clock`,
      { offset_s: Math.round(offsetMs / 1000), allowed_s: opts.skewS },
    );
  }

  const key = opts.publicKeyFor(userid);
  if (!key) fail(ChefAuthErrorCode.unknownClient, `no client ${shown(userid)} (X-Ops-Userid) is known here`, { userid });

  const algorithm = CHEF_SIGN_ALGORITHM_FOR_VERSION[version];
  const bodyHash = b64Digest(algorithm, req.body);
  if (bodyHash !== contentHash) {
    fail(ChefAuthErrorCode.contentHashMismatch, `the body does not match X-Ops-Content-Hash: the body's ${DIGEST_NAME[algorithm]} is ${bodyHash}, the header says ${shown(contentHash)} (was the body changed after signing?)`, { userid });
  }

  let lines = 0;
  let signature = '';
  while (lines < MAX_CHEF_SIGNATURE_LINES) {
    const line = header(headers, AUTHORIZATION[lines]!);
    if (line === undefined) break;
    signature += line;
    lines++;
  }
  const signed = chefStringToSign({
    version, method: req.method, path: req.path, contentHash, userid, serverApiVersion,
    timestamp: time.canonical ? timestamp : canonicalTime(time.ms),
  });
  if (!signatureVerifies(version, key, signed, Buffer.from(signature, 'base64'))) {
    const covered = version === '1.3' ? 'method, path, timestamp, user id or X-Ops-Server-API-Version' : 'method, path, timestamp or user id';
    fail(
      ChefAuthErrorCode.badSignature,
      `the signature (X-Ops-Authorization-1..${lines}) does not verify with the public key of client ${shown(userid)} (signing version ${version}): it was made with another key, or the request's ${covered} changed after signing`,
      { userid, version },
    );
  }
  return { userid, version };
}
