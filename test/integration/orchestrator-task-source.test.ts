// The Puppet server as the task source, as in Puppet Enterprise: with `task-source:
// {puppetserver}` the orchestrator reads task lists, metadata and file URIs from a real Puppet
// server's tasks API, and a Baton agent whose master-uris is that Puppet server downloads the task
// file from it. The orchestrator's own codedir holds no task at all, so that its file route can
// serve nothing. A stalled Puppet server is answered 503 within puppetserver-timeout, nothing created.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { http } from '../helpers/http.ts';
import { startOrchestratorProcess, stopStack, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { httpsJson, puppetserverAvailable, startPuppetserver, tlsClient, type TestPuppetserver } from '../helpers/puppetserver.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';

const STACK_START_TIMEOUT_MS = 300_000;
const PUPPETSERVER_TIMEOUT_MS = 2_000;

const HELLO_SCRIPT = '#!/bin/sh\necho "hello $PT_message from the Puppet server"\n';
const HELLO_METADATA = { description: 'Says hello', supports_noop: false, parameters: { message: { type: 'String[1]', description: 'who to greet' } } };
const INIT_SCRIPT = '#!/bin/sh\necho init\n';

function missing(): string | false {
  return skipUnlessInstalled(puppetserverAvailable() ? false : 'Debian packages not installed: puppetserver');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

interface FileEntry {
  filename: string;
  sha256: string;
  size_bytes: number;
  uri: { path: string; params: Record<string, string> };
}

describe('orchestrator with the Puppet server as its task source', { skip: missing() }, () => {
  let pki: TestPki;
  let serverCode: string;
  let orchCode: string;
  let server: TestPuppetserver | undefined;
  let redis: TestRedis | undefined;
  let broker: BrokerProcess | undefined;
  let orch: OrchestratorProcess | undefined;
  const agents: AgentProcess[] = [];

  before(async () => {
    pki = await makePki(['node1']);
    // The Puppet server's codedir: module pstask with an init task and pstask::hello.
    serverCode = mkdtempSync(join(tmpdir(), 'baton-ps-code-'));
    const tasks = join(serverCode, 'environments', 'production', 'modules', 'pstask', 'tasks');
    mkdirSync(tasks, { recursive: true });
    mkdirSync(join(serverCode, 'environments', 'production', 'manifests'), { recursive: true });
    for (const [file, text] of [['hello.sh', HELLO_SCRIPT], ['init.sh', INIT_SCRIPT]] as const) {
      writeFileSync(join(tasks, file), text);
      chmodSync(join(tasks, file), 0o755);
    }
    writeFileSync(join(tasks, 'hello.json'), JSON.stringify(HELLO_METADATA));
    // The orchestrator's own codedir: the environment, and no task.
    orchCode = mkdtempSync(join(tmpdir(), 'baton-orch-code-'));
    mkdirSync(join(orchCode, 'environments', 'production', 'modules'), { recursive: true });

    const started = await Promise.allSettled([
      startPuppetserver({ pki, codedir: serverCode }).then((s) => (server = s)),
      (async () => {
        redis = await startRedis();
        broker = await startBrokerProcess({ pki, logLevel: 'info' });
      })(),
    ]);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const brokerUri = `wss://127.0.0.1:${broker!.port}/pcp2/`;
    orch = await startOrchestratorProcess({
      pki,
      brokerUris: [brokerUri],
      redisUrl: redis!.url,
      codedir: orchCode,
      config: { 'task-source': { puppetserver: { url: server!.url } }, 'puppetserver-timeout': PUPPETSERVER_TIMEOUT_MS },
    });
    agents.push(await startAgentProcess({ pki, name: 'node1', brokerUris: [brokerUri], masterUris: [server!.url] }));
    await waitForConnected(orch, 1);
  }, { timeout: STACK_START_TIMEOUT_MS });

  after(async () => {
    await stopStack({ agents, orch, broker, redis });
    await server?.stop();
    pki?.remove();
    for (const d of [serverCode, orchCode]) if (d) rmSync(d, { recursive: true, force: true });
  }, { timeout: 120_000 });

  /** The Puppet server's own answer, asked as the orchestrator asks it (its certificate). */
  const fromServer = async (path: string) => {
    const res = await httpsJson(`${server!.url}${path}`, tlsClient(pki, 'orchestrator'));
    assert.equal(res.status, 200, res.text);
    return res.json as { metadata: unknown; files: FileEntry[] } & { name: string }[];
  };
  const jobCount = async () => (await orch!.api('/orchestrator/v1/jobs?limit=0')).json.items.length as number;

  it("lists the Puppet server's tasks", async () => {
    const res = await orch!.api('/orchestrator/v1/tasks?environment=production');
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const names = (res.json.items as { name: string; id: string }[]).map((i) => i.name);
    assert.deepEqual(names, ['pstask', 'pstask::hello']);
    assert.deepEqual(names, (await fromServer('/puppet/v3/tasks?environment=production')).map((t) => t.name).sort());
    assert.equal(res.json.items[1].id, orch!.url('/orchestrator/v1/tasks/pstask/hello'));
  });

  it("describes a task with the Puppet server's metadata and its file URIs", async () => {
    const res = await orch!.api('/orchestrator/v1/tasks/pstask/hello?environment=production');
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.name, 'pstask::hello');
    assert.deepEqual(res.json.metadata, HELLO_METADATA);
    assert.deepEqual(res.json.files, [
      { filename: 'hello.sh', uri: { path: '/puppet/v3/file_content/tasks/pstask/hello.sh', params: { environment: 'production' } }, sha256: sha256(HELLO_SCRIPT), size_bytes: HELLO_SCRIPT.length },
    ]);
    const own = await fromServer('/puppet/v3/tasks/pstask/hello?environment=production');
    assert.deepEqual(res.json.files.map((f: FileEntry) => f.uri), own.files.map((f) => f.uri));
    const init = await orch!.api('/orchestrator/v1/tasks/pstask/init?environment=production');
    assert.equal(init.status, 200, JSON.stringify(init.json));
    assert.equal(init.json.name, 'pstask');
    assert.deepEqual(init.json.files.map((f: FileEntry) => f.filename), ['init.sh']);
  });

  it('runs a task whose file the agent downloads from the Puppet server', async () => {
    const downloaded = agents[0]!.waitForLog((l) => l.msg === 'task file downloaded' && l.file === 'hello.sh');
    const res = await orch!.api('/orchestrator/v1/command/task', { body: { environment: 'production', task: 'pstask::hello', params: { message: 'node1' }, scope: { nodes: ['node1'] } } });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    await waitForJobEnd(orch!, res.json.job.name);
    const [n, ...rest] = (await orch!.api(`/orchestrator/v1/jobs/${res.json.job.name}/nodes`)).json.items as { name: string; state: string; result: unknown }[];
    assert.equal(rest.length, 0);
    assert.equal(n!.state, 'finished', JSON.stringify(n));
    assert.deepEqual(n!.result, { _output: 'hello node1 from the Puppet server\n' });
    const line = await downloaded;
    assert.equal(line.sha256, sha256(HELLO_SCRIPT));
    // The agent's only master is the Puppet server, and the orchestrator has no such file to serve.
    const own = await http(orch!.url('/puppet/v3/file_content/tasks/pstask/hello.sh?environment=production'), { ca: orch!.ca, cert: tlsClient(pki, 'node1').cert!, key: tlsClient(pki, 'node1').key! });
    assert.equal(own.status, 404);
  });

  it('answers an unknown task or environment with 404, and parameters the metadata refuses with 400', async () => {
    for (const task of ['pstask::nope', 'nomodule::hello', 'nomodule']) {
      const res = await orch!.api('/orchestrator/v1/command/task', { body: { environment: 'production', task, scope: { nodes: ['node1'] } } });
      assert.equal(res.status, 404, `${task}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.kind, 'puppetlabs.orchestrator/unknown-task');
    }
    const shown = await orch!.api('/orchestrator/v1/tasks/pstask/nope');
    assert.equal(shown.status, 404);
    assert.equal(shown.json.kind, 'puppetlabs.orchestrator/unknown-task');
    for (const path of ['/orchestrator/v1/tasks?environment=nowhere', '/orchestrator/v1/tasks/pstask/hello?environment=nowhere']) {
      const res = await orch!.api(path);
      assert.equal(res.status, 404, `${path}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.kind, 'puppetlabs.orchestrator/unknown-environment');
    }
    const bad = await orch!.api('/orchestrator/v1/command/task', { body: { environment: 'production', task: 'pstask::hello', params: { message: '' }, scope: { nodes: ['node1'] } } });
    assert.equal(bad.status, 400, JSON.stringify(bad.json));
    assert.equal(bad.json.kind, 'puppetlabs.orchestrator/validation-error');
  });

  it('answers 503 within puppetserver-timeout when the Puppet server stalls, and creates nothing', async () => {
    const before = await jobCount();
    const pid = server!.service.proc.pid!;
    process.kill(-pid, 'SIGSTOP');
    try {
      for (const call of [
        () => orch!.api('/orchestrator/v1/command/task', { body: { environment: 'production', task: 'pstask::hello', params: { message: 'x' }, scope: { nodes: ['node1'] } } }),
        () => orch!.api('/orchestrator/v1/tasks?environment=production'),
      ]) {
        const t0 = Date.now();
        const res = await call();
        const ms = Date.now() - t0;
        assert.equal(res.status, 503, JSON.stringify(res.json));
        assert.equal(res.json.kind, 'puppetlabs.orchestrator/service-unavailable');
        assert.deepEqual(res.json.details, { service: 'puppetserver', reason: 'timeout' });
        assert.ok(res.headers['retry-after'], 'a Retry-After header');
        assert.ok(ms >= PUPPETSERVER_TIMEOUT_MS - 100 && ms < PUPPETSERVER_TIMEOUT_MS + 3_000, `answered in ${ms} ms (puppetserver-timeout ${PUPPETSERVER_TIMEOUT_MS} ms)`);
      }
    } finally {
      process.kill(-pid, 'SIGCONT');
    }
    assert.equal(await jobCount(), before, 'no job was created');
    // The Puppet server back: tasks run again.
    const again = await orch!.api('/orchestrator/v1/command/task', { body: { environment: 'production', task: 'pstask::hello', params: { message: 'again' }, scope: { nodes: ['node1'] } } });
    assert.equal(again.status, 202, JSON.stringify(again.json));
    await waitForJobEnd(orch!, again.json.job.name);
  });
});

// The same client against a fake Puppet server that answers what the test says: answers that are
// not what the tasks API answers are refused before anything uses them (no JVM needed).
