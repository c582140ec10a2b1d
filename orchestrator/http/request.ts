// What every face reads of a request, in one module: the authenticated principal and what the
// server's hooks set (request decorations), permission checks, the base URL, query integers,
// and route body validation through the precompiled validators.
import type { FastifyInstance, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import type { BatonError } from '../../protocol/errors.ts';
import { compile, describeErrors } from '../../protocol/validate.ts';
import { permits, type Principal } from '../auth.ts';
import { apiError, ApiErrorCode } from './errors.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- HTTPS server and pino logger generics
export type AnyFastify = FastifyInstance<any, any, any, any, any>;

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking: set by the server's token hook, or after a Chef signature verified; null on open routes. */
    principal: Principal | null;
    /** The request carries Chef signature headers (no token): verified once the body is read. */
    chefSigned: boolean;
    /** A JSON body as sent (the Chef signature's X-Ops-Content-Hash is over these bytes). */
    rawBody: string | null;
  }
}

/** The per-request fields, declared once on the root app (fastify keeps their shape stable). */
export function decorateRequests(app: AnyFastify): void {
  app.decorateRequest('principal', null);
  app.decorateRequest('chefSigned', false);
  app.decorateRequest('rawBody', null);
}

/** The principal of an authenticated route (every API route is: the server's hooks refuse the rest). */
export function principal(req: FastifyRequest): Principal {
  if (req.principal === null) throw apiError(ApiErrorCode.unauthenticated, 'this route requires authentication');
  return req.principal;
}

export function demand(req: FastifyRequest, permission: string): void {
  const who = principal(req);
  if (!permits(who, permission)) throw apiError(ApiErrorCode.notPermitted, `${who.login} lacks the permission ${permission}`, { permission });
}

/** A route hook (preValidation) demanding a permission: checked before the body is validated. */
export function requires(permission: string): (req: FastifyRequest) => Promise<void> {
  return async (req) => demand(req, permission);
}

/** A Host header as links may use it: a host name or an IP literal, with an optional port. */
const HOST_HEADER = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/** The base of links in answers (bodies and Location headers): the Host header when it is a host, else localhost. */
export function baseUrl(req: FastifyRequest): string {
  const host = req.headers.host;
  return `https://${host !== undefined && HOST_HEADER.test(host) ? host : 'localhost'}`;
}

/** An integer query parameter (>= min), or the fallback when it is absent or empty. */
export function intQuery(value: unknown, name: string, fallback: number, min = 0): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw apiError(ApiErrorCode.validation, `query parameter '${name}' must be an integer >= ${min}, got '${String(value)}'`);
  return n;
}

const validationError = (msg: string): BatonError => apiError(ApiErrorCode.validation, msg);

/**
 * The validator compiler of a face (fastify's setValidatorCompiler): a route schema is looked up
 * by its `$id` among the precompiled validators (nothing compiles at run time), and a refusal is
 * the face's own error (`refuse`), with the message `describeErrors` gives, e.g. `body.command ...`.
 */
export function precompiledValidators(refuse: (msg: string) => BatonError = validationError): FastifySchemaCompiler<{ $id?: string }> {
  return ({ schema, httpPart }) => {
    const validate = compile<unknown>(schema);
    const what = httpPart === 'querystring' ? 'query' : (httpPart ?? 'body');
    return (data: unknown) => (validate(data) ? true : { error: refuse(describeErrors(validate.errors, what)) });
  };
}
