import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { sensitiveParameters, TaskCatalog, TaskCatalogError, validateParams } from '../../orchestrator/tasks/catalog.ts';
import { checkValue, parsePuppetType } from '../../orchestrator/tasks/puppet-types.ts';
import { sha256 } from '../helpers/file-server.ts';

const ok = (type: string, value: unknown) => assert.equal(checkValue(value, parsePuppetType(type)), null, `${type} accepts ${JSON.stringify(value)}`);
const no = (type: string, value: unknown) => assert.notEqual(checkValue(value, parsePuppetType(type)), null, `${type} refuses ${JSON.stringify(value)}`);

describe('Puppet data types', () => {
  it('checks scalars with ranges', () => {
    ok('String', 'x'); no('String', 1);
    ok('String[1,3]', 'abc'); no('String[1,3]', ''); no('String[1,3]', 'abcd');
    ok('Integer', 3); no('Integer', 3.5); no('Integer', '3');
    ok('Integer[0, 10]', 10); no('Integer[0, 10]', 11);
    ok('Float', 1.5); ok('Numeric', 2); no('Numeric', 'two');
    ok('Boolean', false); no('Boolean', 'false');
  });

  it('checks Optional, Enum, Pattern, Variant, Undef, NotUndef', () => {
    ok('Optional[String]', null); ok('Optional[String]', 'x'); no('Optional[String]', 1);
    ok("Enum['present', \"absent\"]", 'absent'); no("Enum['present', 'absent']", 'gone');
    ok('Pattern[/^v\\d+$/]', 'v12'); no('Pattern[/^v\\d+$/]', 'x12');
    ok('Variant[Integer, Enum[latest]]', 4); ok("Variant[Integer, Enum['latest']]", 'latest'); no('Variant[Integer, Boolean]', 'x');
    ok('Undef', null); no('NotUndef', null); ok('NotUndef[Integer]', 1);
  });

  it('checks Array, Tuple, Hash and Struct', () => {
    ok('Array', [1, 'a']); ok('Array[String]', ['a']); no('Array[String]', ['a', 1]);
    ok('Array[Integer, 1, 2]', [1]); no('Array[Integer, 1, 2]', []);
    ok('Tuple[String, Integer]', ['a', 1]); no('Tuple[String, Integer]', ['a']);
    ok('Hash', { a: 1 }); ok('Hash[String, Integer]', { a: 1 }); no('Hash[String, Integer]', { a: 'x' }); no('Hash', [1]);
    const s = "Struct[{name => String, Optional['port'] => Integer, 'tags' => Optional[Array[String]]}]";
    ok("Struct[{ name => String, port => Integer }]", { name: 'a', port: 1 });
    ok(s, { name: 'web' }); ok(s, { name: 'web', port: 80, tags: ['a'] });
    no(s, { port: 80 }); no(s, { name: 'web', extra: 1 }); no(s, { name: 'web', port: '80' });
    ok('Data', { a: [1, null, 'x'] }); ok('Any', () => 1);
  });

  it('refuses bad syntax and unknown types with clear errors', () => {
    assert.throws(() => parsePuppetType('String['), /cannot read the type/);
    assert.throws(() => parsePuppetType('Frobnicator'), /unknown type 'Frobnicator'/);
    assert.throws(() => parsePuppetType("Enum['a"), /unterminated string/);
  });
});

describe('task catalogue', () => {
  const codedir = mkdtempSync(join(tmpdir(), 'baton-codedir-'));
  after(() => rmSync(codedir, { recursive: true, force: true }));
  const tasks = join(codedir, 'environments', 'production', 'modules', 'sample', 'tasks');
  mkdirSync(tasks, { recursive: true });
  mkdirSync(join(codedir, 'environments', 'staging', 'modules'), { recursive: true });
  writeFileSync(join(tasks, 'init.sh'), '#!/bin/sh\necho init\n');
  writeFileSync(join(tasks, 'echo.sh'), '#!/bin/sh\necho "$PT_message"\n');
  writeFileSync(join(tasks, 'echo.json'), JSON.stringify({
    description: 'Echo a message',
    supports_noop: true,
    parameters: {
      message: { type: 'String[1]', description: 'what to say' },
      times: { type: 'Optional[Integer[1,5]]', default: 1 },
      password: { type: 'Optional[String]', sensitive: true },
    },
  }));
  writeFileSync(join(tasks, 'multi.sh'), '#!/bin/sh\n');
  writeFileSync(join(tasks, 'multi.ps1'), 'Write-Output 1');
  writeFileSync(join(tasks, 'multi.json'), JSON.stringify({ implementations: [{ name: 'multi.sh', requirements: ['shell'] }, { name: 'multi.ps1', requirements: ['powershell'] }] }));
  const catalog = new TaskCatalog(codedir);

  it('lists the tasks of an environment, init as the module name', () => {
    assert.deepEqual(catalog.list('production'), ['sample', 'sample::echo', 'sample::multi']);
    assert.deepEqual(catalog.list('staging'), []);
    assert.throws(() => catalog.list('nope'), (e: TaskCatalogError) => e.code === 'unknown-environment');
    assert.throws(() => catalog.list('../etc'), (e: TaskCatalogError) => e.code === 'unknown-environment');
  });

  it('describes a task with metadata and files for agents', () => {
    const t = catalog.describe('production', 'sample::echo');
    assert.equal(t.metadata.description, 'Echo a message');
    assert.deepEqual(t.files, [{
      filename: 'echo.sh',
      uri: { path: '/puppet/v3/file_content/tasks/sample/echo.sh', params: { environment: 'production' } },
      sha256: sha256('#!/bin/sh\necho "$PT_message"\n'),
      size_bytes: 29,
    }]);
    assert.equal(catalog.describe('production', 'sample').files[0]?.filename, 'init.sh');
    assert.deepEqual(catalog.describe('production', 'sample::multi').files.map((f) => f.filename), ['multi.sh', 'multi.ps1']);
    for (const name of ['sample::nope', 'nope', 'Sample::echo', 'a::b::c']) {
      assert.throws(() => catalog.describe('production', name), (e: TaskCatalogError) => e.code === 'unknown-task', name);
    }
    assert.equal(catalog.resolveFile('production', 'sample', 'echo.sh'), join(tasks, 'echo.sh'));
    assert.equal(catalog.resolveFile('production', 'sample', '../tasks/echo.sh'), null);
    assert.equal(catalog.resolveFile('production', '..', 'echo.sh'), null);
  });

  it('validates params: types, unknown names, required ones, defaults; knows the sensitive ones', () => {
    const t = catalog.describe('production', 'sample::echo');
    assert.deepEqual(validateParams(t, { message: 'hi' }), { message: 'hi', times: 1 });
    assert.deepEqual(validateParams(t, { message: 'hi', _noop: true }), { message: 'hi', times: 1, _noop: true });
    assert.throws(() => validateParams(t, {}), /parameter 'message' is required/);
    assert.throws(() => validateParams(t, { message: 'hi', times: 9 }), /parameter 'times' expects Integer\[1, 5\], got Integer 9/);
    assert.throws(() => validateParams(t, { message: 'hi', colour: 'red' }), /unknown parameter 'colour'/);
    assert.deepEqual(sensitiveParameters(t), ['password']);
  });
});
