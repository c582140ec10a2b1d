import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectionBudget, DEFAULT_RESERVED_FILES, openFileLimit, parseOpenFileLimit } from '../../lib/open-files.ts';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

describe('open-file limit', () => {
  it('reads the soft limit from /proc/self/limits text', () => {
    assert.equal(parseOpenFileLimit(LIMITS), 20000);
    assert.equal(parseOpenFileLimit(LIMITS.replace('Max open files            20000', 'Max open files            1024 ')), 1024);
    assert.equal(parseOpenFileLimit(LIMITS.replace(/Max open files\s+20000/, 'Max open files            unlimited')), undefined);
    assert.equal(parseOpenFileLimit('garbage'), undefined);
    assert.equal(parseOpenFileLimit(''), undefined);
  });

  it("reads this process's limit on Linux", () => {
    if (process.platform !== 'linux') return;
    const n = openFileLimit();
    assert.ok(n === undefined || (Number.isInteger(n) && n > 0));
  });

  it('keeps a reserve: 256 files, or a quarter of a small limit', () => {
    assert.equal(connectionBudget(20000), 20000 - DEFAULT_RESERVED_FILES);
    assert.equal(connectionBudget(256), 192);
    assert.equal(connectionBudget(2), 2);
    assert.equal(connectionBudget(1), 1);
    assert.equal(connectionBudget(undefined), 0);
  });
});
