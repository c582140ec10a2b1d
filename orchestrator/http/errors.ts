// The orchestrator's error catalogue: internal error codes → Puppet face error kinds and statuses.
import type { FastifyReply } from 'fastify';
import { BatonError } from '../../protocol/errors.ts';

export const PUPPET_KIND_PREFIX = 'puppetlabs.orchestrator/';

export const ApiErrorCode = {
  validation: 'validation-error',
  unknownEnvironment: 'unknown-environment',
  emptyTarget: 'empty-target',
  unknownJob: 'unknown-job',
  unknownTask: 'unknown-task',
  unknownNode: 'unknown-node',
  notPermitted: 'not-permitted',
  queryError: 'query-error',
  emptyEnvironment: 'empty-environment',
  dependencyCycle: 'dependency-cycle',
  puppetdbError: 'puppetdb-error',
  invalidTask: 'invalid-task-metadata',
  unauthenticated: 'unauthenticated',
  unavailable: 'service-unavailable',
  notFound: 'not-found',
  notAcceptable: 'not-acceptable',
} as const;

const STATUS: Record<string, number> = {
  [ApiErrorCode.validation]: 400,
  [ApiErrorCode.unknownEnvironment]: 404,
  [ApiErrorCode.emptyTarget]: 400,
  [ApiErrorCode.unknownJob]: 404,
  [ApiErrorCode.unknownTask]: 404,
  [ApiErrorCode.unknownNode]: 404,
  [ApiErrorCode.notPermitted]: 403,
  [ApiErrorCode.queryError]: 400,
  [ApiErrorCode.emptyEnvironment]: 400,
  [ApiErrorCode.dependencyCycle]: 400,
  [ApiErrorCode.puppetdbError]: 400,
  [ApiErrorCode.invalidTask]: 400,
  [ApiErrorCode.unauthenticated]: 401,
  [ApiErrorCode.unavailable]: 503,
  [ApiErrorCode.notFound]: 404,
  [ApiErrorCode.notAcceptable]: 406,
};

export class ApiError extends BatonError {}

export function apiError(code: string, msg: string, details: Record<string, unknown> = {}): ApiError {
  return new ApiError(code, msg, { details });
}

/** Redis gone or not answering: the API answers 503 until it is back. */
export function isUnavailable(err: unknown): boolean {
  const m = (err as Error)?.message ?? '';
  return /Stream isn't writeable|Connection is closed|ECONNREFUSED|ECONNRESET|enableOfflineQueue|max retries|Reached the max retries|LOADING/.test(m);
}

export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof BatonError && STATUS[err.code] !== undefined) {
    const kind = err.code === ApiErrorCode.unauthenticated ? 'puppetlabs.rbac/user-unauthenticated' : `${PUPPET_KIND_PREFIX}${err.code}`;
    return reply.code(STATUS[err.code]!).send({ kind, msg: err.message, details: err.details ?? {} });
  }
  if (isUnavailable(err)) {
    return reply.code(503).send({ kind: `${PUPPET_KIND_PREFIX}${ApiErrorCode.unavailable}`, msg: 'the job store (Redis) is unavailable; try again shortly', details: {} });
  }
  reply.log.error({ err }, 'unexpected error');
  return reply.code(500).send({ kind: `${PUPPET_KIND_PREFIX}unknown-error`, msg: 'an unexpected error occurred; see the orchestrator log', details: {} });
}

/** The Chef face's errors: `{"error": [message]}` with the same statuses. */
export function sendChefError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof BatonError && STATUS[err.code] !== undefined) return reply.code(STATUS[err.code]!).send({ error: [err.message] });
  if (isUnavailable(err)) return reply.code(503).send({ error: ['the job store (Redis) is unavailable; try again shortly'] });
  reply.log.error({ err }, 'unexpected error');
  return reply.code(500).send({ error: ['an unexpected error occurred; see the orchestrator log'] });
}

/** The Nomad face's errors: the message as plain text with its status, as Nomad answers. */
const NOMAD_STATUS: Record<string, number> = {
  'nomad/bad-request': 400,
  'nomad/not-found': 404,
  'unknown-task': 400,
  'unknown-environment': 400,
  'invalid-task-metadata': 400,
};

export function sendNomadError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof BatonError) {
    const status = NOMAD_STATUS[err.code] ?? STATUS[err.code];
    if (status !== undefined) return reply.code(status).type('text/plain; charset=utf-8').send(err.message);
  }
  if (isUnavailable(err)) return reply.code(503).type('text/plain; charset=utf-8').send('the job store (Redis) is unavailable; try again shortly');
  reply.log.error({ err }, 'unexpected error');
  return reply.code(500).type('text/plain; charset=utf-8').send('an unexpected error occurred; see the orchestrator log');
}
