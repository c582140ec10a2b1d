// Follows a Puppet-face job (task, deploy, or a push job seen through that face) until it ends:
// its events (GET /jobs/:id/events?start=N, polled every POLL_INTERVAL_MS), each ended node's
// result (GET /jobs/:id/nodes), a progress display, a summary and the exit code. Ctrl-C (see
// interrupt.ts) cuts any request short.
import type { ApiClient, RequestOptions } from './client.ts';
import { CliError, CliErrorCode, ExitCode } from './errors.ts';
import { deployResultLine, out, plural, printJson, taskResultLine } from './format.ts';
import { detachedError, Interrupt } from './interrupt.ts';
import { Reporter, type NodeOutcomeKind } from './progress.ts';

/** How often a followed job's events are asked for. */
export const POLL_INTERVAL_MS = 500;
export const NODE_END_EVENTS: readonly string[] = ['node_finished', 'node_failed', 'node_errored', 'node_skipped'];
export const JOB_END_EVENTS: readonly string[] = ['job_finished', 'job_aborted'];
export const ENDED_JOB_STATES: readonly string[] = ['finished', 'failed', 'stopped'];

export interface JobJson {
  name: string;
  type: string;
  state: string;
  node_count: number;
  node_states: Record<string, number>;
  environment: { name: string };
  options: Record<string, unknown> & { task?: string; params?: Record<string, unknown>; scope?: Record<string, unknown> };
  duration: number | null;
  owner: { login: string };
  created_timestamp: string | null;
  description?: string;
}

export interface NodeJson {
  name: string;
  state: string;
  duration: number | null;
  result: unknown;
  details: Record<string, unknown>;
}

interface EventJson {
  id: string;
  type: string;
  details: { node?: string; [k: string]: unknown };
}

const jobPath = (id: string) => `/orchestrator/v1/jobs/${encodeURIComponent(id)}`;

export function outcomeKind(state: string): NodeOutcomeKind {
  return state === 'finished' ? 'ok' : state === 'skipped' ? 'skipped' : 'failed';
}

/** A node's result in one line, by job type. */
export function resultLine(type: string, n: NodeJson): string {
  if (type === 'deploy') return deployResultLine(n.result, n.details);
  if (type === 'command') {
    const code = (n.result as { exitcode?: unknown } | null)?.exitcode;
    const message = typeof n.details.message === 'string' ? n.details.message : '';
    return [typeof code === 'number' ? `exit ${code}` : '', message].filter(Boolean).join(', ');
  }
  return taskResultLine(n.result, n.details);
}

export async function jobNodes(client: ApiClient, id: string, opts: RequestOptions = {}): Promise<NodeJson[]> {
  return ((await client.get(`${jobPath(id)}/nodes`, opts)) as { items: NodeJson[] }).items;
}

/** Node states after which a node did not succeed. */
export const FAILED_NODE_STATES: readonly string[] = ['failed', 'errored', 'skipped'];

/**
 * 0 when every node succeeded; 1 when some node failed, errored or was skipped, or the job failed
 * (or was stopped by someone else); 4 when the user stopped it. A job still running: 1 as soon as
 * one of its nodes did not succeed, else 0.
 */
export function jobExitCode(job: JobJson, stoppedByUser = false): ExitCode {
  if (job.state === 'stopped') return stoppedByUser ? ExitCode.detached : ExitCode.failure;
  if (FAILED_NODE_STATES.some((s) => (job.node_states[s] ?? 0) > 0)) return ExitCode.failure;
  if (!ENDED_JOB_STATES.includes(job.state)) return ExitCode.ok;
  const succeeded = job.node_states.finished ?? 0;
  return job.state === 'finished' && succeeded === job.node_count ? ExitCode.ok : ExitCode.failure;
}

export interface FollowOptions {
  json?: boolean;
  /** The first line printed (what was started or is followed). */
  headline: (job: JobJson) => string;
}

export type Ask = <T>(work: (o: RequestOptions) => Promise<T>) => Promise<T>;

/**
 * The polling loop of a followed job or plan job: its events page by page (`eventsPath(start)`,
 * PE's `next-events`), every POLL_INTERVAL_MS while nothing new comes, until an event of
 * `endTypes`; `stop` once after the user answered y, nothing while the prompt is up, and a
 * `cli/detached` error as soon as the user detaches.
 */
export async function pollEvents<E extends { type: string }>(o: {
  interrupt: Interrupt;
  ask: Ask;
  client: ApiClient;
  eventsPath: (start: number) => string;
  endTypes: readonly string[];
  stop: () => Promise<void>;
  page: (items: E[]) => Promise<void>;
}): Promise<{ stopSent: boolean }> {
  let start = 1;
  let stopSent = false;
  let ended = false;
  while (!ended) {
    if (o.interrupt.state === 'detach') throw detachedError();
    if (o.interrupt.state === 'prompting') {
      await o.interrupt.pause(POLL_INTERVAL_MS);
      continue;
    }
    if (o.interrupt.state === 'stop' && !stopSent) {
      stopSent = true;
      await o.stop();
    }
    const page = (await o.ask((r) => o.client.get(o.eventsPath(start), r))) as { items: E[]; 'next-events': { event: string } };
    start = Number(page['next-events'].event);
    ended = page.items.some((e) => o.endTypes.includes(e.type));
    await o.page(page.items);
    if (!ended && page.items.length === 0) await o.interrupt.pause(POLL_INTERVAL_MS);
  }
  return { stopSent };
}

export async function followJob(client: ApiClient, id: string, opts: FollowOptions): Promise<ExitCode> {
  let job = (await client.get(jobPath(id))) as JobJson;
  const reporter = new Reporter(job.node_count, opts.json ? 'json' : undefined);
  // Ctrl-C is caught before anything says that the job is followed.
  const interrupt = new Interrupt(`\nStop job ${id}? [y/N] `, `Detached from job ${id}; it goes on. Follow it again with: baton job show ${id} --watch\n`, reporter);
  // Every request is cut short by a detach, and cancelled.
  const ask: Ask = (work) => interrupt.race(work({ signal: interrupt.signal }));
  try {
    reporter.start(opts.headline(job));
    const { stopSent } = await pollEvents<EventJson>({
      interrupt, ask, eventsPath: (start) => `${jobPath(id)}/events?start=${start}`, client, endTypes: JOB_END_EVENTS,
      stop: async () => {
        await ask((o) => client.post('/orchestrator/v1/command/stop', { job: id }, o));
        reporter.log(`Stopping job ${id}…`);
      },
      page: async (items) => {
        const endedNodes = items.filter((e) => NODE_END_EVENTS.includes(e.type) && typeof e.details.node === 'string').map((e) => e.details.node!);
        if (endedNodes.length === 0) return;
        const byName = new Map((await ask((o) => jobNodes(client, id, o))).map((n) => [n.name, n]));
        for (const name of endedNodes) {
          const n = byName.get(name);
          if (n) reporter.node(name, n.state, outcomeKind(n.state), resultLine(job.type, n));
        }
      },
    });
    job = (await ask((o) => client.get(jobPath(id), o))) as JobJson;
    const nodes = opts.json ? await ask((o) => jobNodes(client, id, o)) : [];
    const succeeded = job.node_states.finished ?? 0;
    const verb = job.state === 'stopped' ? 'stopped' : job.state === 'failed' || succeeded < job.node_count ? 'failed' : 'completed';
    reporter.summary({ jobId: id, verb, succeeded, total: job.node_count, durationMs: job.duration !== null ? job.duration * 1000 : reporter.elapsedMs() });
    if (opts.json) printJson({ job, nodes });
    return jobExitCode(job, stopSent);
  } catch (err) {
    if (!(err instanceof CliError && err.code === CliErrorCode.detached)) throw err;
    interrupt.printNotice();
    return ExitCode.detached;
  } finally {
    reporter.stop(); // the cursor comes back, whatever happened
    interrupt.dispose();
  }
}

/** Prints "Started job N" and follows it, unless --no-wait. */
export async function startedJob(client: ApiClient, id: string, what: string, opts: { json?: boolean; wait: boolean }): Promise<ExitCode> {
  if (!opts.wait) {
    if (opts.json) printJson({ job: id });
    else out(`Started job ${id} (${what}). Follow it with: baton job show ${id} --watch`);
    return ExitCode.ok;
  }
  return followJob(client, id, { json: opts.json, headline: (job) => `Started job ${id}: ${what} on ${plural(job.node_count, 'node')}` });
}
