// The web console as a fastify plugin under /console: the app's files (no token), and the
// read-only API the app needs beyond the faces' routes (token required, Puppet-format errors):
// who the token is, jobs filtered across faces, and the live feeds.
import type { Redis } from 'ioredis';
import { Permission, permits } from '../../auth.ts';
import { JobState, type JobStore } from '../../engine/store.ts';
import { apiError, ApiErrorCode, sendError } from '../errors.ts';
import { notFound, setUpFace } from '../face.ts';
import { DEFAULT_PAGE_LIMIT } from '../puppet/context.ts';
import { baseUrl, demand, intQuery, principal, type AnyFastify } from '../request.ts';
import { filterJobIds, jobView } from '../puppet/job-view.ts';
import { streamPosition } from '../../../lib/redis-stream.ts';
import { globalFeed, jobFeed } from './feeds.ts';
import { CONSOLE_HEADERS, sendAsset, sendIndex } from './static.ts';

export const CONSOLE_PREFIX = '/console';
/** Paths under the prefix that are the console's API (a token is required there, as on every API route). */
export const CONSOLE_API_PATH = /^\/console\/api(\/|$)/;
/** The most jobs one page of /console/api/jobs gives. */
export const MAX_JOBS_PAGE_LIMIT = 1000;
const JOB_TYPES = ['task', 'deploy', 'command', 'deployment'];

export interface ConsoleFaceContext {
  store: JobStore;
  /** The API's Redis connection (feeds follow on duplicates of it). */
  redis: Redis;
  /** The built console (index.html, assets/): dist/console. */
  dir: string;
}

/** Whether a request path is one of the console's files, served without a token (its API is not). */
export function isConsoleFile(path: string): boolean {
  if (path !== CONSOLE_PREFIX && !path.startsWith(`${CONSOLE_PREFIX}/`)) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  return !CONSOLE_API_PATH.test(path) && !CONSOLE_API_PATH.test(decoded);
}

export async function consoleFace(app: AnyFastify, ctx: ConsoleFaceContext): Promise<void> {
  const { store } = ctx;
  setUpFace(app, sendError);
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(CONSOLE_HEADERS);
    return payload;
  });

  app.get('/api/me', async (req) => {
    const p = principal(req);
    const may = (permission: string) => permits(p, permission);
    return {
      login: p.login,
      permissions: [...p.permissions],
      can: { view_jobs: may(Permission.jobsView), run_jobs: may(Permission.jobsRun), stop_jobs: may(Permission.jobsStop), view_inventory: may(Permission.inventoryView), view_tasks: may(Permission.tasksView) },
    };
  });

  // Jobs of every face, newest first, filtered by type, state and owner (the Puppet face's /jobs filters by type only).
  app.get('/api/jobs', async (req) => {
    demand(req, Permission.jobsView);
    const q = req.query as Record<string, string | undefined>;
    const limit = intQuery(q.limit, 'limit', DEFAULT_PAGE_LIMIT, 1);
    if (limit > MAX_JOBS_PAGE_LIMIT) throw apiError(ApiErrorCode.validation, `query parameter 'limit' must be at most ${MAX_JOBS_PAGE_LIMIT}, got '${limit}'`);
    const offset = intQuery(q.offset, 'offset', 0);
    const type = q.type || undefined;
    const state = q.state || undefined;
    const owner = q.owner || undefined;
    if (type !== undefined && !JOB_TYPES.includes(type)) throw apiError(ApiErrorCode.validation, `query parameter 'type' must be one of ${JOB_TYPES.join(', ')}, got '${type}'`);
    const states: string[] = Object.values(JobState);
    if (state !== undefined && !states.includes(state)) throw apiError(ApiErrorCode.validation, `query parameter 'state' must be one of ${states.join(', ')}, got '${state}'`);
    // The job feed's position before the jobs are read: the app follows the feed from there (Last-Event-ID),
    // so that no change between this answer and its feed is missed.
    const feed = await streamPosition(ctx.redis, store.keys.jobFeed());
    let { ids } = await store.jobIds({ limit: 0, offset: 0, order: 'desc' });
    // The newest job of all when this was read: a job the feed gives later that is newer is a new one.
    const newest = ids[0] ?? null;
    ids = await filterJobIds(store, ids, { type, state, owner });
    const base = baseUrl(req);
    const items = (await Promise.all(ids.slice(offset, offset + limit).map((id) => jobView(store, base, id)))).filter((j) => j !== null);
    return { items, pagination: { limit, offset, total: ids.length }, feed, newest };
  });

  app.get('/api/feed', async (req, reply) => {
    demand(req, Permission.jobsView);
    const job = (req.query as { job?: string }).job;
    if (job !== undefined) return jobFeed(req, reply, ctx, job);
    return globalFeed(req, reply, ctx);
  });

  // Unknown API paths are the API's 404, not the app.
  const apiNotFound = async (req: Parameters<typeof notFound>[0]) => {
    throw notFound(req);
  };
  app.get('/api', apiNotFound);
  app.get('/api/*', apiNotFound);

  app.get('/assets/*', async (req, reply) => sendAsset(reply, ctx.dir, (req.params as { '*': string })['*']));
  // The app routes by the history API: every other path is the app itself.
  app.get('/', async (_req, reply) => sendIndex(reply, ctx.dir));
  app.get('/*', async (_req, reply) => sendIndex(reply, ctx.dir));
}
