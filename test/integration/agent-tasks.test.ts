// `task run` through a real broker: downloads from master-uris over HTTPS with the agent's
// certificate, SHA-256 verification, the task cache, input methods, implementations, output,
// timeouts, concurrency and at-most-once execution.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { isAlive } from '../../pxp-agent/process-runner.ts';
import { agentDirs, startAgentProcess, startController, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { FileServer, sha256 } from '../helpers/file-server.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { errorOf, newTransactionId, resultsOf, runTask, statusQuery } from '../helpers/tasks.ts';

const AGENT = 'pcp://node1/agent';
const ECHO_TASK = '#!/bin/sh\nprintf "stdin=%s\\n" "$(cat)"\nprintf "env=%s\\n" "$PT_message"\nprintf "task=%s\\n" "$PT__task"\n';

describe('agent: task run', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let files: FileServer;
  let agent: AgentProcess;
  let ctl: PcpClient;
  let scratch: string;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    files = await FileServer.start(pki);
    const dirs = agentDirs();
    scratch = dirs.root;
    agent = await startAgentProcess({
      pki,
      name: 'node1',
      brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`],
      masterUris: [files.url],
      dirs,
      config: { 'max-concurrent-actions': 2 },
    });
    ctl = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
  });
  after(async () => {
    await ctl?.stop();
    await agent?.stop();
    await files?.stop();
    await broker?.stop();
    pki?.remove();
  });

  const task = (name: string, body: string) => files.add(`/puppet/v3/file_content/tasks/sample/${name}`, name, body);

  it('downloads the file with the agent certificate, verifies it and runs it with input on stdin and in PT_ variables', async () => {
    const file = task('echo.sh', ECHO_TASK);
    const run = await runTask(ctl, AGENT, { task: 'sample::echo', input: { message: 'hello' }, files: [file] });
    assert.equal(run.provisional.message_type, 'http://puppetlabs.com/rpc_provisional_response');
    const results = resultsOf(await run.outcome);
    assert.equal(results.exitcode, 0);
    assert.match(results.stdout, /stdin=\{"message":"hello","_task":"sample::echo"\}/);
    assert.match(results.stdout, /env=hello/);
    assert.match(results.stdout, /task=sample::echo/);
    assert.equal(results.stderr, '');
    assert.deepEqual(files.requests.at(-1), { path: '/puppet/v3/file_content/tasks/sample/echo.sh?environment=production', cn: 'node1' });
    const status = await statusQuery(ctl, AGENT, run.transactionId);
    assert.equal(status.status, 'success');
    assert.equal(status.exitcode, 0);
    assert.equal(status.stdout, results.stdout);
  });

  it('honours input_method: environment only, stdin only', async () => {
    const file = task('echo.sh', ECHO_TASK);
    const env = resultsOf(await (await runTask(ctl, AGENT, { task: 'sample::echo', input: { message: 'm' }, files: [file], input_method: 'environment' })).outcome);
    assert.match(env.stdout, /stdin=\n/);
    assert.match(env.stdout, /env=m/);
    const stdin = resultsOf(await (await runTask(ctl, AGENT, { task: 'sample::echo', input: { message: 'm' }, files: [file], input_method: 'stdin' })).outcome);
    assert.match(stdin.stdout, /stdin=\{"message":"m"/);
    assert.match(stdin.stdout, /env=\n/);
  });

  it('runs from the cache without downloading again, and never runs a cached file that changed', async () => {
    const file = task('cached.sh', '#!/bin/sh\necho original\n');
    resultsOf(await (await runTask(ctl, AGENT, { task: 'sample::cached', input: {}, files: [file] })).outcome);
    const downloads = () => files.requests.filter((r) => r.path.startsWith('/puppet/v3/file_content/tasks/sample/cached.sh')).length;
    assert.equal(downloads(), 1);
    assert.equal(resultsOf(await (await runTask(ctl, AGENT, { task: 'sample::cached', input: {}, files: [file] })).outcome).stdout, 'original\n');
    assert.equal(downloads(), 1, 'a cache hit');
    // Someone changes the cached copy: the agent notices, throws it away and downloads it again.
    const cached = join(agent.dirs.cache, file.sha256, 'cached.sh');
    writeFileSync(cached, '#!/bin/sh\necho tampered\n');
    assert.equal(resultsOf(await (await runTask(ctl, AGENT, { task: 'sample::cached', input: {}, files: [file] })).outcome).stdout, 'original\n');
    assert.equal(downloads(), 2);
  });

  it('picks the implementation whose requirements the agent meets', async () => {
    const ps = task('multi.ps1', 'Write-Output "powershell"');
    const sh = task('multi.sh', '#!/bin/sh\necho shell\n');
    const results = resultsOf(await (await runTask(ctl, AGENT, {
      task: 'sample::multi',
      input: {},
      files: [ps, sh],
      metadata: { implementations: [{ name: 'multi.ps1', requirements: ['powershell'] }, { name: 'multi.sh', requirements: ['shell'] }] },
    })).outcome);
    assert.equal(results.stdout, 'shell\n');
  });

  it('reports a failing task with its exit code and stderr', async () => {
    const file = task('fail.sh', '#!/bin/sh\necho oops >&2\nexit 3\n');
    const run = await runTask(ctl, AGENT, { task: 'sample::fail', input: {}, files: [file] });
    assert.deepEqual(resultsOf(await run.outcome), { exitcode: 3, stdout: '', stderr: 'oops\n' });
    assert.equal((await statusQuery(ctl, AGENT, run.transactionId)).status, 'failure');
  });

  const refused: [string, () => object, RegExp][] = [
    ['a wrong SHA-256', () => ({ ...task('sum.sh', '#!/bin/sh\ntouch ran-sum\n'), sha256: sha256('something else') }), /has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; it was not run/],
    ['an unreachable download URL', () => ({ ...task('gone.sh', 'x'), uri: { path: '/no/such/file' } }), /cannot download 'gone.sh'.*HTTP 404/],
    ['a truncated download', () => files.add('/t/trunc.sh', 'trunc.sh', '#!/bin/sh\necho the whole file\n', 'truncate'), /truncated: got \d+ of \d+ bytes/],
    ['a download larger than declared', () => ({ ...task('big.sh', '#!/bin/sh\n' + '#'.repeat(1000)), size_bytes: 10 }), /larger than its declared 10 bytes/],
    ['path traversal in the file name', () => ({ ...task('trav.sh', 'x'), filename: '../../escape.sh' }), /must be a relative path inside the task/],
    ['a URL outside master-uris', () => ({ ...task('evil.sh', 'x'), uri: { path: '//evil.example.com/x.sh' } }), /downloads only come from master-uris/],
    ['an absolute URL to another host', () => ({ ...task('evil2.sh', 'x'), uri: { path: 'https://evil.example.com/x.sh' } }), /downloads only come from master-uris/],
  ];
  for (const [what, file, expected] of refused) {
    it(`refuses ${what} with rpc_error_message and runs nothing`, async () => {
      const run = await runTask(ctl, AGENT, { task: 'sample::bad', input: {}, files: [file()] });
      assert.match(errorOf(await run.outcome), expected);
      const status = await statusQuery(ctl, AGENT, run.transactionId);
      assert.equal(status.status, 'failure');
      assert.match(String(status.stderr), expected);
      assert.equal(existsSync(join(agent.dirs.spool, run.transactionId, 'ran-sum')), false);
    });
  }

  it('turns invalid UTF-8 into replacement characters and returns megabytes of output', async () => {
    const bad = task('bytes.sh', '#!/bin/sh\nprintf "a\\377\\376b"\nhead -c 5000000 /dev/zero | tr "\\0" x >&2\n');
    const results = resultsOf(await (await runTask(ctl, AGENT, { task: 'sample::bytes', input: {}, files: [bad] })).outcome);
    assert.equal(results.stdout, 'a\uFFFD\uFFFDb');
    assert.equal(results.stderr.length, 5_000_000);
  });

  it('kills the whole process group of a task that exceeds its timeout', async () => {
    const pids = join(scratch, 'pids');
    const file = task('hang.sh', `#!/bin/sh\nsleep 1000 &\necho "$$ $!" > ${pids}\nwhile true; do sleep 1; done\n`);
    const run = await runTask(ctl, AGENT, { task: 'sample::hang', input: {}, files: [file], timeout: 1 });
    const results = resultsOf(await run.outcome);
    assert.equal(results.exitcode, 124);
    assert.equal(results.timed_out, true);
    assert.match(results.stderr, /exceeded its timeout of 1 s; its process group was killed/);
    const status = await statusQuery(ctl, AGENT, run.transactionId);
    assert.equal(status.timed_out, true, 'status query says so too, for an orchestrator that missed the response');
    for (const pid of readFileSync(pids, 'utf8').trim().split(' ').map(Number)) assert.equal(isAlive(pid), false, `pid ${pid} is gone`);
  });

  it('refuses actions beyond max-concurrent-actions with a busy error', async () => {
    const gate = join(scratch, 'gate');
    const wait = task('wait.sh', `#!/bin/sh\nwhile [ ! -f ${gate} ]; do sleep 0.05; done\necho done\n`);
    const a = await runTask(ctl, AGENT, { task: 'sample::wait', input: {}, files: [wait] });
    const b = await runTask(ctl, AGENT, { task: 'sample::wait', input: {}, files: [wait] });
    try {
      // Both count from the moment they were accepted; the third is refused at once.
      const c = await runTask(ctl, AGENT, { task: 'sample::wait', input: {}, files: [wait] }, { allowRefusal: true });
      assert.match(errorOf(c.provisional), /the agent is busy: 2 actions are running \(max-concurrent-actions is 2\)/);
    } finally {
      writeFileSync(gate, '');
    }
    assert.equal(resultsOf(await a.outcome).stdout, 'done\n');
    assert.equal(resultsOf(await b.outcome).stdout, 'done\n');
  });

  it('never runs a repeated transaction id twice: it answers with the stored outcome', async () => {
    const marker = join(scratch, 'runs');
    const file = task('count.sh', `#!/bin/sh\necho run >> ${marker}\necho counted\n`);
    const transactionId = newTransactionId('dup');
    const first = resultsOf(await (await runTask(ctl, AGENT, { task: 'sample::count', input: {}, files: [file] }, { transactionId })).outcome);
    const again = await runTask(ctl, AGENT, { task: 'sample::count', input: {}, files: [file] }, { transactionId });
    assert.equal(again.provisional.message_type, 'http://puppetlabs.com/rpc_provisional_response');
    assert.deepEqual(resultsOf(await again.outcome), first);
    assert.equal(readFileSync(marker, 'utf8'), 'run\n');
    assert.equal(readdirSync(agent.dirs.spool).filter((d) => d === transactionId).length, 1);
  });
});

describe('agent: task files from several masters, and interpreters', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let files: FileServer;
  let ctl: PcpClient;
  const agents: AgentProcess[] = [];
  const DEAD_MASTER = 'https://127.0.0.1:1';

  before(async () => {
    pki = await makePki(['orchestrator', 'node2', 'node3']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    files = await FileServer.start(pki);
    ctl = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
  });
  after(async () => {
    await ctl?.stop();
    for (const a of agents) await a.stop();
    await files?.stop();
    await broker?.stop();
    pki?.remove();
  });

  async function agentWith(name: string, masterUris: string[], config: Record<string, unknown> = {}, dirs = agentDirs()) {
    const a = await startAgentProcess({ pki, name, brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], masterUris, dirs, config });
    agents.push(a);
    return a;
  }

  it('falls back to the next master when one is unreachable, and runs files through configured interpreters', async () => {
    const dirs = agentDirs();
    const modules = join(dirs.root, 'modules.d');
    mkdirSync(modules);
    writeFileSync(join(modules, 'task.conf'), JSON.stringify({ interpreters: { '.txt': '/bin/cat' } }));
    await agentWith('node2', [DEAD_MASTER, files.url], { 'modules-config-dir': modules }, dirs);
    const file = files.add('/tasks/show.txt', 'show.txt', 'printed by cat, not executed\n');
    const results = resultsOf(await (await runTask(ctl, 'pcp://node2/agent', { task: 'sample::show', input: {}, files: [file] })).outcome);
    assert.equal(results.stdout, 'printed by cat, not executed\n');
  });

  it('refuses to run when no master can be reached, naming each failure', async () => {
    await agentWith('node3', [DEAD_MASTER]);
    const file = files.add('/tasks/any.sh', 'any.sh', '#!/bin/sh\necho hi\n');
    const run = await runTask(ctl, 'pcp://node3/agent', { task: 'sample::any', input: {}, files: [file] });
    assert.match(errorOf(await run.outcome), /cannot download 'any\.sh': https:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});
