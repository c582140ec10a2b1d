// PuppetserverTaskSource against a scripted HTTPS peer (no JVM): every answer a Puppet server
// should never give is refused as invalid-answer, and its failures are classified once. The real
// Puppet server is in test/integration/orchestrator-task-source.test.ts.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { tlsClient } from '../helpers/puppetserver.ts';
import { TaskCatalogError } from '../../orchestrator/tasks/catalog.ts';
import { PuppetserverTaskSource } from '../../orchestrator/tasks/puppetserver.ts';

interface FileEntry {
  filename: string;
  sha256: string;
  size_bytes: number;
  uri: { path: string; params: Record<string, string> };
}

describe('Puppet server task source: answers it refuses', () => {
  let pki: TestPki;
  let fake: Server;
  let source: PuppetserverTaskSource;
  let answer: { status: number; body: unknown } | null = null;
  const good = { name: 'm::t', metadata: {}, files: [{ filename: 't.sh', sha256: 'a'.repeat(64), size_bytes: 3, uri: { path: '/puppet/v3/file_content/tasks/m/t.sh', params: { environment: 'production' } } }] };
  const withFile = (f: Partial<FileEntry>) => ({ ...good, files: [{ ...good.files[0]!, ...f }] });

  before(async () => {
    pki = await makePki(['orchestrator']);
    await pki.issue('fake-puppetserver', ['127.0.0.1']);
    fake = createServer({ ca: readFileSync(pki.ca), cert: readFileSync(pki.cert('fake-puppetserver')), key: readFileSync(pki.key('fake-puppetserver')), requestCert: true }, (req, res) => {
      if (!answer) return; // no answer: the client's bound must end the request
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body));
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const port = (fake.address() as AddressInfo).port;
    const tls = tlsClient(pki, 'orchestrator');
    source = new PuppetserverTaskSource({ url: `https://127.0.0.1:${port}`, ca: tls.ca, cert: tls.cert!, key: tls.key!, timeoutMs: 500 });
  });
  after(async () => {
    source?.close();
    fake?.closeAllConnections();
    await new Promise((resolve) => fake?.close(resolve));
    pki?.remove();
  });

  const failure = async (body: unknown, status = 200): Promise<TaskCatalogError> => {
    answer = { status, body };
    try {
      await source.describe('production', 'm::t');
    } catch (err) {
      assert.ok(err instanceof TaskCatalogError, String(err));
      return err;
    }
    assert.fail('the answer was accepted');
  };

  it('takes a well-formed answer', async () => {
    answer = { status: 200, body: good };
    assert.deepEqual((await source.describe('production', 'm::t')).files, good.files);
  });

  it('refuses file paths and names that leave the Puppet server or the task, and answers off the schema', async () => {
    for (const bad of [
      withFile({ uri: { path: '/puppet/v3/file_content/tasks/m/../../../etc/passwd', params: { environment: 'production' } } }),
      withFile({ uri: { path: '/puppet/v3/file_content/tasks/m/%2e%2e/x', params: { environment: 'production' } } }),
      withFile({ uri: { path: '/puppet/v3/file_content/tasks/m/a%2fb', params: { environment: 'production' } } }),
      withFile({ uri: { path: '//evil.example/puppet/v3/file_content/x', params: { environment: 'production' } } }),
      withFile({ uri: { path: 'https://evil.example/x', params: { environment: 'production' } } }),
      withFile({ uri: { path: '/etc/passwd', params: { environment: 'production' } } }),
      withFile({ uri: { path: '/puppet/v3/file_content/tasks/m/t.sh', params: { environment: 'other' } } }),
      withFile({ filename: '../t.sh' }),
      withFile({ filename: '/etc/t.sh' }),
      withFile({ sha256: 'nothex' }),
      withFile({ size_bytes: -1 }),
      { ...good, files: [] },
      { ...good, metadata: { parameters: { x: { type: 5 } } } },
      { files: good.files },
      [good],
      'not json',
    ]) {
      const err = await failure(bad);
      assert.equal(err.code, 'service-unavailable', JSON.stringify(bad));
      assert.deepEqual(err.details, { service: 'puppetserver', reason: 'invalid-answer' }, JSON.stringify(bad));
    }
  });

  it("classifies the Puppet server's failures once: task errors, refusals, failures, silence", async () => {
    const invalid = await failure({ kind: 'puppet.tasks/invalid-metadata', msg: 'bad', details: {} }, 500);
    assert.equal(invalid.code, 'invalid-task-metadata');
    assert.deepEqual((await failure('Forbidden', 403)).details, { service: 'puppetserver', reason: 'refused' });
    assert.deepEqual((await failure('Internal error', 500)).details, { service: 'puppetserver', reason: 'failed' });
    answer = null;
    const t0 = Date.now();
    await assert.rejects(source.list('production'), (e: TaskCatalogError) => e.code === 'service-unavailable' && e.details?.reason === 'timeout');
    assert.ok(Date.now() - t0 < 2_000, `bounded (${Date.now() - t0} ms)`);
    // Names that are no task names are not asked for at all.
    await assert.rejects(source.describe('production', '../x'), (e: TaskCatalogError) => e.code === 'unknown-task');
    await assert.rejects(source.list('../etc'), (e: TaskCatalogError) => e.code === 'unknown-environment');
  });
});
