// The pure parts of the PuppetDB query source: which query PuppetDB gets, and which certnames
// of its answer are the target.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { certnamesOf, PuppetDbClient, PuppetDbErrorCode, puppetDbQuery } from '../../orchestrator/puppetdb/client.ts';

describe('PuppetDB query source', () => {
  it('sends PQL text as it is and an AST with a from clause', () => {
    assert.equal(puppetDbQuery(' nodes[certname] { facts.os.family = "Debian" } '), 'nodes[certname] { facts.os.family = "Debian" }');
    assert.deepEqual(puppetDbQuery(['from', 'facts', ['=', 'name', 'kernel']]), ['from', 'facts', ['=', 'name', 'kernel']]);
    assert.deepEqual(puppetDbQuery(['=', 'certname', 'web1']), ['from', 'nodes', ['=', 'certname', 'web1']]);
    assert.deepEqual(puppetDbQuery('["=", "certname", "web1"]'), ['from', 'nodes', ['=', 'certname', 'web1']]);
    assert.throws(() => puppetDbQuery('[not json'), SyntaxError);
    assert.throws(() => puppetDbQuery(42), (e: Error & { code?: string }) => e.code === PuppetDbErrorCode.refused);
  });

  it('takes the certnames at the top level of the answer, sorted, once each', () => {
    assert.deepEqual(certnamesOf([{ certname: 'b', name: 'kernel' }, { certname: 'a' }, { certname: 'b', name: 'os' }, { value: 'x' }, null, 'c', { certname: 7 }]), ['a', 'b']);
    assert.deepEqual(certnamesOf([]), []);
  });

  it('refuses a PuppetDB URL that is not https', () => {
    const pem = Buffer.from('');
    assert.throws(() => new PuppetDbClient({ url: 'http://pdb:8080', ca: pem, cert: pem, key: pem, timeoutMs: 1000 }), /must be https/);
  });
});
