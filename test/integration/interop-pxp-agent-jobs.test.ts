// Puppet's real pxp-agent 1.15.23 (../shared/interop/pxp-agent) as a first-class node of Baton's
// orchestrator: one fleet through Baton's broker, with a Baton agent, a pxp-agent on its default
// PCP v1 and one on v2. Task jobs with parsed results, re-attachment by `status query` after an
// orchestrator SIGKILL, a forced stop of a run (pxp-agent has no stop action: the orchestrator
// stops it through pxp-agent's `command run`), a deploy through pxp-module-puppet, and echo and
// ping answered to a controller.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { PcpClient } from '../../protocol/client/pcp-client.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { fetchInsecure, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { identity } from '../helpers/pcp-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { pxpAgentSkip, pxpBrokerUri, startPxpAgent, type PxpAgentProcess } from '../helpers/pxp-agent.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { newTransactionId } from '../helpers/tasks.ts';

const skip = pxpAgentSkip();
const BATON = 'baton1';
const PXP1 = 'pxpv1';
const PXP2 = 'pxpv2';
const ALL = [BATON, PXP1, PXP2];
const PXP = [PXP1, PXP2];
const BROKER_SERVER = 'pcp://broker/server';
const POLL_MS = 20;
const POLL_LIMIT_MS = 20_000;

/** Polls `ok` (a file appearing, a process ending) every POLL_MS, up to POLL_LIMIT_MS. */
async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + POLL_LIMIT_MS;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Running, not a zombie (this machine's init may never reap). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

interface NodeItem {
  name: string;
  state: string;
  result: Record<string, any>;
  details: Record<string, any>;
  transaction_uuid?: string;
}

describe("Puppet's pxp-agent (PCP v1 and v2) in one fleet with Baton's agent, through Baton's broker and orchestrator", { skip }, () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;
  const orchestrators: OrchestratorProcess[] = [];
  const batonAgents: AgentProcess[] = [];
  const pxpAgents = new Map<string, PxpAgentProcess>();
  const controllers: PcpClient[] = [];
  let scratch: string;
  let codedir: string;
  let puppetArgv: string;
  let brokerUri: string;

  const startOrch = async (port?: number) => {
    const o = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, keyPrefix: `pxpjobs${process.pid}`, port, config: { 'node-run-lock-duration': 2000, 'node-reconnect-grace': 5 } });
    orchestrators.push(o);
    return o;
  };

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'baton-pxp-jobs-'));
    pki = await makePki([BATON, 'ctl']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'controller-cns': ['orchestrator', 'ctl'] } });
    brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    codedir = makeCodedir();
    // Records its pid, then sleeps: the forced stop must end exactly these processes.
    const tasks = join(codedir, 'environments', 'production', 'modules', 'sample', 'tasks');
    // These tasks never read stdin. pxp-agent 1.15.23's execution_wrapper writes the input to a
    // task's stdin when input_method allows it, and is itself killed by SIGPIPE (the run reports
    // exit code 13, no output) when the task has already exited; environment-only input avoids that.
    writeFileSync(join(tasks, 'json.json'), JSON.stringify({ input_method: 'environment', parameters: { name: { type: 'String' } } }));
    writeFileSync(join(tasks, 'fail.json'), JSON.stringify({ input_method: 'environment', parameters: {} }));
    writeFileSync(join(tasks, 'pid_sleep.sh'), '#!/bin/sh\necho $$ > "$PT_dir/$$"\nsleep 300\necho slept\n');
    chmodSync(join(tasks, 'pid_sleep.sh'), 0o755);
    writeFileSync(join(tasks, 'pid_sleep.json'), JSON.stringify({ input_method: 'environment', parameters: { dir: { type: 'String[1]' } } }));
    orch = await startOrch();
    const masterUris = [`https://127.0.0.1:${orch.port}`];

    // A puppet that runs the real one with private dirs and no Puppet server: every run fails.
    const puppetDir = join(scratch, 'puppet');
    mkdirSync(puppetDir);
    puppetArgv = join(scratch, 'puppet-argv');
    const puppetBin = join(scratch, 'puppet-wrapper');
    writeFileSync(puppetBin, [
      '#!/bin/sh',
      `printf '%s\\n' "$*" >> '${puppetArgv}'`,
      `d='${puppetDir}'`,
      `exec /usr/bin/puppet "$@" --confdir "$d/conf" --vardir "$d/var" --logdir "$d/log" --rundir "$d/run" --codedir "$d/code" --certname ${PXP1} --server 127.0.0.1 --serverport 1`,
      '',
    ].join('\n'));
    chmodSync(puppetBin, 0o755);

    batonAgents.push(await startAgentProcess({ pki, name: BATON, brokerUris: [brokerUri], masterUris }));
    const [a1, a2] = await Promise.all([
      // No pcp-version in its config: pxp-agent's default, PCP v1.
      startPxpAgent({ pki, name: PXP1, brokerUris: [pxpBrokerUri(broker.port, '1')], masterUris, puppetModule: { puppetBin } }),
      startPxpAgent({ pki, name: PXP2, brokerUris: [pxpBrokerUri(broker.port, '2')], pcpVersion: '2', masterUris }),
    ]);
    pxpAgents.set(PXP1, a1).set(PXP2, a2);
    await waitForConnected(orch, ALL.length);
  });

  after(async () => {
    for (const c of controllers) await c.stop();
    for (const a of batonAgents) await a.stop();
    for (const a of pxpAgents.values()) await a.stop();
    for (const o of orchestrators) await o.stop();
    await broker?.stop();
    await redis?.stop();
    pki?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  const submit = async (path: string, body: object): Promise<string> => {
    const res = await orch.api(`/orchestrator/v1/command/${path}`, { body });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    return res.json.job.name as string;
  };
  const nodesOf = async (id: string): Promise<Map<string, NodeItem>> =>
    new Map(((await orch.api(`/orchestrator/v1/jobs/${id}/nodes`)).json.items as NodeItem[]).map((n) => [n.name, n]));
  /** The transaction ids of a job's runs, from the orchestrator's log, once each has started. */
  const started = async (id: string, nodes: string[]): Promise<Map<string, string>> => {
    await orch.waitForCount((l) => l.msg === 'node run started' && l.job === id, nodes.length);
    return new Map(orch.logs.filter((l) => l.msg === 'node run started' && l.job === id).map((l) => [l.node as string, l.transaction_id as string]));
  };
  /** The run's process on a pxp-agent exists: its execution_wrapper's pid file is in the spool. */
  const runningOn = (node: string, txid: string) => until(`the run on ${node}`, () => existsSync(join(pxpAgents.get(node)!.dirs.spool, txid, 'pid')));

  it('runs a task job on every node, with the results parsed by the task rules', async () => {
    // The pxp-agent left at its default speaks PCP v1; the other v2, as does Baton's agent and the orchestrator.
    const status = JSON.parse(await fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services`)) as { 'broker-service': { status: { sessions_by_pcp_version: Record<string, number> } } };
    assert.deepEqual(status['broker-service'].status.sessions_by_pcp_version, { '1': 1, '2': 3 });
    const id = await submit('task', { task: 'sample::json', params: { name: 'world' }, scope: { nodes: ALL } });
    await waitForJobEnd(orch, id);
    const nodes = await nodesOf(id);
    assert.equal((await orch.api(`/orchestrator/v1/jobs/${id}`)).json.state, 'finished', JSON.stringify([...nodes.values()]));
    for (const name of ALL) {
      assert.equal(nodes.get(name)?.state, 'finished', JSON.stringify(nodes.get(name)));
      assert.deepEqual(nodes.get(name)!.result, { greeting: 'hello world', items: [] }, name);
    }
    const failing = await submit('task', { task: 'sample::fail', scope: { nodes: PXP } });
    await waitForJobEnd(orch, failing);
    for (const n of (await nodesOf(failing)).values()) {
      assert.equal(n.state, 'failed');
      assert.deepEqual(n.result._error, { kind: 'puppetlabs.tasks/task-error', msg: 'The task failed with exit code 3', details: { exit_code: 3 } });
      assert.equal(n.details.stderr, 'going down\n');
    }
  });

  it("stops a running task on a pxp-agent with force: its processes are gone and the node reads 'stopped by request'", async () => {
    const pids = join(scratch, 'pids');
    mkdirSync(pids);
    const id = await submit('task', { task: 'sample::pid_sleep', params: { dir: pids }, scope: { nodes: PXP } });
    const txids = await started(id, PXP);
    for (const node of PXP) await runningOn(node, txids.get(node)!);
    await until('both tasks recorded their pid', () => readdirSync(pids).length === PXP.length);
    const taskPids = readdirSync(pids).map(Number);
    assert.ok(taskPids.every(alive));

    assert.equal((await orch.api('/orchestrator/v1/command/stop', { body: { job: id, force: true } })).status, 202);
    const events = await waitForJobEnd(orch, id);
    assert.equal(events.at(-1)!.type, 'job_aborted');
    for (const pid of taskPids) assert.equal(alive(pid), false, `task process ${pid} is gone`);
    const stops = orch.logs.filter((l) => l.msg === 'stopped a running node run' && l.job === id).map((l) => l.node).sort();
    assert.deepEqual(stops, PXP);
    for (const n of (await nodesOf(id)).values()) {
      assert.equal(n.state, 'errored', JSON.stringify(n));
      assert.match(n.details.message, /stopped by request/);
    }
  });

  it('deploys through pxp-module-puppet on a pxp-agent with the flags that module takes, and reads its result by its rules', async () => {
    const id = await submit('deploy', { environment: 'production', scope: { nodes: [PXP1] } });
    await waitForJobEnd(orch, id);
    const node = (await nodesOf(id)).get(PXP1)!;
    assert.equal(node.state, 'errored', JSON.stringify(node));
    // No Puppet server: the run fails before it writes a report.
    assert.ok(['agent_exit_non_zero', 'no_last_run_report'].includes(node.result.error_type), JSON.stringify(node.result));
    // pxp-module-puppet asks `puppet agent --configprint ...` first, then runs `puppet agent`.
    const runs = readFileSync(puppetArgv, 'utf8').split('\n').filter((l) => l.startsWith('agent ') && !l.includes('--configprint'));
    assert.equal(runs.length, 1, readFileSync(puppetArgv, 'utf8'));
    const argv = runs[0]!.split(' ');
    for (const f of ['--onetime', '--no-daemonize', '--environment production', `--job-id ${id}`]) assert.ok(runs[0]!.includes(f), `${f} in ${runs[0]}`);
    assert.equal(argv[argv.indexOf('--job-id') + 1], id);
  });

  it('gets echo and ping answered by both pxp-agents through a controller; ping over v1 carries the broker hop', async () => {
    const ctl1 = new PcpClient({ brokerUris: [`wss://127.0.0.1:${broker.port}/pcp/`], clientType: 'controller', tls: identity(pki, 'ctl'), log: pino({ level: 'silent' }), pcpVersion: '1' });
    controllers.push(ctl1);
    ctl1.start();
    await ctl1.waitConnected(10_000);
    for (const node of PXP) {
      const tx = newTransactionId('echo');
      const echo = await ctl1.request(pxpRequest(`pcp://${node}/agent`, { transaction_id: tx, module: 'echo', action: 'echo', params: { argument: `hi ${node}` } }, true), 10_000);
      assert.deepEqual(echo.data, { transaction_id: tx, results: { outcome: `hi ${node}` } });
      const ptx = newTransactionId('ping');
      const ping = await ctl1.request(pxpRequest(`pcp://${node}/agent`, { transaction_id: ptx, module: 'ping', action: 'ping', params: {} }, true), 10_000);
      const hops = (ping.data as { results: { request_hops: { server: string; stage: string; time: string }[] } }).results.request_hops;
      if (node === PXP1) {
        assert.ok(hops.length >= 1, JSON.stringify(ping.data));
        for (const h of hops) assert.equal(h.server, BROKER_SERVER);
      } else {
        assert.deepEqual(hops, [], 'PCP v2 has no debug chunks');
      }
    }
  });

  it('re-attaches to pxp-agent runs by status query after an orchestrator SIGKILL, and finishes the job with their results', async () => {
    const gate = join(scratch, 'gate');
    const id = await submit('task', { task: 'sample::wait_for', params: { gate, word: 'after restart' }, scope: { nodes: PXP } });
    const txids = await started(id, PXP);
    for (const node of PXP) await runningOn(node, txids.get(node)!);
    const port = orch.port;
    await orch.stop('SIGKILL');
    writeFileSync(gate, '');
    // The runs end while no orchestrator listens: their responses are lost.
    for (const node of PXP) await until(`the run on ${node} ended`, () => existsSync(join(pxpAgents.get(node)!.dirs.spool, txids.get(node)!, 'exitcode')));
    orch = await startOrch(port); // the same port: agents download task files from it
    await waitForJobEnd(orch, id);
    assert.equal((await orch.api(`/orchestrator/v1/jobs/${id}`)).json.state, 'finished');
    for (const n of (await nodesOf(id)).values()) assert.deepEqual(n.result, { _output: 'after restart\n' }, n.name);
    const reattached = orch.logs.filter((l) => l.msg === 're-attaching to a node run' && l.job === id).map((l) => l.node).sort();
    assert.deepEqual(reattached, PXP);
  });
});
