// Job kinds as plug-ins: each kind gives the action one node runs and the rules for its outcome;
// the engine finds a kind by the module of a job's action.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { standardKinds, type JobAction } from '../../orchestrator/engine/kinds/index.ts';
import { taskRunAction } from '../../orchestrator/engine/kinds/task.ts';
import { PxpErrorCode } from '../../protocol/pxp.ts';

const ctx = { node: 'web1', timeoutS: 60, jobStopping: false };

describe('job kinds', () => {
  const kinds = standardKinds();

  it('finds the kind of each module the agents run, and none for an unknown one', () => {
    for (const m of ['task', 'pxp-module-puppet', 'puppet', 'command']) assert.ok(kinds.of(m), m);
    assert.equal(kinds.of('pxp-module-nonesuch'), null);
    assert.equal(kinds.of('puppet'), kinds.of('pxp-module-puppet'));
  });

  it('builds one task run action for every face', () => {
    const files = [{ filename: 'init.sh', uri: { path: '/x', params: {} }, sha256: 'ab', size_bytes: 1 }];
    const a = taskRunAction({ name: 'mod::t', files, metadata: { description: 'd' } } as never, { x: 1 }, 30);
    assert.deepEqual(a, { module: 'task', action: 'run', params: { task: 'mod::t', input: { x: 1 }, files, metadata: { description: 'd' }, timeout: 30 } });
    assert.deepEqual(kinds.nodeAction(a, 'web1', '7'), a);
  });

  it('gives a Puppet run the job id and the node its own flags; a command the job id', () => {
    const p: JobAction = { module: 'pxp-module-puppet', action: 'run', params: { flags: ['--noop'], env: [] }, node_flags: { web2: ['--environment', 'dev'] } };
    assert.deepEqual(kinds.nodeAction(p, 'web2', '9').params, { flags: ['--noop', '--environment', 'dev'], env: [], job: '9' });
    assert.deepEqual(kinds.nodeAction(p, 'web1', '9').params, { flags: ['--noop'], env: [], job: '9' });
    const c: JobAction = { module: 'command', action: 'run', params: { command: 'chef-client' } };
    assert.deepEqual(kinds.nodeAction(c, 'web1', '3').params, { command: 'chef-client', job_id: '3' });
  });

  it('judges a task by its exit code, a Puppet run by its report', () => {
    const task = kinds.of('task')!;
    assert.equal(task.outcome({ kind: 'results', results: { exitcode: 0, stdout: '{"a":1}' } }, ctx).state, 'finished');
    assert.equal(task.outcome({ kind: 'results', results: { exitcode: 2, stdout: '' } }, ctx).state, 'failed');
    assert.equal(task.outcome({ kind: 'timeout' }, ctx).state, 'failed');
    assert.equal(task.outcome({ kind: 'not-connected' }, ctx).state, 'failed');
    const puppet = kinds.of('puppet')!;
    assert.equal(puppet.outcome({ kind: 'results', results: { exitcode: 0, stdout: '' } }, ctx).state, 'errored'); // no report: not a Puppet run's result
    assert.equal(puppet.crashesOnDisconnect || puppet.abortsWhenStopping || task.crashesOnDisconnect || task.abortsWhenStopping, false);
  });

  it('applies Chef rules to commands: a lost session crashed, a stop aborted, a shut-down agent crashed', () => {
    const cmd = kinds.of('command')!;
    assert.equal(cmd.crashesOnDisconnect, true);
    assert.equal(cmd.abortsWhenStopping, true);
    assert.equal(cmd.outcome({ kind: 'crashed' }, ctx).details.chef_state, 'crashed');
    assert.equal(cmd.outcome({ kind: 'results', results: { exitcode: 1 } }, { ...ctx, jobStopping: true }).details.chef_state, 'aborted');
    assert.equal(cmd.outcome({ kind: 'results', results: { exitcode: 1 } }, ctx).details.chef_state, 'failed');
    assert.equal(cmd.outcome({ kind: 'agent-error', description: 'x', code: PxpErrorCode.agentShutdown }, ctx).details.chef_state, 'crashed');
  });

  it('passes a command run\'s results to the face before the end is recorded, when the face asks', async () => {
    const kept: string[] = [];
    const withOutput = standardKinds({ keepOutput: async (job, node, r) => void kept.push(`${job}/${node}:${r.stdout}`) });
    assert.equal(kinds.of('command')!.onResults, undefined);
    await withOutput.of('command')!.onResults!('4', 'web1', { exitcode: 0, stdout: 'hi' });
    assert.deepEqual(kept, ['4/web1:hi']);
    assert.equal(withOutput.of('task')!.onResults, undefined);
  });
});
