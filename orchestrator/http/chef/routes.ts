// The Chef Push Jobs face: /organizations/:org/pushy/{jobs, node_states, jobs_status_feed}, on the
// shared engine. Errors are Chef's `{"error": [message]}`; feeds are Server-Sent Events.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import type { Redis } from 'ioredis';
import { decodeJobFile } from '../../../protocol/job-file.ts';
import { chefAbortBodySchema, chefJobBodySchema } from '../../../schemas/orchestrator-api.ts';
import { Permission } from '../../auth.ts';
import { busyNodes, ChefJobs, FINAL_CHEF_STATES, type ChefJobSpec } from '../../chef/jobs.ts';
import type { ChefOrgs } from '../../chef/orgs.ts';
import { OUTPUT_CHANNELS, type OutputChannel, type OutputStore } from '../../chef/output.ts';
import { chefFeedEvent, chefJobJson, httpDate } from '../../chef/present.ts';
import { DEFAULT_CHEF_RUN_TIMEOUT_S, MAX_CHEF_BODY_BYTES, MAX_CHEF_FILE_BYTES } from '../../defaults.ts';
import type { Keys } from '../../engine/keys.ts';
import { ENDED_JOB_STATES, type JobRecord, type JobStore } from '../../engine/store.ts';
import type { InventoryTracker } from '../../pcp/inventory.ts';
import type { PxpRunner } from '../../pcp/pxp-runner.ts';
import { apiError, ApiErrorCode, sendChefError } from '../errors.ts';
import { setUpFace } from '../face.ts';
import { idempotentJob, registerIdempotency } from '../idempotency.ts';
import { baseUrl, demand, principal, requires, type AnyFastify } from '../request.ts';
import { SseStream, wantsEventStream } from '../sse.ts';
import { followStream, lastEventId } from '../stream-follow.ts';

export const CHEF_PREFIX = '/organizations/:org/pushy';
/** How often a followed output is asked of the agent while the command runs. */
export const OUTPUT_FOLLOW_POLL_MS = 250;

type ChefJobBody = FromSchema<typeof chefJobBodySchema>;
type ChefAbortBody = FromSchema<typeof chefAbortBodySchema>;

export interface ChefFaceContext {
  chef: ChefJobs;
  orgs: ChefOrgs;
  store: JobStore;
  keys: Keys;
  redis: Redis;
  inventory: InventoryTracker;
  output: OutputStore;
  runner: PxpRunner;
  jobFeedLingerS: number;
  orgFeedExpirationS: number;
}

/** The body's meaning beyond its schema (checked by the route): file encoding and size, quorum within the nodes. */
export function chefSpec(body: ChefJobBody, org: string): ChefJobSpec {
  const nodes = [...new Set(body.nodes)];
  if (body.file !== undefined) {
    const decoded = decodeJobFile(body.file);
    if ('problem' in decoded) throw apiError(ApiErrorCode.validation, `body.file: ${decoded.problem}`);
    const bytes = decoded.content.length;
    if (bytes > MAX_CHEF_FILE_BYTES) throw apiError(ApiErrorCode.validation, `body.file is ${bytes} bytes decoded; the largest is ${MAX_CHEF_FILE_BYTES}`);
  }
  const quorum = body.quorum ?? nodes.length;
  if (quorum > nodes.length) throw apiError(ApiErrorCode.validation, `body.quorum (${quorum}) is larger than the number of nodes (${nodes.length})`);
  return {
    org, command: body.command, nodes, quorum, run_timeout: body.run_timeout ?? DEFAULT_CHEF_RUN_TIMEOUT_S, env: (body.env ?? {}) as Record<string, string>,
    capture_output: body.capture_output === true, ...(body.user ? { user: body.user } : {}), ...(body.dir ? { dir: body.dir } : {}), ...(body.file !== undefined ? { file: body.file } : {}),
  };
}

/**
 * The face as a fastify plugin, registered with the prefix CHEF_PREFIX: its routes, its error and
 * not-found handlers (Chef's `{"error": [...]}`) and its body validation (route schemas).
 */
export async function chefFace(app: AnyFastify, ctx: ChefFaceContext): Promise<void> {
  const { store, chef, orgs } = ctx;
  setUpFace(app, sendChefError);

  /** The request's organization; 404 when it is not served (checked before anything else is read). */
  function orgOf(req: FastifyRequest): string {
    const { org } = req.params as { org: string };
    if (!orgs.exists(org)) throw apiError(ApiErrorCode.notFound, `no organization ${JSON.stringify(org)}`, { org });
    return org;
  }
  /** Route hooks (preValidation) of a route with a body: the organization, then the permission, then the body. */
  const servedOrg = async (req: FastifyRequest) => void orgOf(req);
  const before = (permission: string) => [servedOrg, requires(permission)];

  /** A push job of the organization; another organization's job is as absent as an unknown one. */
  async function commandJob(org: string, id: string): Promise<{ job: JobRecord; spec: ChefJobSpec }> {
    const job = /^[0-9]+$/.test(id) ? await store.getJob(id) : null;
    const spec = job?.type === 'command' ? await chef.spec(id) : null;
    if (!job || !spec || spec.org !== org) throw apiError(ApiErrorCode.notFound, `no push job ${id} in organization ${org}`, { job: id });
    return { job, spec };
  }

  async function jobJson(job: JobRecord, spec: ChefJobSpec, includeFile: boolean): Promise<Record<string, unknown>> {
    const [state, updated] = await store.jobFields(job.id, 'chef_state', 'updated_ms');
    return chefJobJson(job, spec, state ?? 'new', Number(updated ?? job.created_ms), await store.getNodes(job.id), includeFile);
  }

  registerIdempotency(app, store, 'chef', [{ method: 'POST', url: `${CHEF_PREFIX}/jobs` }]);

  app.post<{ Body: ChefJobBody }>('/jobs', { bodyLimit: MAX_CHEF_BODY_BYTES, schema: { body: chefJobBodySchema }, preValidation: before(Permission.jobsRun) }, async (req, reply) => {
    const org = orgOf(req);
    const spec = chefSpec(req.body, org);
    const foreign = spec.nodes.filter((n) => !orgs.hasNode(org, n));
    if (foreign.length > 0) throw apiError(ApiErrorCode.validation, `body.nodes: ${foreign.slice(0, 10).join(', ')}${foreign.length > 10 ? ` and ${foreign.length - 10} more` : ''} ${foreign.length === 1 ? 'is' : 'are'} not in organization ${org}`, { nodes: foreign });
    // Built only from checked values: a served organization name, a numeric id, a well-formed host.
    const location = (id: string) => ({ location: `${baseUrl(req)}/organizations/${org}/pushy/jobs/${id}` });
    const answer = (id: string) => ({ id, uri: `/organizations/${org}/pushy/jobs/${id}` });
    const job = await chef.submit(spec, principal(req).login, idempotentJob(req, 201, location, answer));
    return reply.code(201).headers(location(job.id)).send(answer(job.id));
  });

  app.get('/jobs', async (req) => {
    const org = orgOf(req);
    demand(req, Permission.jobsView);
    const { ids } = await store.jobIds({ limit: 0, offset: 0, order: 'desc' });
    const out = [];
    for (const id of ids) {
      const job = await store.getJob(id);
      if (job?.type !== 'command') continue;
      const spec = await chef.spec(id);
      const [state, updated] = await store.jobFields(id, 'chef_state', 'updated_ms');
      if (spec?.org === org) out.push({ id, command: spec.command, status: state, created_at: httpDate(job.created_ms), updated_at: httpDate(Number(updated ?? job.created_ms)) });
    }
    return out;
  });

  app.get('/jobs/:id', async (req) => {
    const org = orgOf(req);
    demand(req, Permission.jobsView);
    const { job, spec } = await commandJob(org, (req.params as { id: string }).id);
    return jobJson(job, spec, (req.query as { include_file?: string }).include_file === 'true');
  });

  // Abort: `{"status": "abort"}`. Nothing more starts; running commands are killed; the job ends aborted.
  app.put<{ Body: ChefAbortBody }>('/jobs/:id', { bodyLimit: MAX_CHEF_BODY_BYTES, schema: { body: chefAbortBodySchema }, preValidation: before(Permission.jobsStop) }, async (req) => {
    const org = orgOf(req);
    const { job, spec } = await commandJob(org, (req.params as { id: string }).id);
    if (!ENDED_JOB_STATES.includes(job.state)) await chef.abort(job.id, principal(req).login);
    return jobJson((await store.getJob(job.id)) ?? job, spec, false);
  });

  app.get('/jobs/:id/output/:node/:channel', async (req, reply) => {
    const org = orgOf(req);
    demand(req, Permission.jobsView);
    const { id, node, channel } = req.params as { id: string; node: string; channel: string };
    if (!OUTPUT_CHANNELS.includes(channel as OutputChannel)) throw apiError(ApiErrorCode.notFound, `no output channel '${channel}'; channels are stdout and stderr`);
    const { job, spec } = await commandJob(org, id);
    if (!spec.capture_output) throw apiError(ApiErrorCode.notFound, `job ${job.id} did not capture output (capture_output was false)`);
    const rec = await store.getNode(job.id, node);
    if (!rec) throw apiError(ApiErrorCode.notFound, `node ${node} is not part of job ${job.id}`);
    const follow = (req.query as { follow?: string }).follow === 'true';
    if (follow && rec.state === 'running' && rec.transaction_uuid) return followOutput(req, reply, ctx, node, rec.transaction_uuid, channel as OutputChannel);
    const stored = await ctx.output.get(job.id, node, channel as OutputChannel);
    if (!stored) throw apiError(ApiErrorCode.notFound, `no ${channel} for ${node} in job ${job.id} yet: output is kept when the node's run ends (use ?follow=true while it runs)`);
    return reply.type('application/octet-stream').send(stored);
  });

  app.get('/node_states', async (req) => {
    const org = orgOf(req);
    demand(req, Permission.inventoryView);
    const names = ctx.inventory.all().filter((n) => orgs.hasNode(org, n.name)).map((n) => n.name);
    const busy = await busyNodes(ctx.redis, ctx.keys, names);
    return names.map((n) => nodeState(ctx, n, busy.has(n)));
  });

  app.get('/node_states/:node', async (req) => {
    const org = orgOf(req);
    demand(req, Permission.inventoryView);
    const { node } = req.params as { node: string };
    if (!orgs.hasNode(org, node) || !ctx.inventory.all().some((n) => n.name === node)) throw apiError(ApiErrorCode.notFound, `no node named ${node} in organization ${org} has connected`, { node });
    return nodeState(ctx, node, (await busyNodes(ctx.redis, ctx.keys, [node])).has(node));
  });

  app.get('/jobs_status_feed/:id', async (req, reply) => {
    const org = orgOf(req);
    demand(req, Permission.jobsView);
    acceptEventStream(req);
    const { job, spec } = await commandJob(org, (req.params as { id: string }).id);
    const [state, doneMs] = await store.jobFields(job.id, 'chef_state', 'updated_ms');
    const lingerOver = typeof state === 'string' && FINAL_CHEF_STATES.includes(state) && Date.now() - Number(doneMs) > ctx.jobFeedLingerS * 1000;
    reply.hijack();
    const sse = new SseStream(reply.raw);
    if (lingerOver) {
      sse.send({ event: 'summary', data: await jobJson(job, spec, false) });
      return sse.end();
    }
    const last = lastEventId(req);
    const after = last !== null && /^[0-9]+$/.test(last) ? `0-${last}` : '0-0';
    const map = (id: string, raw: string) => {
      const e = chefFeedEvent({ id: Number(id.split('-')[1]), ...(JSON.parse(raw) as { type: string; timestamp: string; details: Record<string, unknown> }) });
      return { event: e, end: e?.event === 'job_complete' };
    };
    if (typeof state === 'string' && FINAL_CHEF_STATES.includes(state)) {
      // Completed (within the linger): what came after Last-Event-ID, then the end; nothing to follow.
      for (const [id, fields] of await ctx.redis.xrange(ctx.keys.events(job.id), `(${after}`, '+')) {
        const { event } = map(id, fields[1]!);
        if (event) sse.send(event);
      }
      return sse.end();
    }
    await tail(ctx, sse, ctx.keys.events(job.id), after, map);
  });

  app.get('/jobs_status_feed', async (req, reply) => {
    const org = orgOf(req);
    demand(req, Permission.jobsView);
    acceptEventStream(req);
    const key = ctx.keys.orgEvents(org);
    const minId = `${Date.now() - ctx.orgFeedExpirationS * 1000}-0`;
    const last = lastEventId(req);
    // '$' resolved once to the newest id, so that nothing added between two reads is missed.
    let after = (await ctx.redis.xrevrange(key, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    let history = false;
    if (last !== null) {
      const known = /^[0-9]+-[0-9]+$/.test(last) && (await ctx.redis.xrange(key, last, last)).length === 1 && compareIds(last, minId) >= 0;
      after = known ? last : minId;
      history = !known;
    }
    reply.hijack();
    const sse = new SseStream(reply.raw);
    if (history) sse.send({ event: 'start_of_history', data: { timestamp: new Date().toISOString() } });
    await tail(ctx, sse, key, after, (id, raw) => {
      const { type, ...data } = JSON.parse(raw) as { type: string } & Record<string, unknown>;
      return { event: { event: type, id, data }, end: false };
    });
  });
}

function acceptEventStream(req: FastifyRequest): void {
  if (!wantsEventStream(req.headers.accept)) throw apiError(ApiErrorCode.notAcceptable, 'this feed is Server-Sent Events: send Accept: text/event-stream');
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}

/** `busy`: the node's busy mark in Redis (a command job it acked and has not ended, through any orchestrator). */
function nodeState(ctx: ChefFaceContext, node: string, busy: boolean): Record<string, unknown> {
  const n = ctx.inventory.get(node);
  return { node_name: node, status: n.connected ? 'up' : 'down', updated_at: n.timestamp ? httpDate(Date.parse(n.timestamp)) : null, availability: busy ? 'busy' : 'available' };
}

/** Sends a stream's entries after `after` as events, then follows it until `map` says the end came or the client went. */
function tail(ctx: ChefFaceContext, sse: SseStream, key: string, after: string, map: (id: string, raw: string) => { event: ReturnType<typeof chefFeedEvent>; end: boolean }): Promise<void> {
  return followStream({
    redis: ctx.redis, sse, key, after,
    onEntries: (entries) => {
      for (const [id, fields] of entries) {
        const { event, end } = map(id, fields[1]!);
        if (event) sse.send(event);
        if (end) return true;
      }
      return false;
    },
  });
}

/** Streams a running command's output from the agent's spool as it grows, to its end. */
async function followOutput(req: FastifyRequest, reply: FastifyReply, ctx: ChefFaceContext, node: string, txid: string, channel: OutputChannel): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'application/octet-stream', 'x-accel-buffering': 'no', 'cache-control': 'no-cache' });
  let closed = false;
  raw.on('close', () => (closed = true));
  const offsets = { stdout: 0, stderr: 0 };
  while (!closed) {
    const chunk = await ctx.runner.commandOutput(node, txid, offsets);
    if (!chunk) break;
    const data = chunk[channel];
    if (data.length > 0) raw.write(data);
    offsets.stdout = chunk.stdout_offset;
    offsets.stderr = chunk.stderr_offset;
    if (chunk.status !== 'running' && chunk.stdout.length === 0 && chunk.stderr.length === 0) break;
    if (chunk.status === 'running' && data.length === 0) await new Promise((r) => setTimeout(r, OUTPUT_FOLLOW_POLL_MS));
  }
  req.log.debug({ node, channel, bytes: offsets[channel] }, 'followed output ended');
  raw.end();
}
