// `baton push run|show|output|nodes`: commands on nodes through the Chef Push Jobs face
// (/organizations/baton/pushy/...), followed through the job's Server-Sent Events feed.
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Command } from 'commander';
import { createParser } from 'eventsource-parser';
import { action } from '../action.ts';
import { collect, parseEnv, parseNodeList, parseQuorum, positiveInt } from '../args.ts';
import { addApiOptions, apiClient, apiErrorOf, PUSH_ORG, type ApiClient, type ApiOptions, type RequestOptions } from '../client.ts';
import { CliError, CliErrorCode, ExitCode, usageError } from '../errors.ts';
import { firstLine, out, plural, printJson, table } from '../format.ts';
import { POLL_INTERVAL_MS } from '../follow.ts';
import { detachedError, Interrupt } from '../interrupt.ts';
import { Reporter } from '../progress.ts';

export const PUSH_PREFIX = `/organizations/${PUSH_ORG}/pushy`;
/** Chef job states after which nothing changes. */
export const FINAL_PUSH_STATES: readonly string[] = ['complete', 'quorum_failed', 'timed_out', 'aborted', 'crashed'];

interface PushRunOptions extends ApiOptions {
  nodes: string;
  quorum?: string;
  timeout?: string;
  capture?: boolean;
  env: string[];
  file?: string;
  wait: boolean;
}

interface PushJob {
  id: string;
  command: string;
  status: string;
  nodes: Record<string, string[]>;
  capture_output?: boolean;
}

/** The body of POST /organizations/baton/pushy/jobs for `baton push run`'s arguments. */
export function pushBody(command: string, o: PushRunOptions): Record<string, unknown> {
  const nodes = parseNodeList('--nodes', o.nodes);
  const quorum = parseQuorum(o.quorum, nodes.length);
  let file: string | undefined;
  if (o.file !== undefined) {
    try {
      file = `base64:${readFileSync(o.file).toString('base64')}`;
    } catch (err) {
      throw usageError(`--file: cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const env = parseEnv(o.env);
  return {
    command,
    nodes,
    ...(quorum !== undefined ? { quorum } : {}),
    ...(o.timeout !== undefined ? { run_timeout: positiveInt('--timeout', o.timeout) } : {}),
    ...(o.capture ? { capture_output: true } : {}),
    ...(Object.keys(env).length > 0 ? { env } : {}),
    ...(file !== undefined ? { file } : {}),
  };
}

const VERB: Record<string, string> = { complete: 'completed', aborted: 'stopped', quorum_failed: 'failed (quorum not reached)', timed_out: 'timed out', crashed: 'failed' };

/** Reads a feed until it ends, calling `onEvent` for each event. */
async function readFeed(res: IncomingMessage, onEvent: (event: string, data: Record<string, unknown>) => Promise<void>): Promise<void> {
  let chain = Promise.resolve();
  const parser = createParser({
    onEvent: (m) => {
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(m.data) as Record<string, unknown>;
      } catch {
        // not JSON: the event's name is enough
      }
      chain = chain.then(() => onEvent(m.event ?? 'message', data));
    },
  });
  res.setEncoding('utf8');
  try {
    for await (const chunk of res) parser.feed(chunk as string);
  } catch {
    // closed early (job_complete, or a dropped connection)
  }
  await chain;
}

/** Chef node states after which a node did not succeed. */
export const FAILED_PUSH_NODE_STATES: readonly string[] = ['failed', 'crashed', 'nacked', 'unavailable', 'was_ready', 'aborted', 'timed_out'];

/**
 * 0 when every node completed; 1 when some node did not, or the job did not complete (4 when the
 * user stopped it). A job still running: 1 as soon as one of its nodes did not succeed, else 0.
 */
export function pushExitCode(job: Pick<PushJob, 'status' | 'nodes'>, stoppedByUser = false): ExitCode {
  if (job.status === 'aborted' && stoppedByUser) return ExitCode.detached;
  const states = Object.entries(job.nodes ?? {}).filter(([, names]) => names.length > 0).map(([state]) => state);
  if (states.some((s) => FAILED_PUSH_NODE_STATES.includes(s))) return ExitCode.failure;
  if (!FINAL_PUSH_STATES.includes(job.status)) return ExitCode.ok;
  return job.status === 'complete' && states.every((s) => s === 'complete') ? ExitCode.ok : ExitCode.failure;
}

async function followPush(client: ApiClient, id: string, body: Record<string, unknown>, json: boolean | undefined): Promise<ExitCode> {
  const nodes = body.nodes as string[];
  const capture = body.capture_output === true;
  const reporter = new Reporter(nodes.length, json ? 'json' : undefined);
  // Ctrl-C is caught before anything says that the job is followed.
  const interrupt = new Interrupt(`\nStop job ${id}? [y/N] `, `Detached from push job ${id}; it goes on. See it with: baton push show ${id}\n`, reporter);
  // Every request is cut short by a detach, and cancelled.
  const ask = <T>(work: (o: RequestOptions) => Promise<T>): Promise<T> => interrupt.race(work({ signal: interrupt.signal }));
  const feedPath = `${PUSH_PREFIX}/jobs_status_feed/${id}`;
  let res: IncomingMessage | undefined;
  try {
    reporter.start(`Started push job ${id}: '${String(body.command)}' on ${plural(nodes.length, 'node')}`);
    const feedRes = await ask((o) => client.open('GET', feedPath, { ...o, accept: 'text/event-stream' }));
    res = feedRes;
    if ((feedRes.statusCode ?? 0) >= 400) {
      const errorBody = await ask(async () => {
        const chunks: Buffer[] = [];
        for await (const c of feedRes) chunks.push(c as Buffer);
        return Buffer.concat(chunks);
      });
      throw apiErrorOf({ status: feedRes.statusCode ?? 0, headers: feedRes.headers, body: errorBody }, 'GET', feedPath);
    }
    const feed = readFeed(feedRes, async (event, data) => {
      const node = typeof data.node === 'string' ? data.node : '';
      if (event === 'quorum_vote' && data.status !== 'success') reporter.log(`${node}: did not commit (${String(data.status)}${data.message ? `: ${String(data.message)}` : ''})`);
      if (event === 'quorum_failed') reporter.log('Quorum not reached: nothing runs.');
      if (event === 'run_complete') {
        const status = String(data.status);
        let summary = typeof data.exit_code === 'number' ? `exit ${data.exit_code}` : '';
        if (capture) summary = [summary, await outputLine(client, id, node, interrupt.signal)].filter(Boolean).join('  ');
        reporter.node(node, status, status === 'success' ? 'ok' : 'failed', summary);
      }
      if (event === 'job_complete' || event === 'summary') feedRes.destroy();
    }).catch(() => undefined); // a dropped feed: the job's record below says how it ended
    let stopSent = false;
    for (;;) {
      const ended = await Promise.race([feed.then(() => true), interrupt.changed().then(() => false)]);
      if (ended) break;
      if (interrupt.state === 'detach') throw detachedError();
      if (interrupt.state === 'stop' && !stopSent) {
        stopSent = true;
        await ask((o) => client.post('/orchestrator/v1/command/stop', { job: id }, o));
        reporter.log(`Stopping job ${id}…`);
      }
    }
    let job = (await ask((o) => client.get(`${PUSH_PREFIX}/jobs/${id}`, o))) as PushJob;
    while (!FINAL_PUSH_STATES.includes(job.status)) {
      await interrupt.pause(POLL_INTERVAL_MS);
      job = (await ask((o) => client.get(`${PUSH_PREFIX}/jobs/${id}`, o))) as PushJob;
    }
    for (const [state, names] of Object.entries(job.nodes)) for (const n of names) reporter.node(n, state, state === 'complete' ? 'ok' : 'failed', '');
    const succeeded = job.nodes.complete?.length ?? 0;
    reporter.summary({ jobId: id, verb: VERB[job.status] ?? job.status, succeeded, total: nodes.length, durationMs: reporter.elapsedMs() });
    if (json) printJson(job);
    else if (capture) out(`Output: baton push output ${id} <node> [--stderr]`);
    return pushExitCode(job, stopSent);
  } catch (err) {
    if (!(err instanceof CliError && err.code === CliErrorCode.detached)) throw err;
    interrupt.printNotice();
    return ExitCode.detached;
  } finally {
    res?.destroy();
    reporter.stop(); // the cursor comes back, whatever happened
    interrupt.dispose();
  }
}

async function outputLine(client: ApiClient, id: string, node: string, signal: AbortSignal): Promise<string> {
  try {
    const res = await client.send('GET', `${PUSH_PREFIX}/jobs/${id}/output/${encodeURIComponent(node)}/stdout`, { accept: 'application/octet-stream', signal });
    return firstLine(res.body.toString('utf8'), 60);
  } catch {
    return '';
  }
}

export function registerPush(program: Command): void {
  const push = program.command('push').description('run whitelisted commands on nodes (Chef Push Jobs API)');

  addApiOptions(
    push
      .command('run')
      .description('run a command on nodes and follow it (POST /organizations/baton/pushy/jobs)')
      .argument('<command>', "the command, as the agents' command-whitelist knows it")
      .requiredOption('--nodes <names>', 'comma-separated node names, or @file with one per line')
      .option('--quorum <n>', 'nodes (N) or share of nodes (N%) that must commit before it runs (default all)')
      .option('--timeout <seconds>', 'run_timeout: the command is killed after this long (default 3600)')
      .option('--capture', 'keep stdout and stderr (baton push output)')
      .option('--env <name=value>', 'an environment variable for the command (repeatable)', collect, [])
      .option('--file <path>', 'a file for the command (CHEF_PUSH_JOB_FILE), at most 100 KB')
      .option('--no-wait', 'print the job id and return instead of following the job'),
  ).action(
    action(async (command: string, o: PushRunOptions) => {
      const body = pushBody(command, o);
      const client = apiClient(o);
      const res = (await client.post(`${PUSH_PREFIX}/jobs`, body)) as { id: string };
      if (!o.wait) {
        if (o.json) return printJson(res);
        return out(`Started push job ${res.id}. See it with: baton push show ${res.id}`);
      }
      return followPush(client, res.id, body, o.json);
    }),
  );

  addApiOptions(push.command('show').description('show a push job (GET .../pushy/jobs/:id)').argument('<id>', 'job id')).action(
    action(async (id: string, o: ApiOptions) => {
      const job = (await apiClient(o).get(`${PUSH_PREFIX}/jobs/${encodeURIComponent(id)}`)) as PushJob & Record<string, unknown>;
      if (o.json) {
        printJson(job);
        return pushExitCode(job);
      }
      out(`Push job ${job.id}: '${job.command}'  ${job.status}`);
      out(table(['node', 'state'], Object.entries(job.nodes).flatMap(([state, names]) => names.map((n) => [n, state]))));
      return pushExitCode(job);
    }),
  );

  addApiOptions(
    push
      .command('output')
      .description("print a node's captured output (GET .../pushy/jobs/:id/output/:node/stdout|stderr)")
      .argument('<id>', 'job id')
      .argument('<node>', 'node name')
      .option('--stderr', 'stderr instead of stdout'),
  ).action(
    action(async (id: string, node: string, o: ApiOptions & { stderr?: boolean }) => {
      const channel = o.stderr ? 'stderr' : 'stdout';
      const res = await apiClient(o).send('GET', `${PUSH_PREFIX}/jobs/${encodeURIComponent(id)}/output/${encodeURIComponent(node)}/${channel}`, { accept: 'application/octet-stream' });
      process.stdout.write(res.body);
    }),
  );

  addApiOptions(push.command('nodes').description('nodes and whether they are up and available (GET .../pushy/node_states)')).action(
    action(async (o: ApiOptions) => {
      const states = (await apiClient(o).get(`${PUSH_PREFIX}/node_states`)) as { node_name: string; status: string; availability: string; updated_at: string | null }[];
      if (o.json) return printJson(states);
      if (states.length === 0) return out('No nodes have connected.');
      out(table(['node', 'status', 'availability', 'updated'], states.map((s) => [s.node_name, s.status, s.availability, s.updated_at])));
    }),
  );
}
