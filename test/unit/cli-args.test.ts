// Argument errors of the client commands: exit code 2 and a message that says what to do, before
// anything is sent (the URL points nowhere, so a request would exit 3 instead).
import { inventoryQuery } from '../../cli/commands/inventory.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseKeyValue, parseQuorum, scopeOf } from '../../cli/args.ts';
import { rerunRequest } from '../../cli/commands/job.ts';
import { REDACTED } from '../../protocol/rerun.ts';
import type { JobJson } from '../../cli/follow.ts';
import { runCli } from '../helpers/cli.ts';

const NOWHERE = ['--url', 'https://127.0.0.1:1', '--token', 'unused-token-0123456789'];

async function usage(args: string[]): Promise<string> {
  const res = await runCli([...args, ...NOWHERE]);
  assert.equal(res.code, 2, `exit code of baton ${args.join(' ')}: ${res.stderr}`);
  return res.stderr;
}

describe('baton argument errors exit 2 with a helpful message', () => {
  it('an unknown flag', async () => {
    assert.match(await usage(['task', 'run', 'sample::echo', '--nodes', 'a', '--colour']), /unknown option '--colour'/);
  });

  it('a parameter without =', async () => {
    assert.match(await usage(['task', 'run', 'sample::echo', 'message', '--nodes', 'a']), /bad parameter 'message': parameters are key=value/);
  });

  it('task run without nodes', async () => {
    assert.match(await usage(['task', 'run', 'sample::echo', 'message=hi']), /task run needs its nodes: give --nodes, --query or --node-group/);
  });

  it('two scopes at once', async () => {
    assert.match(await usage(['task', 'run', 'sample::echo', '--nodes', 'a', '--node-group', 'web']), /give one scope only; got --nodes and --node-group/);
    assert.match(await usage(['job', 'run', '--environment', 'production', '--query', 'nodes[certname] {}', '--application', 'App[x]']), /give one scope only; got --query and --application/);
  });

  it('a quorum that is neither N nor N%', async () => {
    assert.match(await usage(['push', 'run', 'uptime', '--nodes', 'a,b', '--quorum', 'most']), /--quorum must be a number of nodes \(N\) or a percentage \(N%\), got 'most'/);
    assert.match(await usage(['push', 'run', 'uptime', '--nodes', 'a,b', '--quorum', '3']), /--quorum 3 is more than the 2 node\(s\) given/);
  });

  it('a deploy without --environment, a bad job id and bad --params JSON', async () => {
    assert.match(await usage(['job', 'run', '--nodes', 'a']), /required option '--environment <name>' not specified/);
    assert.match(await usage(['job', 'show', 'latest']), /'latest' is not a job id/);
    assert.match(await usage(['task', 'run', 'sample::echo', '--params', '{nope', '--nodes', 'a']), /--params: not valid JSON/);
  });

  it('--help shows the exit codes and exits 0', async () => {
    const res = await runCli(['--help']);
    assert.equal(res.code, 0);
    assert.match(res.stdout, /Exit codes:\n {2}0 {2}success[^\n]*\n {2}1 [^\n]*\n {2}2 {2}usage[^\n]*\n {2}3 {2}API[^\n]*\n {2}4 {2}detached/);
  });

  it('an unreachable orchestrator is exit 3, naming the address', async () => {
    const res = await runCli(['inventory', ...NOWHERE]);
    assert.equal(res.code, 3);
    assert.match(res.stderr, /cannot reach the orchestrator at https:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
  });
});

describe('argument parsing', () => {
  it('k=v values are JSON when they parse as JSON, text otherwise', () => {
    assert.deepEqual(parseKeyValue('count=3'), ['count', 3]);
    assert.deepEqual(parseKeyValue('flag=true'), ['flag', true]);
    assert.deepEqual(parseKeyValue('o={"a":[1]}'), ['o', { a: [1] }]);
    assert.deepEqual(parseKeyValue('message=hello world'), ['message', 'hello world']);
    assert.deepEqual(parseKeyValue('eq=a=b'), ['eq', 'a=b']);
  });

  it('a percentage quorum rounds up', () => {
    assert.equal(parseQuorum('50%', 3), 2);
    assert.equal(parseQuorum('100%', 3), 3);
    assert.equal(parseQuorum(undefined, 3), undefined);
  });

  it('scopes: node lists, PQL text, a JSON AST, none', () => {
    assert.deepEqual(scopeOf({ nodes: 'a, b,a' }), { nodes: ['a', 'b'] });
    assert.deepEqual(scopeOf({ query: 'nodes[certname] { certname ~ "web" }' }), { query: 'nodes[certname] { certname ~ "web" }' });
    assert.deepEqual(scopeOf({ query: '["from", "nodes"]' }), { query: ['from', 'nodes'] });
    assert.equal(scopeOf({}), null);
  });

  it('an inventory query may be just its condition', () => {
    assert.equal(inventoryQuery('certname ~ "web"'), 'nodes { certname ~ "web" }');
    assert.equal(inventoryQuery('nodes[certname] { certname ~ "web" }'), 'nodes[certname] { certname ~ "web" }');
    assert.equal(inventoryQuery('["from", "nodes"]'), '["from", "nodes"]');
  });

  it('a rerun sends the same task, parameters and options, on the failed nodes', () => {
    const job = { name: '7', type: 'task', environment: { name: 'staging' }, options: { task: 'sample::echo', params: { message: 'hi' }, noop: true, concurrency: 2, timeout: 60 } } as unknown as JobJson;
    const scope = { job: { job: '7', states: ['failed', 'errored'] } };
    assert.deepEqual(rerunRequest(job, scope, {}), {
      path: '/orchestrator/v1/command/task',
      body: { environment: 'staging', scope, noop: true, concurrency: 2, timeout: 60, task: 'sample::echo', params: { message: 'hi' } },
    });
    const secret = { ...job, options: { ...job.options, params: { password: REDACTED } } } as JobJson;
    assert.throws(() => rerunRequest(secret, scope, {}), /sensitive parameters .*\(password=…\)/);
    assert.deepEqual(rerunRequest(secret, scope, { password: 'x' }).body.params, { password: 'x' });
  });
});
