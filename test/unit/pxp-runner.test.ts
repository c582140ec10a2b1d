// PxpRunner's forced stop (Baton's `status stop`, else pxp-agent's `command run` with the stop
// script), the stop script itself against pxp-agent's real execution_wrapper (skipped without
// ../shared/interop/pxp-agent), the agent's error codes in outcomes, the Chef node states they
// decide, and the Puppet run module's names.
// A scripted stand-in for the PCP client; the integration tests drive the real one.
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { nodeAction } from '../../orchestrator/engine/engine.ts';
import { chefOutcome } from '../../orchestrator/engine/results.ts';
import { PxpRunner, STOPPABLE_TRANSACTION_ID, STOPPED_BY_REQUEST, stopScript, stopScriptCounts } from '../../orchestrator/pcp/pxp-runner.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { PXP_AGENT_DIR } from '../helpers/pxp-agent.ts';
import { isPuppetRunModule, PUPPET_RUN_MODULE, PxpErrorCode, PxpMessageType, rpcError as rpcErrorOf } from '../../protocol/pxp.ts';

const execFileP = promisify(execFile);
/** The shape of Engine.transactionId: `<epoch>-<job>-<node hash>`. */
const TXID = '0a1b2c3d-42-0123456789abcdef';

type Answer = (req: EnvelopeV2) => EnvelopeV2 | Error;

/** A client whose replies to `request` are scripted in order; it records the requests. */
function fakeClient(answers: Answer[], transactions: EnvelopeV2[] = []) {
  const sent: EnvelopeV2[] = [];
  const client = {
    async request(env: EnvelopeV2) {
      sent.push(env);
      const a = answers.shift();
      if (!a) throw new Error('no scripted answer');
      const r = a(env);
      if (r instanceof Error) throw r;
      return r;
    },
    async expectTransaction() {
      const t = transactions.shift();
      if (!t) throw new Error('nothing scripted');
      return t;
    },
    on() {
      return client;
    },
  } as unknown as PcpClient;
  return { client, sent };
}

const data = (env: EnvelopeV2) => env.data as { transaction_id: string; module: string; action: string; params: Record<string, unknown> };
const blocking = (results: unknown): Answer => (req) => ({ id: 'r', message_type: PxpMessageType.blockingResponse, data: { transaction_id: data(req).transaction_id, results } });
const rpcError = (description: string): Answer => (req) => ({ id: 'r', message_type: PxpMessageType.errorMessage, data: { transaction_id: data(req).transaction_id, id: req.id, description } });

describe('PxpRunner.stop', () => {
  it("stops a run on Baton's agent with status stop, and nothing else", async () => {
    const { client, sent } = fakeClient([blocking({ transaction_id: TXID, stopped: true })]);
    assert.equal(await new PxpRunner(client).stop('n1', TXID), true);
    assert.equal(sent.length, 1);
    assert.deepEqual([data(sent[0]!).module, data(sent[0]!).action, data(sent[0]!).params], ['status', 'stop', { transaction_id: TXID }]);
    assert.equal(sent[0]!.target, 'pcp://n1/agent');
  });

  it("reports false when Baton's agent had nothing to stop", async () => {
    const { client, sent } = fakeClient([blocking({ transaction_id: TXID, stopped: false })]);
    assert.equal(await new PxpRunner(client).stop('n1', TXID), false);
    assert.equal(sent.length, 1);
  });

  it("falls back to pxp-agent's command run with the stop script when status stop is refused", async () => {
    const { client, sent } = fakeClient([rpcError("unknown action 'stop' for module 'status'"), blocking({ exitcode: 0, stdout: '{"stopped":2,"killed":0}\n' })]);
    assert.equal(await new PxpRunner(client).stop('n1', TXID), true);
    assert.equal(sent.length, 2);
    assert.equal(sent[1]!.message_type, PxpMessageType.blockingRequest);
    assert.deepEqual([data(sent[1]!).module, data(sent[1]!).action], ['command', 'run']);
    assert.equal(data(sent[1]!).params.command, stopScript(TXID));
    assert.match(data(sent[1]!).transaction_id, /^stop-/);
  });

  it('reports false when the stop script found nothing, failed or was refused', async () => {
    for (const second of [blocking({ exitcode: 0, stdout: '{"stopped":0,"killed":0}\n' }), blocking({ exitcode: 1, stdout: '', stderr: 'x' }), rpcError('unknown module: command'), () => new Error('timeout')]) {
      const failed: EnvelopeV2 = { id: 'x', message_type: PxpMessageType.nonBlockingResponse, data: { transaction_id: TXID, results: { exitcode: 1, stdout: '' } } };
      const { client } = fakeClient([rpcError('no stop'), second], [failed]);
      const runner = new PxpRunner(client);
      assert.equal(await runner.stop('n1', TXID), false);
      assert.deepEqual(await runner.outcome('n1', TXID, Date.now() + 1_000), { kind: 'results', results: { exitcode: 1, stdout: '' } }, 'not read as stopped');
    }
  });

  it('never sends the script for an id that is not one of the engine\'s', async () => {
    for (const bad of ["0a1b2c3d-42-0123456789abcdef'; kill -9 -1; '", 'status-abc', '0A1B2C3D-42-0123456789ABCDEF', '../0a1b2c3d-42-0123456789abcdef', `${TXID}\n`]) {
      const { client, sent } = fakeClient([rpcError('no stop')]);
      assert.equal(await new PxpRunner(client).stop('n1', bad), false, bad);
      assert.equal(sent.length, 1, bad);
      assert.throws(() => stopScript(bad), RangeError);
    }
  });

  it('reports false when the agent does not answer status stop', async () => {
    const { client, sent } = fakeClient([() => new Error('no reply')]);
    assert.equal(await new PxpRunner(client).stop('n1', TXID), false);
    assert.equal(sent.length, 1);
  });

  it('reads the outcome of a run it stopped by script as stopped by request; a run that exited 0 keeps its results', async () => {
    const killed: EnvelopeV2 = { id: 'x', message_type: PxpMessageType.nonBlockingResponse, data: { transaction_id: TXID, results: { exitcode: 143, stdout: '' } } };
    const { client } = fakeClient(
      [rpcError('no stop'), blocking({ exitcode: 0, stdout: '{"stopped":1,"killed":0}' }), blocking({ transaction_id: TXID, status: 'failure', exitcode: 143 })],
      [killed],
    );
    const runner = new PxpRunner(client);
    assert.equal(await runner.stop('n1', TXID), true);
    assert.deepEqual(await runner.outcome('n1', TXID, Date.now() + 1_000), { kind: 'agent-error', description: STOPPED_BY_REQUEST, code: PxpErrorCode.stopped });
    assert.deepEqual(await runner.status('n1', TXID), { kind: 'agent-error', description: STOPPED_BY_REQUEST, code: PxpErrorCode.stopped });

    const other = '0a1b2c3d-43-0123456789abcdef';
    const done: EnvelopeV2 = { id: 'y', message_type: PxpMessageType.nonBlockingResponse, data: { transaction_id: other, results: { exitcode: 0, stdout: 'ok' } } };
    const c2 = fakeClient([rpcError('no stop'), blocking({ exitcode: 0, stdout: '{"stopped":1,"killed":0}' })], [done]);
    const r2 = new PxpRunner(c2.client);
    assert.equal(await r2.stop('n1', other), true);
    assert.deepEqual(await r2.outcome('n1', other, Date.now() + 1_000), { kind: 'results', results: { exitcode: 0, stdout: 'ok' } });
  });
});

describe("the agent's error codes in run outcomes", () => {
  const req = { id: 'req-1', sender: 'pcp://orch/controller', transactionId: TXID };

  it('rpcError adds a code to the data only when given', () => {
    assert.deepEqual(rpcErrorOf(req, 'no').data, { transaction_id: TXID, id: 'req-1', description: 'no' });
    assert.deepEqual(rpcErrorOf(req, 'stopped', PxpErrorCode.stopped).data, { transaction_id: TXID, id: 'req-1', description: 'stopped', code: 'stopped' });
  });

  it('carries the code of an rpc_error_message, from the start reply and from the outcome; none without one', async () => {
    const coded = (code?: string): Answer => (r) => ({ ...rpcErrorOf({ id: r.id, sender: 'pcp://n1/agent', transactionId: data(r).transaction_id }, 'shut down', code), id: 'r' });
    const { client } = fakeClient([coded(PxpErrorCode.agentShutdown), coded()]);
    const runner = new PxpRunner(client);
    const action = { module: 'command', action: 'run', params: {} };
    assert.deepEqual(await runner.start('n1', TXID, action), { kind: 'agent-error', description: 'shut down', code: 'agent-shutdown' });
    assert.deepEqual(await runner.start('n1', TXID, action), { kind: 'agent-error', description: 'shut down' });

    const ended: EnvelopeV2 = { ...rpcErrorOf({ id: 'x', sender: 'pcp://n1/agent', transactionId: TXID }, 'stopped by request', PxpErrorCode.stopped), id: 'y' };
    const c2 = fakeClient([], [ended]);
    assert.deepEqual(await new PxpRunner(c2.client).outcome('n1', TXID, Date.now() + 1_000), { kind: 'agent-error', description: 'stopped by request', code: 'stopped' });
  });

  it('reads error_code from a status query answer of a failure without results', async () => {
    const { client } = fakeClient([
      blocking({ transaction_id: TXID, status: 'failure', stdout: '', stderr: 'the agent shut down\n', error_code: PxpErrorCode.agentShutdown }),
      blocking({ transaction_id: TXID, status: 'failure', stdout: '', stderr: 'could not start\n' }),
    ]);
    const runner = new PxpRunner(client);
    assert.deepEqual(await runner.status('n1', TXID), { kind: 'agent-error', description: 'the agent shut down', code: 'agent-shutdown' });
    assert.deepEqual(await runner.status('n1', TXID), { kind: 'agent-error', description: 'could not start' });
  });
});

describe('chefOutcome: Chef node states by code and job state, never by text', () => {
  const state = (o: Parameters<typeof chefOutcome>[0], stopping = false) => chefOutcome(o, stopping).details.chef_state;

  it('exit 0 is complete, a non-zero exit failed, a run_timeout kill timed_out, no exit code crashed', () => {
    assert.equal(state({ kind: 'results', results: { exitcode: 0 } }), 'complete');
    assert.equal(state({ kind: 'results', results: { exitcode: 3 } }), 'failed');
    assert.equal(chefOutcome({ kind: 'results', results: { exitcode: 3 } }).details.exit_code, 3);
    assert.equal(state({ kind: 'results', results: { exitcode: 124, timed_out: true } }), 'timed_out');
    assert.equal(state({ kind: 'results', results: { exitcode: null } }), 'crashed');
    assert.equal(state({ kind: 'timeout' }), 'timed_out');
  });

  it('stopped by request is aborted; the agent shutting down or losing the action is crashed; other agent errors failed', () => {
    assert.equal(state({ kind: 'agent-error', description: 'anything', code: PxpErrorCode.stopped }), 'aborted');
    assert.equal(state({ kind: 'agent-error', description: 'stopped by request', code: PxpErrorCode.agentShutdown }), 'crashed', 'the code decides, not the text');
    assert.equal(state({ kind: 'agent-error', description: 'x', code: PxpErrorCode.actionLost }), 'crashed');
    assert.equal(state({ kind: 'agent-error', description: 'the agent shut down while the action ran' }), 'failed', 'no code: failed, whatever the text says');
    assert.equal(state({ kind: 'crashed' }), 'crashed');
    assert.equal(state({ kind: 'not-connected' }), 'crashed');
  });

  it('while the job is stopping, a failure is aborted; success, timeouts and crashes keep their state', () => {
    assert.equal(state({ kind: 'results', results: { exitcode: 143 } }, true), 'aborted');
    assert.equal(state({ kind: 'agent-error', description: 'no code' }, true), 'aborted');
    assert.equal(state({ kind: 'results', results: { exitcode: 0 } }, true), 'complete');
    assert.equal(state({ kind: 'results', results: { exitcode: 124, timed_out: true } }, true), 'timed_out');
    assert.equal(state({ kind: 'agent-error', description: 'x', code: PxpErrorCode.agentShutdown }, true), 'crashed');
    assert.equal(state({ kind: 'crashed' }, true), 'crashed');
  });
});

describe('stopScriptCounts', () => {
  it('reads the counts of a successful run only', () => {
    assert.deepEqual(stopScriptCounts({ exitcode: 0, stdout: '{"stopped":3,"killed":1}\n' }), { stopped: 3, killed: 1 });
    assert.equal(stopScriptCounts({ exitcode: 2, stdout: '{"stopped":3,"killed":1}' }), null);
    assert.equal(stopScriptCounts({ exitcode: 0, stdout: 'stopped 3' }), null);
    assert.equal(stopScriptCounts({ exitcode: 0, stdout: '{"stopped":"3","killed":0}' }), null);
    assert.equal(stopScriptCounts(undefined), null);
  });
});

const WRAPPER = join(PXP_AGENT_DIR, 'bin', 'execution_wrapper');
const wrapperSkip = process.platform !== 'linux' ? 'needs /proc' : existsSync(WRAPPER) ? false : `pxp-agent's execution_wrapper is not at ${WRAPPER} (../shared/interop/pxp-agent): skipped`;

describe("the stop script, against pxp-agent's own execution_wrapper", { skip: wrapperSkip }, () => {
  const root = mkdtempSync(join(tmpdir(), 'baton-stop-script-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  /** Runs `script` as pxp-agent runs a non-blocking action: the wrapper writes `<root>/<txid>/{stdout,stderr,exitcode}`. */
  function wrapped(txid: string, script: string) {
    const dir = join(root, txid);
    mkdirSync(dir, { recursive: true });
    const child = spawn(WRAPPER, [], { stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, LD_LIBRARY_PATH: join(PXP_AGENT_DIR, 'lib') } });
    child.stdin!.end(JSON.stringify({ executable: '/bin/sh', arguments: ['-c', script], input: '', stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr'), exitcode: join(dir, 'exitcode') }));
    return { child, dir, exit: once(child, 'exit') };
  }
  /** The pids whose parent is `ppid`. */
  const childrenOf = (ppid: number) =>
    readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid;
      } catch {
        return false;
      }
    }).map(Number);
  /** Running, not a zombie (which this machine's init may never reap). */
  const alive = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };
  async function until(what: string, ok: () => boolean): Promise<void> {
    for (let i = 0; i < 250 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(ok(), what);
  }

  it("TERMs the action's processes (children too), KILLs those that ignore it, keeps the wrapper to record the exit, leaves other transactions alone", async () => {
    const other = '0a1b2c3d-99-fedcba9876543210';
    const plain = wrapped(TXID, 'echo started; sleep 300 & wait');
    const bystander = wrapped(other, 'sleep 300');
    const all = [plain, bystander];
    try {
      await until('the action and its child run', () => childrenOf(plain.child.pid!).some((c) => childrenOf(c).length === 1));
      await until('the bystander runs', () => childrenOf(bystander.child.pid!).length === 1);
      const [shell] = childrenOf(plain.child.pid!);
      const [sleeper] = childrenOf(shell!);
      const { stdout } = await execFileP('sh', ['-c', stopScript(TXID)]);
      assert.deepEqual(JSON.parse(stdout), { stopped: 2, killed: 0 });
      await plain.exit;
      assert.equal(alive(sleeper!), false, 'the grandchild is gone');
      assert.equal(readFileSync(join(plain.dir, 'exitcode'), 'utf8'), '15', 'the wrapper recorded the signal');
      assert.equal(readFileSync(join(plain.dir, 'stdout'), 'utf8'), 'started\n');
      assert.equal(bystander.child.exitCode, null, 'another transaction is untouched');

      const stubborn = wrapped(TXID, "trap '' TERM; sleep 300 & wait");
      all.push(stubborn);
      await until('the stubborn action runs', () => childrenOf(stubborn.child.pid!).some((c) => childrenOf(c).length === 1));
      const t0 = Date.now();
      const counts = JSON.parse((await execFileP('sh', ['-c', stopScript(TXID)])).stdout) as unknown;
      assert.deepEqual(counts, { stopped: 2, killed: 2 }, 'SIG_IGN is inherited: both need SIGKILL');
      assert.ok(Date.now() - t0 >= 1_500, 'after the grace');
      await stubborn.exit;
      assert.equal(readFileSync(join(stubborn.dir, 'exitcode'), 'utf8'), '9');
      assert.deepEqual(JSON.parse((await execFileP('sh', ['-c', stopScript(TXID)])).stdout), { stopped: 0, killed: 0 }, 'nothing left');
      assert.equal(bystander.child.exitCode, null);
    } finally {
      for (const w of all) {
        for (const c of childrenOf(w.child.pid!)) for (const g of [...childrenOf(c), c]) try { process.kill(g, 'SIGKILL'); } catch { /* gone */ }
      }
      await Promise.all(all.map((w) => w.exit));
    }
  });
});

describe('STOPPABLE_TRANSACTION_ID', () => {
  it('accepts exactly the ids Engine.transactionId makes, and the script holds the id once, single-quoted', () => {
    assert.match(TXID, STOPPABLE_TRANSACTION_ID);
    assert.doesNotMatch('0a1b2c3d-0123456789abcdef', STOPPABLE_TRANSACTION_ID);
    assert.ok(stopScript(TXID).startsWith(`t='${TXID}'\n`));
    assert.equal(stopScript(TXID).split(TXID).length, 2);
  });
});

describe('the Puppet run module name', () => {
  it('is pxp-module-puppet, and the old name puppet is still read as a Puppet run', () => {
    assert.equal(PUPPET_RUN_MODULE, 'pxp-module-puppet');
    assert.equal(isPuppetRunModule('pxp-module-puppet'), true);
    assert.equal(isPuppetRunModule('puppet'), true);
    assert.equal(isPuppetRunModule('task'), false);
  });

  it('gets the node flags and the job id under either name', () => {
    for (const module of ['pxp-module-puppet', 'puppet']) {
      const a = { module, action: 'run', params: { flags: ['--environment', 'production'], env: [] }, node_flags: { web2: ['--noop'] } };
      assert.deepEqual(nodeAction(a, 'web2', '9'), { module, action: 'run', params: { flags: ['--environment', 'production', '--noop'], env: [], job: '9' } });
    }
  });
});
