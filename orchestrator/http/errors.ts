// The orchestrator's error catalogue: internal error codes → Puppet face error kinds and statuses.
import type { FastifyReply } from 'fastify';
import { BatonError } from '../../protocol/errors.ts';
import { classifyRedisError, StoreErrorCode, type StoreError } from '../engine/store.ts';
import { TaskCatalogError } from '../tasks/catalog.ts';

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
  /** PuppetDB unreachable, slow or failing: 503, with the kind puppetdb-error. */
  puppetdbUnavailable: 'puppetdb-unavailable',
  invalidTask: 'invalid-task-metadata',
  unauthenticated: 'unauthenticated',
  unavailable: 'service-unavailable',
  notFound: 'not-found',
  notAcceptable: 'not-acceptable',
  /** The Idempotency-Key header is malformed (empty, too long, not printable, given twice). */
  invalidIdempotencyKey: 'invalid-idempotency-key',
  /** The Idempotency-Key was used before with a different request (IETF draft: 422). */
  idempotencyKeyReused: 'idempotency-key-reused',
  /** A request with the same Idempotency-Key is still under way (IETF draft: 409). */
  idempotencyKeyInUse: 'idempotency-key-in-use',
  /** A path segment longer than the router takes (fastify's maxParamLength). */
  uriTooLong: 'uri-too-long',
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
  [ApiErrorCode.puppetdbUnavailable]: 503,
  [ApiErrorCode.invalidTask]: 400,
  [ApiErrorCode.unauthenticated]: 401,
  [ApiErrorCode.unavailable]: 503,
  [ApiErrorCode.notFound]: 404,
  [ApiErrorCode.notAcceptable]: 406,
  [ApiErrorCode.invalidIdempotencyKey]: 400,
  [ApiErrorCode.idempotencyKeyReused]: 422,
  [ApiErrorCode.idempotencyKeyInUse]: 409,
  [ApiErrorCode.uriTooLong]: 414,
  [StoreErrorCode.reservationLost]: 409,
  // Plans (orchestrator/plans/model.ts PlanErrorCode): refused at submit.
  'invalid-plan': 400,
  'unknown-plan': 404,
  'unknown-variable': 400,
  'invalid-plan-parameters': 400,
  'unknown-file': 404,
};

/** Codes whose Puppet `kind` is another's (the status differs, the kind does not). */
const KIND_OF: Record<string, string> = { [ApiErrorCode.puppetdbUnavailable]: ApiErrorCode.puppetdbError };

/** Seconds a client is told to wait before retrying after a 503 or a 409 (key in use). */
export const RETRY_AFTER_S = 1;

export class ApiError extends BatonError {}

export function apiError(code: string, msg: string, details: Record<string, unknown> = {}): ApiError {
  return new ApiError(code, msg, { details });
}

/** A task catalog's (or task source's) error as the API error of the same meaning; others are rethrown. */
export function catalogError(err: unknown): never {
  if (err instanceof TaskCatalogError) {
    const code = err.code === 'validation-error' ? ApiErrorCode.validation : err.code === 'invalid-task-metadata' ? ApiErrorCode.invalidTask : err.code === 'service-unavailable' ? ApiErrorCode.unavailable : err.code;
    throw apiError(code, err.message, err.details ?? {});
  }
  throw err;
}

/** Redis gone or not answering: the API answers 503 until it is back. */
export function isUnavailable(err: unknown): boolean {
  return unavailable(err) !== null;
}

/** The store's unavailability (Redis away, slow, or a creation refused as late), classified once. */
function unavailable(err: unknown): StoreError | null {
  const e = classifyRedisError(err);
  return e && e.code !== StoreErrorCode.reservationLost ? e : null;
}

const UNAVAILABLE_REASON: Record<string, string> = {
  [StoreErrorCode.unavailable]: 'unreachable',
  [StoreErrorCode.timeout]: 'timeout',
  [StoreErrorCode.deadlinePassed]: 'timeout',
};

function unavailableMessage(e: StoreError): string {
  return e.code === StoreErrorCode.unavailable
    ? 'the job store (Redis) is unavailable; try again shortly'
    : 'the job store (Redis) did not answer in time; nothing was done, try again shortly';
}

function retryable(reply: FastifyReply, status: number): FastifyReply {
  if (status === 503 || status === 409) reply.header('retry-after', String(RETRY_AFTER_S));
  return reply.code(status);
}

export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof BatonError && STATUS[err.code] !== undefined) {
    const kind = err.code === ApiErrorCode.unauthenticated ? 'puppetlabs.rbac/user-unauthenticated' : `${PUPPET_KIND_PREFIX}${KIND_OF[err.code] ?? err.code}`;
    return retryable(reply, STATUS[err.code]!).send({ kind, msg: err.message, details: err.details ?? {} });
  }
  const down = unavailable(err);
  if (down) {
    return retryable(reply, 503).send({ kind: `${PUPPET_KIND_PREFIX}${ApiErrorCode.unavailable}`, msg: unavailableMessage(down), details: { service: 'redis', reason: UNAVAILABLE_REASON[down.code] } });
  }
  reply.log.error({ err }, 'unexpected error');
  return reply.code(500).send({ kind: `${PUPPET_KIND_PREFIX}unknown-error`, msg: 'an unexpected error occurred; see the orchestrator log', details: {} });
}

/** The Chef face's errors: `{"error": [message]}` with the same statuses. */
export function sendChefError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof BatonError && STATUS[err.code] !== undefined) return retryable(reply, STATUS[err.code]!).send({ error: [err.message] });
  const down = unavailable(err);
  if (down) return retryable(reply, 503).send({ error: [unavailableMessage(down)] });
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
    if (status !== undefined) return retryable(reply, status).type('text/plain; charset=utf-8').send(err.message);
  }
  const down = unavailable(err);
  if (down) return retryable(reply, 503).type('text/plain; charset=utf-8').send(unavailableMessage(down));
  reply.log.error({ err }, 'unexpected error');
  return reply.code(500).type('text/plain; charset=utf-8').send('an unexpected error occurred; see the orchestrator log');
}
