// `baton deployment list|status|promote|pause|resume|fail`: Nomad-style deployments (/v1/...),
// with a live view of a running deployment built on Nomad's blocking queries (?index=N&wait=30s).
import type { Command } from 'commander';
import { action } from '../action.ts';
import { collect } from '../args.ts';
import { addApiOptions, apiClient, DEFAULT_REQUEST_TIMEOUT_MS, type ApiClient, type ApiOptions } from '../client.ts';
import { ApiError, ExitCode, usageError } from '../errors.ts';
import { bold, green, isTty, out, printJson, red, table, yellow } from '../format.ts';
import { POLL_INTERVAL_MS } from '../follow.ts';

/** How long one blocking query may wait for a change. */
export const BLOCKING_WAIT = '30s';
/**
 * A blocking query's own request timeout: its wait, the up to wait/16 that Nomad adds at random,
 * and the ordinary request timeout for the answer itself.
 */
export const BLOCKING_REQUEST_TIMEOUT_MS = 30_000 + 30_000 / 16 + DEFAULT_REQUEST_TIMEOUT_MS;
export const LIVE_DEPLOYMENT_STATES: readonly string[] = ['running', 'paused'];
const UUID_LENGTH = 36;
/** A blocking query answered faster than this without a change did not block. */
const MIN_BLOCKING_MS = 1000;

export interface GroupState {
  Promoted?: boolean;
  DesiredCanaries?: number;
  DesiredTotal?: number;
  PlacedCanaries?: string[] | null;
  PlacedAllocs?: number;
  HealthyAllocs?: number;
  UnhealthyAllocs?: number;
}

export interface Deployment {
  ID: string;
  JobID: string;
  JobVersion: number;
  Status: string;
  StatusDescription: string;
  TaskGroups: Record<string, GroupState>;
  ModifyIndex?: number;
}

/** Rows of the task group table: Desired, Placed, Healthy, Unhealthy, Canaries. */
export function groupRows(d: Deployment): string[][] {
  return Object.entries(d.TaskGroups ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, g]) => {
      const canaries = g.DesiredCanaries ? `${g.PlacedCanaries?.length ?? 0}/${g.DesiredCanaries}${g.Promoted ? ' promoted' : ''}` : '-';
      return [name, String(g.DesiredTotal ?? 0), String(g.PlacedAllocs ?? 0), String(g.HealthyAllocs ?? 0), String(g.UnhealthyAllocs ?? 0), canaries];
    });
}

function colourStatus(s: string): string {
  return s === 'successful' ? green(s) : s === 'failed' || s === 'cancelled' ? red(s) : yellow(s);
}

export function renderDeployment(d: Deployment): string {
  return [
    `${bold(`Deployment ${d.ID}`)}  job ${d.JobID} v${d.JobVersion}  ${colourStatus(d.Status)}`,
    d.StatusDescription ? d.StatusDescription : '',
    table(['task group', 'desired', 'placed', 'healthy', 'unhealthy', 'canaries'], groupRows(d)),
  ].filter(Boolean).join('\n');
}

/** A deployment's full ID: a short prefix is looked up in GET /v1/deployments?prefix=. */
async function fullId(client: ApiClient, id: string): Promise<string> {
  if (id.length >= UUID_LENGTH) return id;
  if (!/^[0-9a-f-]+$/i.test(id)) throw usageError(`'${id}' is not a deployment ID (a UUID or its first characters)`);
  const list = (await client.get(`/v1/deployments?prefix=${encodeURIComponent(id)}`)) as Deployment[];
  const matches = list.filter((d) => d.ID.startsWith(id));
  if (matches.length === 0) throw new ApiError(`no deployment ID starts with ${id}`, 404, undefined);
  if (matches.length > 1) throw usageError(`${id} is the start of ${matches.length} deployment IDs: ${matches.map((d) => d.ID.slice(0, 8)).join(', ')}; give more of it`);
  return matches[0]!.ID;
}

async function getDeployment(client: ApiClient, id: string, index: number): Promise<{ d: Deployment; index: number }> {
  const path = `/v1/deployment/${encodeURIComponent(id)}${index > 0 ? `?index=${index}&wait=${BLOCKING_WAIT}` : ''}`;
  const res = await client.send('GET', path, index > 0 ? { timeoutMs: BLOCKING_REQUEST_TIMEOUT_MS } : {});
  const d = JSON.parse(res.body.toString('utf8')) as Deployment;
  const header = Number(res.headers['x-nomad-index']);
  return { d, index: Number.isFinite(header) && header > 0 ? header : (d.ModifyIndex ?? index) };
}

/** Shows a deployment, and while it runs follows it: redrawn in place on a terminal, a line per change otherwise. */
async function watchDeployment(client: ApiClient, id: string, watch: boolean): Promise<ExitCode> {
  const tty = isTty();
  process.once('SIGINT', () => {
    process.stdout.write(`\nDetached from deployment ${id.slice(0, 8)}; it goes on.\n`);
    process.exit(ExitCode.detached);
  });
  let { d, index } = await getDeployment(client, id, 0);
  let shown = renderDeployment(d);
  out(shown);
  let lastRows = new Map(groupRows(d).map((r) => [r[0], r.join(' ')]));
  while (watch && LIVE_DEPLOYMENT_STATES.includes(d.Status)) {
    const asked = Date.now();
    const next = await getDeployment(client, id, index);
    if (next.index === index && next.d.Status === d.Status) {
      // The wait ran out with no change; a server that does not block gets polled instead.
      if (Date.now() - asked < MIN_BLOCKING_MS) await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
      continue;
    }
    const statusChanged = next.d.Status !== d.Status || next.d.StatusDescription !== d.StatusDescription;
    ({ d, index } = next);
    if (tty) {
      process.stdout.write(`\x1b[${shown.split('\n').length}A\x1b[0J`);
      shown = renderDeployment(d);
      out(shown);
    } else {
      for (const r of groupRows(d)) {
        if (lastRows.get(r[0]) === r.join(' ')) continue;
        out(`${r[0]}: desired ${r[1]}, placed ${r[2]}, healthy ${r[3]}, unhealthy ${r[4]}, canaries ${r[5]}`);
      }
      if (statusChanged) out(`status: ${d.Status}${d.StatusDescription ? ` (${d.StatusDescription})` : ''}`);
      lastRows = new Map(groupRows(d).map((r) => [r[0], r.join(' ')]));
    }
  }
  return d.Status === 'failed' || d.Status === 'cancelled' ? ExitCode.failure : ExitCode.ok;
}

export function registerDeployment(program: Command): void {
  const dep = program.command('deployment').description('Nomad-style deployments: list, watch, promote, pause, resume, fail');

  addApiOptions(dep.command('list').description('list deployments (GET /v1/deployments)')).action(
    action(async (o: ApiOptions) => {
      const list = (await apiClient(o).get('/v1/deployments')) as Deployment[];
      if (o.json) return printJson(list);
      if (list.length === 0) return out('No deployments.');
      out(table(['id', 'job', 'version', 'status', 'description'], list.map((d) => [d.ID.slice(0, 8), d.JobID, d.JobVersion, d.Status, d.StatusDescription])));
    }),
  );

  addApiOptions(
    dep
      .command('status')
      .description('show a deployment and follow it while it runs (GET /v1/deployment/:id, blocking queries)')
      .argument('<id>', 'deployment ID or its first characters')
      .option('--no-watch', 'show it once'),
  ).action(
    action(async (id: string, o: ApiOptions & { watch: boolean }) => {
      const client = apiClient(o);
      const full = await fullId(client, id);
      if (o.json) return printJson((await getDeployment(client, full, 0)).d);
      return watchDeployment(client, full, o.watch);
    }),
  );

  addApiOptions(
    dep
      .command('promote')
      .description('promote canaries: all task groups, or those named (POST /v1/deployment/promote/:id)')
      .argument('<id>', 'deployment ID or its first characters')
      .option('--group <name>', 'a task group to promote (repeatable; default all)', collect, []),
  ).action(
    action(async (id: string, o: ApiOptions & { group: string[] }) => {
      const client = apiClient(o);
      const full = await fullId(client, id);
      const res = await client.post(`/v1/deployment/promote/${full}`, { DeploymentID: full, ...(o.group.length > 0 ? { Groups: o.group } : { All: true }) });
      if (o.json) return printJson(res);
      out(`Promoted ${o.group.length > 0 ? `task group${o.group.length > 1 ? 's' : ''} ${o.group.join(', ')}` : 'all task groups'} of deployment ${full.slice(0, 8)}.`);
    }),
  );

  for (const [name, pause, verb] of [['pause', true, 'Paused'], ['resume', false, 'Resumed']] as const) {
    addApiOptions(dep.command(name).description(`${name} a deployment (POST /v1/deployment/pause/:id {Pause: ${pause}})`).argument('<id>', 'deployment ID or its first characters')).action(
      action(async (id: string, o: ApiOptions) => {
        const client = apiClient(o);
        const full = await fullId(client, id);
        const res = await client.post(`/v1/deployment/pause/${full}`, { DeploymentID: full, Pause: pause });
        if (o.json) return printJson(res);
        out(`${verb} deployment ${full.slice(0, 8)}.`);
      }),
    );
  }

  addApiOptions(dep.command('fail').description('mark a deployment as failed (POST /v1/deployment/fail/:id)').argument('<id>', 'deployment ID or its first characters')).action(
    action(async (id: string, o: ApiOptions) => {
      const client = apiClient(o);
      const full = await fullId(client, id);
      const res = (await client.post(`/v1/deployment/fail/${full}`, { DeploymentID: full })) as { RevertedJobVersion?: number } | null;
      if (o.json) return printJson(res);
      out(`Marked deployment ${full.slice(0, 8)} as failed${typeof res?.RevertedJobVersion === 'number' ? `; job reverted to version ${res.RevertedJobVersion}` : ''}.`);
    }),
  );
}
