// Following jobs when the orchestrator misbehaves, against a stand-in orchestrator (real HTTPS):
// Ctrl-C detaches at once even while a request hangs, requests time out, the terminal's cursor
// comes back, and `show` commands exit by their nodes' states.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../cli/client.ts';
import { CliError, CliErrorCode, exitCodeFor, ExitCode } from '../../cli/errors.ts';
import { answerJson, hasScript, runCli, spawnCli, startStubApi, type RunningCli, type StubApi } from '../helpers/cli.ts';

/** Far below the 30 s request timeout: an exit this soon did not wait for a request to give up. */
const PROMPTLY_MS = 10_000;
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';

const job = (name: string, state: string, nodeStates: Record<string, number>, nodeCount = 2) => ({
  name,
  type: 'task',
  state,
  node_count: nodeCount,
  node_states: nodeStates,
  environment: { name: 'production' },
  options: { task: 'sample::echo', params: {} },
  duration: state === 'running' ? null : 1,
  owner: { login: 'admin' },
  created_timestamp: '2024-05-01T10:00:00Z',
});
const node = (name: string, state: string) => ({ name, state, duration: 0.5, result: { _output: `${state} on ${name}` }, details: {} });
const emptyPage = { items: [], 'next-events': { event: '1' } };

/** Its exit code, or a failure (and a killed process) if it has not exited within `ms`. */
async function exitWithin(cli: RunningCli, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      cli.proc.kill('SIGKILL');
      reject(new Error(`still running after ${ms} ms; stdout: ${JSON.stringify(cli.stdout)} stderr: ${JSON.stringify(cli.stderr)}`));
    }, ms);
  });
  try {
    return await Promise.race([cli.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function stub(answer: Parameters<typeof startStubApi>[0]): Promise<StubApi> {
  const api = await startStubApi(answer);
  after(() => api.close());
  return api;
}

function started(cli: RunningCli): RunningCli {
  after(() => {
    if (cli.proc.exitCode === null && cli.proc.signalCode === null) cli.proc.kill('SIGKILL');
  });
  return cli;
}

describe('following a job while the orchestrator does not answer', () => {
  it('Ctrl-C without a terminal detaches at once (exit 4) although the events request hangs', async () => {
    const api = await stub((r) => {
      if (r.path === '/orchestrator/v1/jobs/1') answerJson(r.res, job('1', 'running', { running: 2 }));
      // /jobs/1/events: never answered
    });
    const cli = started(spawnCli(['job', 'show', '1', '--watch', ...api.args]));
    await cli.printed(/Following job 1: task sample::echo on 2 nodes/);
    await api.received('GET', '/orchestrator/v1/jobs/1/events?start=1');
    cli.proc.kill('SIGINT');
    assert.equal(await exitWithin(cli, PROMPTLY_MS), ExitCode.detached);
    assert.match(cli.stderr, /Detached from job 1; it goes on\. Follow it again with: baton job show 1 --watch\n/);
  });

  it('Ctrl-C detaches at once from a push job whose feed does not answer, saying how to see it', async () => {
    const api = await stub((r) => {
      if (r.method === 'POST' && r.path === '/organizations/baton/pushy/jobs') answerJson(r.res, { id: '7', uri: 'x' }, 201);
      // the feed: never answered
    });
    const cli = started(spawnCli(['push', 'run', 'uptime', '--nodes', 'a,b', ...api.args]));
    await cli.printed(/Started push job 7: 'uptime' on 2 nodes/);
    await api.received('GET', '/organizations/baton/pushy/jobs_status_feed/7');
    cli.proc.kill('SIGINT');
    assert.equal(await exitWithin(cli, PROMPTLY_MS), ExitCode.detached);
    assert.match(cli.stderr, /Detached from push job 7; it goes on\. See it with: baton push show 7\n/);
  });

  it('SIGTERM detaches the same way', async () => {
    const api = await stub((r) => {
      if (r.path === '/orchestrator/v1/jobs/2') answerJson(r.res, job('2', 'running', { running: 2 }));
    });
    const cli = started(spawnCli(['job', 'show', '2', '--watch', ...api.args]));
    await api.received('GET', '/orchestrator/v1/jobs/2/events?start=1');
    cli.proc.kill('SIGTERM');
    assert.equal(await exitWithin(cli, PROMPTLY_MS), ExitCode.detached);
    assert.match(cli.stderr, /Detached from job 2/);
  });
});

describe('on a terminal', { skip: hasScript() ? false : 'util-linux script (a pseudo-terminal) is not installed' }, () => {
  it("'y' at the prompt stops the job; Ctrl-C while the stop request hangs detaches at once, and the cursor is shown again", async () => {
    const api = await stub((r) => {
      if (r.path === '/orchestrator/v1/jobs/3') answerJson(r.res, job('3', 'running', { running: 2 }));
      if (r.path.startsWith('/orchestrator/v1/jobs/3/events')) answerJson(r.res, emptyPage);
      // POST /orchestrator/v1/command/stop: never answered
    });
    const cli = started(spawnCli(['job', 'show', '3', '--watch', ...api.args], { terminal: true }));
    await cli.printed(/Following job 3/);
    await api.received('GET', /^\/orchestrator\/v1\/jobs\/3\/events/);
    cli.proc.stdin!.write('\x03'); // Ctrl-C
    await cli.printed(/Stop job 3\? \[y\/N\] /);
    cli.proc.stdin!.write('y\r');
    await api.received('POST', '/orchestrator/v1/command/stop');
    cli.proc.stdin!.write('\x03');
    assert.equal(await exitWithin(cli, PROMPTLY_MS), ExitCode.detached);
    assert.match(cli.stdout, /Detached from job 3; it goes on/);
    assert.ok(cli.stdout.includes(HIDE_CURSOR), 'the progress bar was drawn, without a cursor');
    assert.ok(cli.stdout.lastIndexOf(SHOW_CURSOR) > cli.stdout.lastIndexOf(HIDE_CURSOR), 'the cursor is shown at the end');
  });

  it('an API error while following exits 3 with the cursor shown again', async () => {
    const api = await stub((r) => {
      if (r.path === '/orchestrator/v1/jobs/4') answerJson(r.res, job('4', 'running', { running: 2 }));
      if (r.path.startsWith('/orchestrator/v1/jobs/4/events')) answerJson(r.res, { kind: 'puppetlabs.orchestrator/unknown-error', msg: 'boom' }, 500);
    });
    const cli = started(spawnCli(['job', 'show', '4', '--watch', ...api.args], { terminal: true }));
    assert.equal(await exitWithin(cli, PROMPTLY_MS), ExitCode.api);
    assert.match(cli.stdout, /HTTP 500: puppetlabs\.orchestrator\/unknown-error: boom/);
    assert.ok(cli.stdout.includes(HIDE_CURSOR), 'the progress bar was drawn, without a cursor');
    assert.ok(cli.stdout.lastIndexOf(SHOW_CURSOR) > cli.stdout.lastIndexOf(HIDE_CURSOR), 'the cursor is shown at the end');
  });
});

describe('request timeouts', () => {
  it('a request without an answer fails after the timeout as a connection error (exit 3)', async () => {
    const api = await stub(() => undefined);
    const client = new ApiClient(api.url, 't', readFileSync(api.ca), 300);
    await assert.rejects(client.get('/orchestrator/v1/jobs'), (err: unknown) => {
      assert.ok(err instanceof CliError && err.code === CliErrorCode.connection, String(err));
      assert.equal(exitCodeFor(err), ExitCode.api);
      assert.match(err.message, /did not answer GET \/orchestrator\/v1\/jobs within 0\.3 s/);
      return true;
    });
  });

  it('so does an answer whose body stops half-way', async () => {
    const api = await stub((r) => {
      r.res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      r.res.write('{"items": [');
    });
    const client = new ApiClient(api.url, 't', readFileSync(api.ca), 300);
    await assert.rejects(client.get('/orchestrator/v1/jobs'), (err: unknown) => err instanceof CliError && err.code === CliErrorCode.connection && /within 0\.3 s/.test(err.message));
  });

  it("a request's own timeout (a blocking query's) replaces the client's", async () => {
    const api = await stub(() => undefined);
    const client = new ApiClient(api.url, 't', readFileSync(api.ca), 60_000);
    await assert.rejects(client.get('/v1/deployment/x?index=5&wait=30s', { timeoutMs: 200 }), /within 0\.2 s/);
  });
});

describe('show commands exit by the states of the nodes', () => {
  let api: StubApi;
  const jobs: Record<string, ReturnType<typeof job>> = {
    '10': job('10', 'finished', { finished: 2 }),
    '11': job('11', 'finished', { finished: 1, failed: 1 }),
    '12': job('12', 'running', { running: 1, errored: 1 }),
    '13': job('13', 'running', { running: 1, finished: 1 }),
  };
  const nodesOf: Record<string, unknown[]> = {
    '10': [node('a', 'finished'), node('b', 'finished')],
    '11': [node('a', 'finished'), node('b', 'failed')],
    '12': [node('a', 'running'), node('b', 'errored')],
    '13': [node('a', 'running'), node('b', 'finished')],
  };
  const pushJobs: Record<string, unknown> = {
    '20': { id: '20', command: 'uptime', status: 'complete', nodes: { complete: ['a', 'b'] } },
    '21': { id: '21', command: 'uptime', status: 'complete', nodes: { complete: ['a'], crashed: ['b'] } },
    '22': { id: '22', command: 'uptime', status: 'complete', nodes: { complete: ['a'], failed: ['b'] } },
    '23': { id: '23', command: 'uptime', status: 'running', nodes: { running: ['a'], complete: ['b'] } },
  };

  before(async () => {
    api = await startStubApi((r) => {
      const m = /^\/orchestrator\/v1\/jobs\/([0-9]+)(\/nodes)?$/.exec(r.path);
      if (m) return answerJson(r.res, m[2] ? { items: nodesOf[m[1]!] } : jobs[m[1]!]);
      const p = /^\/organizations\/baton\/pushy\/jobs\/([0-9]+)$/.exec(r.path);
      if (p) return answerJson(r.res, pushJobs[p[1]!]);
      answerJson(r.res, { kind: 'not-found', msg: r.path }, 404);
    });
  });
  after(() => api?.close());

  const cases: [string[], number][] = [
    [['job', 'show', '10'], 0],
    [['job', 'show', '11'], 1],
    [['job', 'show', '11', '--json'], 1],
    [['job', 'show', '11', '--watch'], 1],
    [['job', 'show', '12'], 1],
    [['job', 'show', '13'], 0],
    [['push', 'show', '20'], 0],
    [['push', 'show', '21'], 1],
    [['push', 'show', '21', '--json'], 1],
    [['push', 'show', '22'], 1],
    [['push', 'show', '23'], 0],
  ];
  for (const [args, code] of cases) {
    it(`baton ${args.join(' ')} exits ${code}`, async () => {
      const res = await runCli([...args, ...api.args]);
      assert.equal(res.code, code, res.stderr);
    });
  }
});
