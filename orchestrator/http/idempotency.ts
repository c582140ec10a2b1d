// Idempotency-Key on the faces' POST command routes, one mechanism for all three faces.
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IdempotencyRecord, JobIdempotency, JobStore } from '../engine/store.ts';
import { apiError, ApiErrorCode } from './errors.ts';
import { principal, type AnyFastify } from './request.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** Headers of a first answer that its replays repeat. */
const REPLAYED_HEADERS = ['content-type', 'location', 'x-nomad-index'];

interface IdempotencyState {
  key: string;
  token: string;
  fingerprint: string;
  /** The answer was kept with the job's creation (same Lua script): nothing left to write. */
  committed: boolean;
}
declare module 'fastify' {
  interface FastifyRequest {
    /** The request's Idempotency-Key reservation, while its handler runs; null without one. */
    idempotency: IdempotencyState | null;
  }
}

/** The Idempotency-Key header's value (a bare token or an sf-string in quotes), or null without one. */
export function idempotencyKey(req: FastifyRequest): string | null {
  const raw = req.headers[IDEMPOTENCY_HEADER];
  if (raw === undefined) return null;
  if (Array.isArray(raw)) throw apiError(ApiErrorCode.invalidIdempotencyKey, 'the Idempotency-Key header must be given once');
  const key = /^".*"$/.test(raw) ? raw.slice(1, -1) : raw;
  if (key.length === 0) throw apiError(ApiErrorCode.invalidIdempotencyKey, 'the Idempotency-Key header is empty');
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) throw apiError(ApiErrorCode.invalidIdempotencyKey, `the Idempotency-Key header is ${key.length} characters long; the longest is ${MAX_IDEMPOTENCY_KEY_LENGTH}`);
  if (!/^[\x20-\x7e]+$/.test(key)) throw apiError(ApiErrorCode.invalidIdempotencyKey, 'the Idempotency-Key header must be printable ASCII characters');
  return key;
}

/**
 * `Idempotency-Key` on a face's POST command routes (IETF draft-ietf-httpapi-idempotency-key-header,
 * as Stripe does it): the key, scoped by face and caller, is reserved before the handler runs
 * (deadline-checked, so a reservation Redis runs late reserves nothing); its first successful
 * answer is kept 24 h and given again, same status, headers and body, to a request with the same
 * key and the same request (method, path, body); the same key with a different request is 422,
 * and while the first is under way 409 (retry later). A failed request lets go of the key.
 */
export function registerIdempotency(app: AnyFastify, store: JobStore, face: string, routes: readonly { method: string; url: string }[]): void {
  const wanted = new Set(routes.map((r) => `${r.method} ${r.url}`));
  app.decorateRequest('idempotency', null);
  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!wanted.has(`${req.method} ${req.routeOptions.url}`)) return;
    const key = idempotencyKey(req);
    if (key === null) return;
    const fingerprint = createHash('sha256').update(`${req.method} ${req.url}\n`).update(JSON.stringify(req.body ?? null)).digest('hex');
    const redisKey = store.keys.idempotency(face, principal(req).login, key);
    const token = randomUUID();
    const current = await store.beginIdempotent(redisKey, token, fingerprint);
    if (!current) {
      req.idempotency = { key: redisKey, token, fingerprint, committed: false };
      return;
    }
    if (current.fingerprint !== fingerprint) {
      throw apiError(ApiErrorCode.idempotencyKeyReused, 'this Idempotency-Key was used with a different request; use a new key for a new request', { header: 'Idempotency-Key' });
    }
    if (current.state === 'pending') throw apiError(ApiErrorCode.idempotencyKeyInUse, 'a request with this Idempotency-Key is still under way; retry later', { header: 'Idempotency-Key' });
    return reply.code(current.status).headers({ ...current.headers, 'idempotent-replayed': 'true' }).send(current.body);
  });
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const st = req.idempotency;
    if (!st) return payload;
    req.idempotency = null;
    try {
      if (reply.statusCode < 200 || reply.statusCode > 299) await store.releaseIdempotent(st.key, st.token);
      else if (!st.committed && typeof payload === 'string') {
        const headers = Object.fromEntries(REPLAYED_HEADERS.filter((h) => reply.hasHeader(h)).map((h) => [h, String(reply.getHeader(h))]));
        await store.finishIdempotent(st.key, { state: 'done', token: st.token, fingerprint: st.fingerprint, status: reply.statusCode, headers, body: payload });
      }
    } catch (err) {
      req.log.warn({ err: (err as Error).message }, 'could not record the answer of an Idempotency-Key');
    }
    return payload;
  });
}

/**
 * For a handler whose request holds an Idempotency-Key: what the job creation writes in place of
 * the reservation, atomically with the job (its answer `status`, `headers`, `body(id)`).
 */
export function idempotentJob(req: FastifyRequest, status: number, headers: (id: string) => Record<string, string>, body: (id: string) => unknown): JobIdempotency | undefined {
  const st = req.idempotency;
  if (!st) return undefined;
  st.committed = true;
  return {
    key: st.key,
    token: st.token,
    record: (id: string): IdempotencyRecord & { state: 'done' } => ({
      state: 'done', token: st.token, fingerprint: st.fingerprint, status, job: id,
      headers: { 'content-type': 'application/json; charset=utf-8', ...headers(id) }, body: JSON.stringify(body(id)),
    }),
  };
}
