// The Nomad face: /v1/jobs (register, read, versions) and the deployments API of the seed, with
// blocking queries (?index=N&wait=30s) and X-Nomad-Index on every answer. Errors are plain text
// with the status, as Nomad's HTTP API answers them.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import { BatonError } from '../../../protocol/errors.ts';
import { nomadRegisterBodySchema } from '../../../schemas/orchestrator-api.ts';
import { Permission } from '../../auth.ts';
import { NomadErrorCode, type DeploymentController } from '../../nomad/controller.ts';
import { allocationJson, deploymentJson, isFullId, isValidPrefix, jobJson, specJson, TERMINAL_DEPLOYMENT, type Deployment } from '../../nomad/model.ts';
import type { NomadChanges } from '../../nomad/changes.ts';
import type { NomadStore } from '../../nomad/store.ts';
import type { JobStore } from '../../engine/store.ts';
import { sendNomadError } from '../errors.ts';
import { setUpFace } from '../face.ts';
import { registerIdempotency } from '../idempotency.ts';
import { demand, principal, requires, type AnyFastify } from '../request.ts';

export const NOMAD_PREFIX = '/v1';

/** Longest a blocking query waits (Nomad's own cap is 10 minutes; its default wait 5). */
export const MAX_BLOCKING_WAIT_MS = 600_000;
export const DEFAULT_BLOCKING_WAIT_MS = 300_000;

type RegisterBody = FromSchema<typeof nomadRegisterBodySchema>;

export interface NomadFaceContext {
  controller: DeploymentController;
  store: NomadStore;
  /** Changes made through any orchestrator on this Redis: blocking queries wake on them. */
  changes: NomadChanges;
  /** Where Idempotency-Keys are kept (the API's fail-fast job store). */
  idempotency: JobStore;
}

const badRequest = (msg: string) => new BatonError(NomadErrorCode.badRequest, msg);

/** `30s`, `5m`, `100ms` → ms. */
function waitMs(v: string | undefined): number {
  if (v === undefined || v === '') return DEFAULT_BLOCKING_WAIT_MS;
  const m = /^([0-9]+)(ms|s|m)$/.exec(v);
  if (!m) throw badRequest(`invalid wait '${v}': use a duration such as 30s, 5m or 500ms`);
  return Math.min(MAX_BLOCKING_WAIT_MS, Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000));
}

/**
 * The face as a fastify plugin, registered with the prefix NOMAD_PREFIX: its routes, its error and
 * not-found handlers (Nomad's plain text) and its body validation (route schemas, refused as 400s).
 */
export async function nomadFace(app: AnyFastify, ctx: NomadFaceContext): Promise<void> {
  const { controller, store, changes } = ctx;
  setUpFace(app, sendNomadError, badRequest);
  registerIdempotency(app, ctx.idempotency, 'nomad', [
    { method: 'POST', url: `${NOMAD_PREFIX}/jobs` }, { method: 'PUT', url: `${NOMAD_PREFIX}/jobs` },
    ...['fail', 'pause', 'promote', 'allocation-health'].map((w) => ({ method: 'POST', url: `${NOMAD_PREFIX}/deployment/${w}/:id` })),
  ]);

  // X-Nomad-Index on every answer of this face (this plugin's routes and not-found answers), errors included.
  app.addHook('onSend', async (_req, reply) => {
    // Not on a 503: Redis is away or stalled, and asking it again would double the wait.
    if (reply.hasHeader('x-nomad-index') || reply.statusCode === 503) return;
    try {
      reply.header('x-nomad-index', String(await store.index()));
    } catch {
      // Redis is away: the answer (a 503) goes without it
    }
  });

  /** A blocking query: with ?index=N, waits until the index passes N or `wait` passes. */
  async function blocking(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const q = req.query as { index?: string; wait?: string };
    if (q.index !== undefined) {
      if (!/^[0-9]+$/.test(q.index)) throw badRequest(`invalid index '${q.index}'`);
      const min = Number(q.index);
      const wait = waitMs(q.wait);
      // Listening first, then reading the index: a change between the two is not missed.
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          changes.off('changed', onChange);
          req.raw.off('close', done);
          resolve();
        };
        const onChange = (i: number) => {
          if (i > min) done();
        };
        const timer = setTimeout(done, wait);
        changes.on('changed', onChange);
        req.raw.on('close', done);
        void store.index().then((i) => {
          if (i > min) done();
          else req.log.debug({ index: min, wait_ms: wait }, 'blocking query waits');
        }, done);
      });
    }
    reply.header('x-nomad-index', String(await store.index()));
    reply.header('x-nomad-knownleader', 'true');
    reply.header('x-nomad-lastcontact', '0');
  }

  async function deploymentOr404(id: string): Promise<Deployment> {
    if (!isFullId(id)) throw badRequest(`deployment ID must be the full UUID, not a short or partial one: '${id}'`);
    const d = await store.deployment(id);
    if (!d) throw new BatonError(NomadErrorCode.notFound, 'deployment not found');
    return d;
  }

  app.route<{ Body: RegisterBody }>({
    method: ['PUT', 'POST'],
    url: '/jobs',
    schema: { body: nomadRegisterBodySchema },
    preValidation: requires(Permission.jobsRun),
    handler: async (req, reply) => {
      const res = await controller.register(req.body.Job, principal(req).login);
      reply.header('x-nomad-index', String(res.Index));
      return res;
    },
  });

  app.get('/jobs', async (req, reply) => {
    demand(req, Permission.jobsView);
    await blocking(req, reply);
    const out = [];
    for (const id of await store.jobIds()) {
      const v = (await store.versions(id)).at(-1);
      if (v) out.push({ ID: id, Name: v.Spec.Name, Type: 'service', Version: v.Version, Stable: v.Stable, Status: (await running(id)) ? 'running' : 'dead', ModifyIndex: v.ModifyIndex, CreateIndex: await store.jobCreateIndex(id) });
    }
    return out;
  });

  async function running(jobId: string): Promise<boolean> {
    for (const id of await store.deploymentIds(jobId)) if (!TERMINAL_DEPLOYMENT.includes((await store.deployment(id))?.Status ?? 'failed')) return true;
    return false;
  }

  async function versionsOr404(id: string) {
    const versions = await store.versions(id);
    if (versions.length === 0) throw new BatonError(NomadErrorCode.notFound, 'job not found');
    return versions;
  }

  app.get('/job/:id', async (req, reply) => {
    demand(req, Permission.jobsView);
    await blocking(req, reply);
    const { id } = req.params as { id: string };
    const versions = await versionsOr404(id);
    return jobJson(versions.at(-1)!, await store.jobCreateIndex(id), await running(id));
  });

  app.get('/job/:id/versions', async (req, reply) => {
    demand(req, Permission.jobsView);
    await blocking(req, reply);
    const { id } = req.params as { id: string };
    const versions = await versionsOr404(id);
    return { Versions: [...versions].reverse().map((v) => ({ ...specJson(v.Spec), Version: v.Version, Stable: v.Stable, SubmitTime: v.SubmitTime, JobModifyIndex: v.ModifyIndex })), Diffs: null };
  });

  app.get('/job/:id/deployments', async (req, reply) => {
    demand(req, Permission.jobsView);
    await blocking(req, reply);
    const { id } = req.params as { id: string };
    await versionsOr404(id);
    const out = [];
    for (const did of (await store.deploymentIds(id)).reverse()) {
      const d = await store.deployment(did);
      if (d) out.push(deploymentJson(d));
    }
    return out;
  });

  app.get('/job/:id/deployment', async (req, reply) => {
    demand(req, Permission.jobsView);
    await blocking(req, reply);
    const { id } = req.params as { id: string };
    await versionsOr404(id);
    const latest = (await store.deploymentIds(id)).at(-1);
    const d = latest ? await store.deployment(latest) : null;
    return d ? deploymentJson(d) : null;
  });

  app.get('/deployments', async (req, reply) => {
    demand(req, Permission.jobsView);
    const prefix = (req.query as { prefix?: string }).prefix ?? '';
    if (!isValidPrefix(prefix)) throw badRequest(`prefix '${prefix}' must have an even number of hexadecimal characters (0-9a-f)`);
    await blocking(req, reply);
    const out = [];
    for (const id of (await store.deploymentIds()).reverse()) {
      if (!id.startsWith(prefix)) continue;
      const d = await store.deployment(id);
      if (d) out.push(deploymentJson(d));
    }
    return out;
  });

  app.get('/deployment/:id', async (req, reply) => {
    demand(req, Permission.jobsView);
    const d = await deploymentOr404((req.params as { id: string }).id);
    await blocking(req, reply);
    return deploymentJson((await store.deployment(d.ID))!);
  });

  app.get('/deployment/allocations/:id', async (req, reply) => {
    demand(req, Permission.jobsView);
    const d = await deploymentOr404((req.params as { id: string }).id);
    await blocking(req, reply);
    return (await store.allocations(d.ID)).map(allocationJson);
  });

  const write = (path: string, fn: (id: string, body: Record<string, unknown>) => Promise<unknown>) =>
    app.post(`/deployment/${path}/:id`, async (req, reply) => {
      demand(req, Permission.jobsRun);
      const d = await deploymentOr404((req.params as { id: string }).id);
      const body = (req.body ?? {}) as Record<string, unknown>;
      if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('the body must be a JSON object');
      if (body.DeploymentID !== undefined && body.DeploymentID !== d.ID) throw badRequest('DeploymentID in the body does not match the one in the path');
      const res = (await fn(d.ID, body)) as { Index: number };
      reply.header('x-nomad-index', String(res.Index));
      return res;
    });
  write('fail', (id) => controller.fail(id));
  write('pause', (id, b) => {
    if (b.Pause !== undefined && typeof b.Pause !== 'boolean') throw badRequest('Pause must be a boolean');
    return controller.pause(id, b.Pause === true);
  });
  write('promote', (id, b) => {
    const groups = b.Groups ?? [];
    if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) throw badRequest('Groups must be a list of task group names');
    return controller.promote(id, b.All === true, groups as string[]);
  });
  write('allocation-health', (id, b) => {
    const list = (k: string) => {
      const v = b[k] ?? [];
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw badRequest(`${k} must be a list of allocation IDs`);
      return v as string[];
    };
    const healthy = list('HealthyAllocationIDs');
    const unhealthy = list('UnhealthyAllocationIDs');
    if (healthy.length + unhealthy.length === 0) throw badRequest('must specify at least one healthy or unhealthy allocation ID');
    return controller.setHealth(id, healthy, unhealthy);
  });
}
