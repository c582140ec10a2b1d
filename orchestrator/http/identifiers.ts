// Validate before acting: every path segment (of the three API faces and the rest of the API), and every identifier in a
// path (organization names, job ids, node names, deployment ids, task and module names), checked
// against its grammar in one hook that runs before the body is read and before any handler: a bad
// one is a 400 in the face's own format (the face's error handler answers the thrown error), and
// nothing was looked up, created or changed. Pure checks; the hook is installed by server.ts.
import type { FastifyRequest } from 'fastify';
import { isValidCommonName } from '../../protocol/uri.ts';
import { isFullId } from '../nomad/model.ts';
import { apiError, ApiErrorCode, type ApiError } from './errors.ts';

/** The console's files answer 404 for any name they do not have (its API is under the same prefix and checked). */
const CONSOLE_FILES = /^\/console(\/|$)(?!api(\/|$))/;

/** C0 controls, DEL and C1 controls: never part of a name, an id or a path segment. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export interface Grammar {
  test(value: string): boolean;
  /** What a valid value is, for the error message. */
  readonly what: string;
}

const grammar = (re: RegExp, what: string): Grammar => ({ test: (v) => re.test(v), what });

/** Job ids of the Puppet and Chef faces, and scheduled job ids: decimal integers. */
export const NUMERIC_ID = grammar(/^[0-9]{1,20}$/, 'a decimal job id');
/** A node is named by its certificate's common name (PCP: no `/`, `*`, white space or control characters). */
export const NODE_NAME: Grammar = { test: isValidCommonName, what: 'a node name (a certificate common name: no /, *, white space or control characters, at most 255 characters)' };
/** Puppet module and task names. */
export const MODULE_NAME = grammar(/^[a-z][a-z0-9_]{0,254}$/, 'a Puppet module or task name (lowercase letters, digits and _, starting with a letter)');
/** A plan's name inside its module (`init`, `name`, or `dir::name` for plans/dir/name.yaml). */
export const PLAN_NAME_IN_MODULE = grammar(/^[a-z][a-z0-9_]{0,254}(::[a-z][a-z0-9_]{0,254})*$/, 'a plan name (lowercase letters, digits and _, starting with a letter; :: between directories)');
/** Nomad job IDs, as the register body's schema has them. */
export const NOMAD_JOB_ID = grammar(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a job ID (letters, digits, _, . and -, at most 128)');
/** Nomad deployment ids: full UUIDs. */
export const DEPLOYMENT_ID: Grammar = { test: isFullId, what: 'the full UUID of a deployment' };
/**
 * Chef organization names: printable, no `/` or white space. A well-formed name that is not
 * Chef's (uppercase, say) is an organization that does not exist, 404 as Chef Server answers it.
 */
export const ORG_NAME_SHAPE = grammar(/^[^\s/\\]{1,255}$/, 'an organization name');

/** Route parameters by the route pattern they occur under (first match wins). */
const RULES: readonly { under: string; param: string; grammar: Grammar }[] = [
  { under: '/orchestrator/v1/jobs/', param: 'id', grammar: NUMERIC_ID },
  { under: '/orchestrator/v1/scheduled_jobs/', param: 'id', grammar: NUMERIC_ID },
  { under: '/orchestrator/v1/inventory/', param: 'node', grammar: NODE_NAME },
  { under: '/orchestrator/v1/tasks/', param: 'module', grammar: MODULE_NAME },
  { under: '/orchestrator/v1/tasks/', param: 'task', grammar: MODULE_NAME },
  // Plans (http/puppet/plans.ts): /plan_jobs/:id[/events], /plans/:module/:name.
  { under: '/orchestrator/v1/plan_jobs/', param: 'id', grammar: NUMERIC_ID },
  { under: '/orchestrator/v1/plans/', param: 'module', grammar: MODULE_NAME },
  { under: '/orchestrator/v1/plans/', param: 'name', grammar: PLAN_NAME_IN_MODULE },
  { under: '/organizations/', param: 'org', grammar: ORG_NAME_SHAPE },
  { under: '/organizations/', param: 'id', grammar: NUMERIC_ID },
  { under: '/organizations/', param: 'node', grammar: NODE_NAME },
  { under: '/v1/job/', param: 'id', grammar: NOMAD_JOB_ID },
  { under: '/v1/deployment/', param: 'id', grammar: DEPLOYMENT_ID },
];

/** The grammar of parameter `param` of the route `routeUrl`, if one is known. */
export function grammarOf(routeUrl: string, param: string): Grammar | undefined {
  return RULES.find((r) => r.param === param && routeUrl.startsWith(r.under))?.grammar;
}

/** The percent-decoded segments of a path; null when one is not valid percent-encoding. */
function decodedSegments(path: string): string[] | null {
  try {
    return path.split('/').map((s) => decodeURIComponent(s));
  } catch {
    return null;
  }
}

/**
 * Why a request's path or identifiers are refused, or undefined when they are fine. `path` is
 * the raw path (before `?`), `routeUrl` the matched route's pattern (if any), `params` its
 * parameters as the router decoded them, `environment` the `environment` query parameter.
 */
export function refusePath(path: string, routeUrl: string | undefined, params: Record<string, unknown>, environment: unknown): ApiError | undefined {
  if (CONSOLE_FILES.test(path)) return undefined;
  const segments = decodedSegments(path);
  // Bad percent-encoding is the router's to refuse (frameworkErrors), in the face's format too.
  const at = segments?.findIndex((s) => CONTROL.test(s)) ?? -1;
  if (at >= 0) return apiError(ApiErrorCode.validation, `path segment ${at} (${JSON.stringify(segments![at])}) contains a control character`, { segment: at });
  if (typeof environment === 'string' && CONTROL.test(environment)) return apiError(ApiErrorCode.validation, `query parameter 'environment' (${JSON.stringify(environment)}) contains a control character`);
  if (routeUrl === undefined) return undefined;
  for (const [param, value] of Object.entries(params)) {
    if (typeof value !== 'string') continue;
    const g = grammarOf(routeUrl, param);
    if (g && !g.test(value)) return apiError(ApiErrorCode.validation, `path parameter '${param}' (${JSON.stringify(value)}) must be ${g.what}`, { [param]: value });
  }
  return undefined;
}

/** The refusal of a request's path or path identifiers (for an onRequest hook), or undefined. */
export function refusalOf(req: FastifyRequest): ApiError | undefined {
  const path = req.url.split('?')[0]!;
  return refusePath(path, req.routeOptions.url, (req.params ?? {}) as Record<string, unknown>, (req.query as { environment?: unknown } | undefined)?.environment);
}
