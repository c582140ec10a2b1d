import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { GENERATED_PATH, generateValidators, schemasWithIds } from '../../scripts/gen-validators.ts';

describe('generated validators', () => {
  it('are up to date with schemas/ (run npm run gen:validators after changing a schema)', () => {
    assert.equal(readFileSync(GENERATED_PATH, 'utf8'), generateValidators());
  });

  it('cover every schema with a baton: $id, each id once', () => {
    const ids = schemasWithIds().map((s) => s.$id);
    assert.ok(ids.includes('baton:pcp/v2/envelope'));
    assert.ok(ids.includes('baton:pxp/task.run.params'));
    assert.equal(new Set(ids).size, ids.length);
  });
});
