// YAML plans: parsing, references to parameters and earlier steps, and refusals with the line and
// the reason; the pure rules of targets, batches and step results.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkPlanParams } from '../../orchestrator/plans/loader.ts';
import { PlanError, PlanErrorCode } from '../../orchestrator/plans/model.ts';
import { parsePlan } from '../../orchestrator/plans/parse.ts';
import { batches, resolveValue, shellQuote, stepResult, targetNames } from '../../orchestrator/plans/values.ts';

const GOOD = `description: check, then act where the check passed
parameters:
  targets:
    type: TargetSpec
  word:
    type: String
    default: hi
steps:
  - name: check
    task: sample::check
    targets: $targets
    parameters:
      greeting: "say \${word}!"
    catch_errors: true
  - command: echo $HOME
    targets: $check.ok_targets
    batch_size: "50%"
    max_failures: 1
  - plan: sample::sub
    parameters:
      nodes: $check.failed_targets
return: $check.ok_targets
`;

function refused(code: string, line: number, text: string, reason?: RegExp): void {
  assert.throws(() => parsePlan('sample::p', text), (err: unknown) => {
    assert.ok(err instanceof PlanError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.details?.line, line, err.message);
    if (reason) assert.match(String(err.details?.reason), reason);
    return true;
  });
}

describe('plan parsing', () => {
  it('parses steps, references, interpolation and return', () => {
    const p = parsePlan('sample::p', GOOD);
    assert.equal(p.steps.length, 3);
    const [check, cmd, sub] = p.steps;
    assert.equal(check!.kind, 'task');
    assert.equal(check!.what, 'sample::check');
    assert.equal(check!.line, 9);
    assert.deepEqual(check!.targets, { value: { $ref: 'targets' } });
    assert.deepEqual(check!.parameters, { greeting: { $interp: ['say ', { $ref: 'word' }, '!'] } });
    assert.equal(check!.catch_errors, true);
    assert.equal(cmd!.kind, 'command');
    assert.equal(cmd!.what, 'echo $HOME', 'a $ inside a plain string is no reference');
    assert.equal(cmd!.batch_size, '50%');
    assert.equal(cmd!.max_failures, 1);
    assert.equal(sub!.kind, 'plan');
    assert.deepEqual(p.return, { $ref: 'check.ok_targets' });
    assert.equal(p.parameters.word!.default, 'hi');
  });

  it('refuses YAML that does not parse, with its line', () => {
    refused(PlanErrorCode.invalidPlan, 4, 'steps:\n  - task: a::b\n    targets: [n1, n2\nreturn: 1\n', /YAML syntax/);
  });

  it('refuses unknown keys at the top, in steps and in parameters, with their line', () => {
    refused(PlanErrorCode.invalidPlan, 1, 'stepz: []\n', /unknown key 'stepz'/);
    refused(PlanErrorCode.invalidPlan, 4, 'steps:\n  - task: a::b\n    targets: n1\n    bogus: 1\n', /unknown key 'bogus' in a task step/);
    refused(PlanErrorCode.invalidPlan, 4, 'parameters:\n  x:\n    type: String\n    colour: red\nsteps:\n  - command: ls\n    targets: n1\n', /unknown key 'colour'/);
    refused(PlanErrorCode.invalidPlan, 2, 'steps:\n  - message: hello\n', /not supported/);
    refused(PlanErrorCode.invalidPlan, 2, 'steps:\n  - task: a::b\n    command: ls\n    targets: n\n', /only one of/);
  });

  it('refuses unknown variables and later steps, and unknown result fields', () => {
    refused(PlanErrorCode.unknownVariable, 3, 'steps:\n  - task: a::b\n    targets: $nodes\n', /unknown variable \$nodes/);
    refused(PlanErrorCode.unknownVariable, 5, 'steps:\n  - task: a::b\n    targets: n1\n    parameters:\n      x: $later\n  - name: later\n    task: a::c\n    targets: n1\n', /unknown variable \$later/);
    refused(PlanErrorCode.unknownVariable, 6, 'steps:\n  - name: one\n    task: a::b\n    targets: n1\n  - task: a::c\n    targets: $one.good_targets\n', /no field 'good_targets'/);
    refused(PlanErrorCode.unknownVariable, 4, 'steps:\n  - task: a::b\n    targets: n1\nreturn: $nothing\n');
  });

  it('refuses bad step values', () => {
    refused(PlanErrorCode.invalidPlan, 4, 'steps:\n  - task: a::b\n    targets: n1\n    batch_size: 0\n', /batch_size/);
    refused(PlanErrorCode.invalidPlan, 2, 'steps:\n  - task: a::b\n    targets: n1\n    max_failures: 1\n', /goes with batch_size/);
    refused(PlanErrorCode.invalidPlan, 2, 'steps:\n  - task: a::b\n', /needs targets/);
    refused(PlanErrorCode.invalidPlan, 2, 'steps:\n  - script: a/../../etc/passwd\n    targets: n1\n', /inside the module/);
    refused(PlanErrorCode.invalidPlan, 5, 'parameters:\n  one:\n    type: String\nsteps:\n  - name: one\n    task: a::b\n    targets: n1\n', /already used/);
  });
});

describe('plan values', () => {
  it('resolves references, fields and interpolation', () => {
    const vars = { t: ['a', 'b'], s: { ok_targets: ['a'], results: { a: { n: 1 } } }, w: 'x' };
    assert.deepEqual(resolveValue({ $ref: 's.ok_targets' }, vars), ['a']);
    assert.deepEqual(resolveValue({ k: [{ $ref: 't' }, { $interp: ['w=', { $ref: 'w' }] }] }, vars), { k: [['a', 'b'], 'w=x'] });
    assert.equal(resolveValue({ $ref: 's.results.a.n' }, vars), 1);
    assert.equal(resolveValue({ $ref: 's.missing' }, vars), null);
  });

  it('targets are names, comma lists, lists of them, or step results', () => {
    assert.deepEqual(targetNames('a, b,,c'), ['a', 'b', 'c']);
    assert.deepEqual(targetNames([['a'], 'b', { targets: ['c', 'a'] }]), ['a', 'b', 'c']);
    assert.deepEqual(targetNames([]), []);
    assert.throws(() => targetNames(3), PlanError);
  });

  it('batches by count or percentage', () => {
    assert.deepEqual(batches(['a', 'b', 'c'], 2), [['a', 'b'], ['c']]);
    assert.deepEqual(batches(['a', 'b', 'c', 'd'], '50%'), [['a', 'b'], ['c', 'd']]);
    assert.deepEqual(batches(['a', 'b', 'c'], '10%'), [['a'], ['b'], ['c']]);
    assert.deepEqual(batches(['a', 'b'], undefined), [['a', 'b']]);
    assert.deepEqual(batches([], 1), []);
  });

  it('a step result says which nodes succeeded; nodes never run count as failed', () => {
    const r = stepResult([{ name: 'a', state: 'finished', result: { x: 1 } }, { name: 'b', state: 'failed', result: { _error: {} } }], ['c'], ['7']);
    assert.deepEqual(r.ok_targets, ['a']);
    assert.deepEqual(r.failed_targets, ['b', 'c']);
    assert.deepEqual(r.targets, ['a', 'b', 'c']);
    assert.equal(r.ok, false);
    assert.deepEqual(r.job_ids, ['7']);
  });

  it('quotes script arguments as single shell words', () => {
    assert.equal(shellQuote(['a b', "it's", 3]), `'a b' 'it'\\''s' '3'`);
  });

  it('checks plan parameters by their types, TargetSpec included', () => {
    const plan = { name: 'm::p', parameters: { targets: { type: 'TargetSpec' }, n: { type: 'Integer[1, 5]', default: 2 }, o: { type: 'Optional[String]' } } };
    assert.deepEqual(checkPlanParams(plan, { targets: 'a,b' }), { targets: 'a,b', n: 2 });
    assert.deepEqual(checkPlanParams(plan, { targets: ['a'], n: 5 }), { targets: ['a'], n: 5 });
    for (const bad of [{ targets: 'a', n: 9 }, { n: 1 }, { targets: 'a', extra: 1 }, { targets: 3 }]) {
      assert.throws(() => checkPlanParams(plan, bad), (e: unknown) => e instanceof PlanError && e.code === PlanErrorCode.invalidParameters);
    }
  });
});

describe('plan puppet_run steps (Baton)', () => {
  it('reads noop, defaults to enforcing, and refuses other keys and values with their line', () => {
    const plan = parsePlan('sample::p', 'steps:\n  - puppet_run:\n      noop: true\n    targets: [a]\n  - puppet_run: {}\n    targets: [b]\n');
    assert.deepEqual(plan.steps.map((s) => [s.kind, s.what, s.parameters]), [['puppet_run', 'noop', { noop: true }], ['puppet_run', 'enforce', {}]]);
    refused(PlanErrorCode.invalidPlan, 3, 'steps:\n  - puppet_run:\n      debug: true\n    targets: [a]\n', /unknown key 'debug'/);
    refused(PlanErrorCode.invalidPlan, 3, 'steps:\n  - puppet_run:\n      noop: "yes"\n    targets: [a]\n', /noop must be true or false/);
    refused(PlanErrorCode.invalidPlan, 2, 'steps:\n  - puppet_run: {}\n', /needs targets/);
  });
});

describe('plan command steps and the task source', () => {
  it('are refused at submit as an unknown task where the built-in baton_shim tasks are not (a Puppet server task source)', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { PlanCatalog } = await import('../../orchestrator/plans/loader.ts');
    const { TaskCatalog, TaskCatalogError, TaskErrorCode } = await import('../../orchestrator/tasks/catalog.ts');
    const codedir = mkdtempSync(join(tmpdir(), 'baton-plan-source-'));
    mkdirSync(join(codedir, 'environments', 'production', 'modules', 'm', 'plans'), { recursive: true });
    writeFileSync(join(codedir, 'environments', 'production', 'modules', 'm', 'plans', 'p.yaml'), 'steps:\n  - command: uptime\n    targets: [a]\n');
    const catalog = new TaskCatalog(codedir);
    // The codedir source knows the built-in task; a source without it (as a Puppet server is) refuses the plan.
    await new PlanCatalog(catalog, { kind: 'codedir', list: async () => [], describe: async (env, name) => catalog.describe(env, name) }).compile('production', 'm::p', {});
    const puppetserver = { kind: 'puppetserver' as const, list: async () => [], describe: async (environment: string, name: string) => { throw new TaskCatalogError(TaskErrorCode.unknownTask, `no task ${name}`, { details: { task: name, environment } }); } };
    await assert.rejects(new PlanCatalog(catalog, puppetserver).compile('production', 'm::p', {}), (err: unknown) => {
      assert.ok(err instanceof PlanError);
      assert.equal(err.code, PlanErrorCode.unknownTask);
      assert.equal(err.details?.line, 2);
      assert.equal(err.details?.task, 'baton_shim::command');
      return true;
    });
  });
});

describe('plan sub-plan parameters at submit', () => {
  it('refuses a parameter the sub-plan does not declare, also when its value comes from an earlier step', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { PlanCatalog } = await import('../../orchestrator/plans/loader.ts');
    const { TaskCatalog } = await import('../../orchestrator/tasks/catalog.ts');
    const codedir = mkdtempSync(join(tmpdir(), 'baton-plan-sub-'));
    const plans = join(codedir, 'environments', 'production', 'modules', 'm', 'plans');
    mkdirSync(plans, { recursive: true });
    writeFileSync(join(plans, 'sub.yaml'), 'parameters:\n  nodes:\n    type: TargetSpec\nsteps:\n  - command: uptime\n    targets: $nodes\n');
    writeFileSync(join(plans, 'p.yaml'), 'steps:\n  - name: first\n    command: uptime\n    targets: [a]\n  - plan: m::sub\n    parameters:\n      nodes: $first.ok_targets\n      extra: $first.ok_targets\n');
    const catalog = new TaskCatalog(codedir);
    const source = { kind: 'codedir' as const, list: async () => [], describe: async (env: string, name: string) => catalog.describe(env, name) };
    await assert.rejects(new PlanCatalog(catalog, source).compile('production', 'm::p', {}), (err: unknown) => {
      assert.ok(err instanceof PlanError);
      assert.equal(err.code, PlanErrorCode.invalidParameters);
      assert.match(err.message, /unknown parameter 'extra'/);
      assert.equal(err.details?.line, 5);
      return true;
    });
  });
});
