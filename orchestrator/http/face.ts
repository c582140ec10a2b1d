// What each face sets up inside its own plugin (fastify encapsulation): its error handler and
// not-found handler, both answering in the face's format, and its validator compiler (route
// schemas through the precompiled validators, refusals as the face's own 400).
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { BatonError } from '../../protocol/errors.ts';
import { apiError, ApiErrorCode, type sendError } from './errors.ts';
import { precompiledValidators, type AnyFastify } from './request.ts';

export const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** How a face answers an error (Puppet's JSON, Chef's JSON, Nomad's text). */
export type ErrorSender = typeof sendError;

/** Errors of a body that was read to its end: the connection can be kept alive after the answer. */
const BODY_READ_ERRORS = new Set(['FST_ERR_CTP_INVALID_JSON_BODY', 'FST_ERR_CTP_EMPTY_JSON_BODY', ApiErrorCode.validation]);

/** fastify's own refusals of a request, as API errors; anything else is passed on as it is. */
export function asApiError(err: unknown, req: FastifyRequest): unknown {
  if (err instanceof BatonError) return err;
  const e = err as Partial<FastifyError>;
  // The JSON parser's refusals (fastify's default parser, which ours calls after its depth check).
  if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return apiError(ApiErrorCode.validation, `the body is not valid JSON: ${e.message}`);
  }
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return apiError(ApiErrorCode.validation, 'send the body as application/json');
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return apiError(ApiErrorCode.validation, `the body is larger than ${req.routeOptions.bodyLimit ?? MAX_BODY_BYTES} bytes`);
  // Any other request fastify itself refuses (bad URL, content length, ...) is the client's error.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return apiError(ApiErrorCode.validation, `the request is invalid: ${e.message}`);
  return err;
}

/** An error handler answering in one face's format. */
export function errorHandlerOf(send: ErrorSender): (err: unknown, req: FastifyRequest, reply: FastifyReply) => FastifyReply {
  return (err, req, reply) => {
    const code = (err as { code?: unknown }).code;
    // fastify closes the connection after any body error; a body read to its end needs no close.
    if (typeof code === 'string' && BODY_READ_ERRORS.has(code)) reply.removeHeader('connection');
    return send(reply, asApiError(err, req));
  };
}

export function notFound(req: FastifyRequest): BatonError {
  return apiError(ApiErrorCode.notFound, `no route ${req.method} ${req.url.split('?')[0]}`);
}

/** Called first in a face's plugin: errors, unknown routes and body validation in its format. */
export function setUpFace(app: AnyFastify, send: ErrorSender, refuse?: (msg: string) => BatonError): void {
  app.setErrorHandler(errorHandlerOf(send));
  app.setNotFoundHandler((req, reply) => send(reply, notFound(req)));
  app.setValidatorCompiler(precompiledValidators(refuse));
}
