// The pure parts of the PuppetDB query source: which query PuppetDB gets, and which certnames
// of its answer are the target.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { freePort } from '../../lib/net.ts';
import { makePki } from '../helpers/pki.ts';
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

  it('fails a query to a PuppetDB nobody listens for as puppetdb/unreachable, at once', async () => {
    const port = await freePort();
    const pki = await makePki(['orchestrator']);
    const [ca, cert, key] = [pki.ca, pki.cert('orchestrator'), pki.key('orchestrator')].map((f) => readFileSync(f));
    pki.remove();
    const client = new PuppetDbClient({ url: `https://127.0.0.1:${port}`, ca: ca!, cert: cert!, key: key!, timeoutMs: 5_000 });
    const t0 = Date.now();
    await assert.rejects(client.certnames('nodes[certname] {}'), (e: Error & { code?: string }) => e.code === PuppetDbErrorCode.unreachable && /cannot reach PuppetDB/.test(e.message));
    assert.ok(Date.now() - t0 < 2_000);
    client.close();
  });

  it('refuses a PuppetDB URL that is not https, and TLS files it cannot use, when it is made', () => {
    const pem = Buffer.from('');
    assert.throws(() => new PuppetDbClient({ url: 'http://pdb:8080', ca: pem, cert: pem, key: pem, timeoutMs: 1000 }), /must be https/);
    assert.throws(() => new PuppetDbClient({ url: 'https://pdb:8081', ca: pem, cert: pem, key: pem, timeoutMs: 1000 }), /TLS files for PuppetDB cannot be used/);
  });
});
