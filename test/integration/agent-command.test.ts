// `command commit|run|output` (the node side of Chef Push Jobs) through a real broker and real
// agents: acks and nacks, busy, the whitelist with regex captures as positional parameters,
// env/dir/file/user, run_timeout, and live output.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import { isAlive } from '../../pxp-agent/process-runner.ts';
import { agentDirs, startAgentProcess, startController, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { errorOf, newTransactionId, resultsOf, type TaskResults } from '../helpers/tasks.ts';

const NODE1 = 'pcp://node1/agent';
const NODE2 = 'pcp://node2/agent';
const isRoot = process.getuid?.() === 0;
/** Pause between polls of a condition no event announces. */
const POLL_MS = 25;

const WHITELIST = {
  true: 'true',
  report:
    'printf "node=%s\\njob=%s\\nfile=%s\\nmode=%s\\ngreeting=%s\\ncwd=%s\\n" "$CHEF_PUSH_NODE_NAME" "$CHEF_PUSH_JOB_ID" "$(cat "$CHEF_PUSH_JOB_FILE")" "$(stat -c %a "$CHEF_PUSH_JOB_FILE")" "$GREETING" "$(pwd)"',
  '/^echo (.+)$/': 'printf "%s\\n" "$1"',
  whoami: 'id -un; pwd; if [ -n "$CHEF_PUSH_JOB_FILE" ]; then printf "%s\\n" "$CHEF_PUSH_JOB_FILE"; cat "$CHEF_PUSH_JOB_FILE"; fi',
  path: 'printf "%s\\n" "$PATH"',
  'bash $PUSHY_JOB_FILE': 'bash "$PUSHY_JOB_FILE"',
  gated: 'echo first; while [ ! -f "$GATE" ]; do sleep 0.05; done; echo second >&2; echo done',
  hang: 'sleep 1000 & echo $! > "$PIDFILE"; wait',
};

interface Ack {
  ack: boolean;
  reason?: string;
  code?: string;
}

interface Output {
  status: string;
  stdout: string;
  stdout_offset: number;
  stderr: string;
  stderr_offset: number;
}

describe('agent: command (Chef Push Jobs)', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let node1: AgentProcess;
  let node2: AgentProcess;
  let ctl: PcpClient;
  let scratch: string;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1', 'node2']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const brokerUris = [`wss://127.0.0.1:${broker.port}/pcp2/`];
    const dirs = agentDirs();
    scratch = mkdtempSync(join(dirs.root, 'scratch-'));
    node1 = await startAgentProcess({ pki, name: 'node1', brokerUris, dirs, config: { 'command-whitelist': WHITELIST } });
    node2 = await startAgentProcess({
      pki,
      name: 'node2',
      brokerUris,
      config: { 'command-whitelist': WHITELIST, 'allowed-overwritable-env-vars': ['PATH'], 'command-commit-ttl': 1 },
    });
    ctl = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
  });
  after(async () => {
    await ctl?.stop();
    await node1?.stop();
    await node2?.stop();
    await broker?.stop();
    pki?.remove();
  });

  async function blocking(target: string, action: string, params: object): Promise<unknown> {
    const res = await ctl.request(pxpRequest(target, { transaction_id: newTransactionId(`command-${action}`), module: 'command', action, params }, true));
    assert.equal(res.message_type, 'http://puppetlabs.com/rpc_blocking_response', JSON.stringify(res.data));
    return (res.data as { results: unknown }).results;
  }
  const commit = (params: object, target = NODE1) => blocking(target, 'commit', params) as Promise<Ack>;
  const output = (params: object, target = NODE1) => blocking(target, 'output', params) as Promise<Output>;

  /** Sends a non-blocking `command run`; the outcome is the results or an rpc error. */
  async function run(params: object, target = NODE1): Promise<{ transactionId: string; outcome: Promise<EnvelopeV2> }> {
    const transactionId = newTransactionId('command-run');
    const outcome = ctl.expectTransaction(transactionId, 30_000);
    const provisional = await ctl.request(pxpRequest(target, { transaction_id: transactionId, module: 'command', action: 'run', params, notify_outcome: true }, false));
    assert.equal(provisional.message_type, 'http://puppetlabs.com/rpc_provisional_response', JSON.stringify(provisional.data));
    return { transactionId, outcome };
  }
  const results = async (params: object, target = NODE1): Promise<TaskResults> => resultsOf(await (await run(params, target)).outcome);
  const started = (agent: AgentProcess, transactionId: string) => agent.waitForLog((l) => l.msg === 'action started' && l.transaction_id === transactionId);

  it('acks a whitelisted command, and a repeated commit of the same job', async () => {
    assert.deepEqual(await commit({ job_id: 'job-ack', command: 'true' }), { ack: true });
    assert.deepEqual(await commit({ job_id: 'job-ack', command: 'true' }), { ack: true });
    assert.deepEqual(await results({ job_id: 'job-ack', command: 'true' }), { exitcode: 0, stdout: '', stderr: '' });
  });

  const nacks: [string, object, string, RegExp][] = [
    ['a command outside the whitelist', { command: 'rm -rf /' }, 'not_whitelisted', /'rm -rf \/' is not in this node's command-whitelist/],
    ['a command that only starts like a whitelisted one', { command: 'true; reboot' }, 'not_whitelisted', /not in this node's command-whitelist/],
    ['a missing dir', { command: 'true', dir: '/no/such/dir' }, 'bad_dir', /'\/no\/such\/dir' is not an absolute path of a directory/],
    ['a dir that is a file', { command: 'true', dir: '/etc/passwd' }, 'bad_dir', /not an absolute path of a directory/],
    ['an unknown user', { command: 'true', user: 'no-such-user-here' }, 'bad_user', /no-such-user-here/],
    ['a file without raw: or base64:', { command: 'true', file: 'text:hello' }, 'bad_file', /must start with raw: or base64:/],
    ['a file with invalid base64', { command: 'true', file: 'base64:not base64!' }, 'bad_file', /not valid base64/],
    ['env setting CHEF_PUSH_JOB_ID', { command: 'true', env: { CHEF_PUSH_JOB_ID: 'forged' } }, 'bad_env', /CHEF_PUSH_JOB_ID is set by the agent/],
    ['env setting PATH (not listed as overwritable)', { command: 'true', env: { PATH: '/tmp' } }, 'bad_env', /PATH is protected/],
    ['env with an invalid name', { command: 'true', env: { 'A-B': 'x' } }, 'bad_env', /'A-B' is not a valid environment variable name/],
  ];
  for (const [what, params, code, reason] of nacks) {
    it(`nacks ${what} with code ${code}, and refuses to run it`, async () => {
      const res = await commit({ job_id: `job-${code}`, ...params });
      assert.equal(res.ack, false);
      assert.equal(res.code, code);
      assert.match(res.reason!, reason);
      const refused = await run({ job_id: `job-${code}`, ...params });
      assert.match(errorOf(await refused.outcome), reason);
      assert.equal(node1.logs.some((l) => l.msg === 'starting a command' && l.transaction_id === refused.transactionId), false);
    });
  }

  // A nack for another user from an agent not running as root needs an agent process that is not
  // root; the unit tests cover that rule (resolveRunUser), as this test run may be root.

  it('lets PATH through when allowed-overwritable-env-vars lists it, but never CHEF_PUSH_*', async () => {
    const params = { job_id: 'job-path', command: 'path', env: { PATH: '/opt/custom/bin:/usr/bin:/bin' } };
    assert.deepEqual(await commit(params, NODE2), { ack: true });
    assert.equal((await results(params, NODE2)).stdout, '/opt/custom/bin:/usr/bin:/bin\n');
    const res = await commit({ job_id: 'job-path2', command: 'path', env: { CHEF_PUSH_NODE_NAME: 'elsewhere' } }, NODE2);
    assert.equal(res.code, 'bad_env');
  });

  it('is busy for other jobs while committed, until the commitment lapses (command-commit-ttl)', async () => {
    assert.deepEqual(await commit({ job_id: 'job-x', command: 'true' }, NODE2), { ack: true });
    const startedMs = Date.now();
    const busy = await commit({ job_id: 'job-y', command: 'true' }, NODE2);
    assert.equal(busy.code, 'busy');
    assert.match(busy.reason!, /committed to job job-x/);
    // No event marks a lapse: poll, bounded.
    let acked = false;
    while (!acked && Date.now() - startedMs < 10_000) {
      await delay(POLL_MS);
      acked = (await commit({ job_id: 'job-y', command: 'true' }, NODE2)).ack;
    }
    assert.equal(acked, true);
    assert.ok(Date.now() - startedMs >= 900, 'not before the TTL of 1 s');
    await results({ job_id: 'job-y', command: 'true' }, NODE2);
  });

  it('is busy for another job while committed, and the run of the committed job releases it', async () => {
    assert.deepEqual(await commit({ job_id: 'job-a', command: 'true' }), { ack: true });
    const busy = await commit({ job_id: 'job-b', command: 'true' });
    assert.equal(busy.ack, false);
    assert.equal(busy.code, 'busy');
    const refused = await run({ job_id: 'job-b', command: 'true' });
    assert.match(errorOf(await refused.outcome), /committed to job job-a/);
    await results({ job_id: 'job-a', command: 'true' });
    assert.deepEqual(await commit({ job_id: 'job-b', command: 'true' }), { ack: true });
    await results({ job_id: 'job-b', command: 'true' });
  });

  it('is busy while a command runs, for commits and runs of any job', async () => {
    const gate = join(scratch, 'busy-gate');
    const a = await run({ job_id: 'job-run-a', command: 'gated', env: { GATE: gate } });
    await started(node1, a.transactionId);
    try {
      for (const job of ['job-run-b', 'job-run-a']) {
        const res = await commit({ job_id: job, command: 'true' });
        assert.equal(res.code, 'busy', job);
        assert.match(res.reason!, new RegExp(`running job job-run-a \\(transaction ${a.transactionId}\\)`));
      }
      const b = await run({ job_id: 'job-run-b', command: 'true' });
      assert.match(errorOf(await b.outcome), /running job job-run-a/);
    } finally {
      writeFileSync(gate, '');
    }
    assert.equal(resultsOf(await a.outcome).stdout, 'first\ndone\n');
    assert.deepEqual(await commit({ job_id: 'job-run-b', command: 'true' }), { ack: true });
    await results({ job_id: 'job-run-b', command: 'true' });
  });

  it('runs with the job env, dir and file, and CHEF_PUSH_NODE_NAME, CHEF_PUSH_JOB_ID, CHEF_PUSH_JOB_FILE', async () => {
    const dir = mkdtempSync(join(scratch, 'workdir-'));
    const file = `base64:${Buffer.from('line one\nline two').toString('base64')}`;
    const res = await results({ job_id: 'job-env', command: 'report', dir, file, env: { GREETING: 'hello world' } });
    assert.equal(res.exitcode, 0, res.stderr);
    assert.equal(res.stdout, `node=node1\njob=job-env\nfile=line one\nline two\nmode=600\ngreeting=hello world\ncwd=${dir}\n`);
    const raw = await results({ job_id: 'job-env-raw', command: 'report', dir, file: 'raw:plain $text' });
    assert.match(raw.stdout, /^file=plain \$text$/m);
  });

  it("runs the Push Jobs API's own example command, `bash $PUSHY_JOB_FILE`, with the job file as PUSHY_JOB_FILE too", async () => {
    const res = await results({ job_id: 'job-pushy', command: 'bash $PUSHY_JOB_FILE', file: 'raw:echo "from the job file: $CHEF_PUSH_JOB_ID"\n' });
    assert.equal(res.exitcode, 0, res.stderr);
    assert.equal(res.stdout, 'from the job file: job-pushy\n');
  });

  it('passes a regex capture as $1, so shell syntax in it is data and never runs', async () => {
    const marker = join(scratch, 'pwned');
    const command = `echo hi; touch ${marker} && $(touch ${marker}) | \`touch ${marker}\``;
    assert.deepEqual(await commit({ job_id: 'job-regex', command }), { ack: true });
    const res = await results({ job_id: 'job-regex', command });
    assert.equal(res.stdout, `hi; touch ${marker} && $(touch ${marker}) | \`touch ${marker}\`\n`);
    assert.equal(existsSync(marker), false);
  });

  it('runs as another user when the agent is root: id -un prints nobody, with a job file only nobody reads', { skip: !isRoot && 'needs an agent running as root' }, async () => {
    const res = await results({ job_id: 'job-nobody', command: 'whoami', user: 'nobody', file: 'raw:for nobody\n' });
    assert.equal(res.exitcode, 0, res.stderr);
    const [name, cwd, path, content] = res.stdout.split('\n');
    assert.equal(name, 'nobody');
    assert.equal(cwd, '/', 'nobody\'s home does not exist');
    assert.equal(content, 'for nobody');
    assert.equal(existsSync(path!), false, 'the job file is removed when the run ends');
    assert.equal((await results({ job_id: 'job-self', command: 'whoami' })).stdout.split('\n')[0], 'root');
  });

  it('kills the whole process group when run_timeout passes, and says timed_out', async () => {
    const pidfile = join(scratch, 'hang.pid');
    const res = await results({ job_id: 'job-hang', command: 'hang', run_timeout: 1, env: { PIDFILE: pidfile } });
    assert.equal(res.exitcode, 124);
    assert.equal(res.timed_out, true);
    assert.match(res.stderr, /exceeded its timeout of 1 s/);
    const child = Number(readFileSync(pidfile, 'utf8').trim());
    assert.ok(child > 0);
    assert.equal(isAlive(child), false, 'the child sleep is gone too');
  });

  it('gives live output by byte offsets while the command runs, and the rest after it ended', async () => {
    const gate = join(scratch, 'output-gate');
    const a = await run({ job_id: 'job-output', command: 'gated', env: { GATE: gate } });
    const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
    // Nothing signals that the command has printed: poll, bounded.
    let first = await output({ transaction_id: a.transactionId });
    for (const deadline = Date.now() + 10_000; first.stdout_offset === 0 && Date.now() < deadline; ) {
      await delay(POLL_MS);
      first = await output({ transaction_id: a.transactionId });
    }
    assert.deepEqual({ ...first, stdout: decode(first.stdout) }, { status: 'running', stdout: 'first\n', stdout_offset: 6, stderr: '', stderr_offset: 0 });
    const capped = await output({ transaction_id: a.transactionId, max_bytes: 2 });
    assert.equal(decode(capped.stdout), 'fi');
    assert.equal(capped.stdout_offset, 2);
    const nothingNew = await output({ transaction_id: a.transactionId, stdout_offset: 6 });
    assert.deepEqual(nothingNew, { status: 'running', stdout: '', stdout_offset: 6, stderr: '', stderr_offset: 0 });
    writeFileSync(gate, '');
    assert.equal(resultsOf(await a.outcome).stdout, 'first\ndone\n');
    const rest = await output({ transaction_id: a.transactionId, stdout_offset: 6, stderr_offset: 0 });
    assert.equal(rest.status, 'success');
    assert.equal(decode(rest.stdout), 'done\n');
    assert.equal(rest.stdout_offset, 11);
    assert.equal(decode(rest.stderr), 'second\n');
    assert.equal(rest.stderr_offset, 7);
  });

  it('answers output of an unknown transaction with status unknown and empty chunks', async () => {
    assert.deepEqual(await output({ transaction_id: 'never-seen', stdout_offset: 3 }), {
      status: 'unknown',
      stdout: '',
      stdout_offset: 3,
      stderr: '',
      stderr_offset: 0,
    });
  });
});
