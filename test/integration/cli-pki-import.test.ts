// `baton pki import`: a Baton PKI directory from an existing Puppet CA, made by Puppet's own tool
// (`puppetserver ca setup`, Debian's puppetserver package: an intermediate CA under a root, RSA
// keys in PKCS#1, a CRL chain), so that `baton pki issue` signs broker and orchestrator
// certificates with the Puppet CA, which clients trusting that CA accept. Without the package the
// CA is made by Baton's own code, laid out as Puppet's.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ensureCrl, initCa, pkiPaths } from '../../lib/pki.ts';
import { runCli } from '../helpers/cli.ts';

const run = promisify(execFile);
const PUPPETSERVER_CLI = '/usr/bin/puppetserver';
const hasPuppetserverCa = existsSync(PUPPETSERVER_CLI) && existsSync('/usr/share/puppetserver/cli/apps/ca');
const hasOpenssl = (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d || '.', 'openssl')));

/** A Puppet CA directory (cadir): made by `puppetserver ca setup` when installed, else by Baton's code in Puppet's layout. */
async function makePuppetCa(root: string): Promise<{ cadir: string; madeBy: string }> {
  const cadir = join(root, 'puppetserver', 'ca');
  if (hasPuppetserverCa) {
    const conf = join(root, 'puppet.conf');
    writeFileSync(conf, `[main]\ncertname = puppet.example.test\nssldir = ${join(root, 'ssl')}\nvardir = ${join(root, 'var')}\n[server]\ncadir = ${cadir}\n`);
    await run(PUPPETSERVER_CLI, ['ca', 'setup', '--config', conf], { timeout: 120_000 });
    return { cadir, madeBy: 'puppetserver ca setup' };
  }
  const tmp = join(root, 'baton-made');
  await initCa(tmp, { keyType: 'rsa', commonName: 'Puppet CA: puppet.example.test' });
  const paths = pkiPaths(tmp);
  mkdirSync(cadir, { recursive: true });
  writeFileSync(join(cadir, 'ca_crt.pem'), readFileSync(paths.caCert));
  // Puppet writes its CA key as PKCS#1 ("RSA PRIVATE KEY").
  writeFileSync(join(cadir, 'ca_key.pem'), createPrivateKey(readFileSync(paths.caKey)).export({ type: 'pkcs1', format: 'pem' }));
  writeFileSync(join(cadir, 'ca_crl.pem'), readFileSync(await ensureCrl(tmp)));
  return { cadir, madeBy: "Baton's pki code" };
}

describe('baton pki import: certificates for Baton signed by an existing Puppet CA', () => {
  const root = mkdtempSync(join(tmpdir(), 'baton-pki-import-'));
  const pkiDir = join(root, 'pki');
  let cadir: string;
  let madeBy: string;
  const cli = (...args: string[]) => runCli(args, { cwd: root });

  before(async () => {
    ({ cadir, madeBy } = await makePuppetCa(root));
  }, { timeout: 150_000 });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('imports the Puppet CA directory: its chain as certs/ca.pem, its key (as PKCS#8) as ca/ca_key.pem, its CRL', async () => {
    const res = await cli('pki', 'import', '--puppet-ssldir', cadir, '--dir', pkiDir);
    assert.equal(res.code, 0, res.stderr);
    const puppetChain = readFileSync(join(cadir, 'ca_crt.pem'), 'utf8');
    const signer = new X509Certificate(puppetChain);
    assert.ok(res.stdout.includes(`Imported the Puppet CA 'CN=Puppet CA: puppet.example.test' from ${cadir}`), `CA made by ${madeBy}: ${res.stdout}`);
    const paths = pkiPaths(pkiDir);
    const chain = readFileSync(paths.caCert, 'utf8');
    assert.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, puppetChain.match(/BEGIN CERTIFICATE/g)?.length, 'the whole chain');
    assert.equal(new X509Certificate(chain).fingerprint256, signer.fingerprint256, 'the signing CA first');
    assert.match(readFileSync(paths.caKey, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    assert.ok(signer.checkPrivateKey(createPrivateKey(readFileSync(paths.caKey))));
    assert.equal(readFileSync(paths.crl, 'utf8'), readFileSync(join(cadir, 'ca_crl.pem'), 'utf8'));
  });

  it('then `baton pki issue` makes broker and orchestrator certificates signed by the Puppet CA, which clients trusting it accept', async () => {
    const res = await cli('pki', 'issue', 'broker', 'orchestrator', '--dir', pkiDir, '--alt-names', 'localhost,127.0.0.1');
    assert.equal(res.code, 0, res.stderr);
    const paths = pkiPaths(pkiDir);
    const puppetCa = readFileSync(join(cadir, 'ca_crt.pem'));
    const signer = new X509Certificate(puppetCa);
    for (const name of ['broker', 'orchestrator']) {
      const cert = new X509Certificate(readFileSync(paths.cert(name)));
      assert.equal(cert.issuer, signer.subject);
      assert.ok(cert.verify(signer.publicKey), `${name}'s certificate is signed by the Puppet CA's key`);
      assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
    }
    // A TLS client that trusts only the Puppet CA's own ca_crt.pem accepts the broker's certificate.
    const server = createServer({ cert: readFileSync(paths.cert('broker')), key: readFileSync(paths.key('broker')) }, (s) => s.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: puppetCa, servername: 'localhost' });
      await once(socket, 'secureConnect');
      assert.equal(socket.authorized, true, String(socket.authorizationError));
      socket.destroy();
    } finally {
      server.close();
    }
    if (hasOpenssl) {
      // OpenSSL with the Puppet CA's CRL chain, as Puppet's agents check (certificate_revocation=chain).
      const { stdout } = await run('openssl', ['verify', '-crl_check_all', '-CAfile', join(cadir, 'ca_crt.pem'), '-CRLfile', join(cadir, 'ca_crl.pem'), paths.cert('orchestrator')]);
      assert.match(stdout, /: OK$/m);
    }
  });

  it('refuses to replace a CA without --force; --force replaces it', async () => {
    const again = await cli('pki', 'import', '--puppet-ssldir', cadir, '--dir', pkiDir);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /a CA already exists in .*; use --force to replace it/);
    const forced = await cli('pki', 'import', '--puppet-ssldir', cadir, '--dir', pkiDir, '--force');
    assert.equal(forced.code, 0, forced.stderr);
  });

  it('finds the CA in an older ssldir layout (DIR/ca), and names both places when there is none', async () => {
    const ssldir = join(root, 'puppetserver'); // its ca/ is the CA directory
    const res = await cli('pki', 'import', '--puppet-ssldir', ssldir, '--dir', join(root, 'pki-from-ssldir'));
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`from ${cadir}`));
    const none = await cli('pki', 'import', '--puppet-ssldir', root, '--dir', join(root, 'pki-none'));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no Puppet CA in .*ca_crt\.pem nor .*ca\/ca_crt\.pem/);
    assert.equal(existsSync(join(root, 'pki-none')), false, 'nothing was written');
  });

  it('refuses a key that is not the CA certificate\'s', async () => {
    const bad = join(root, 'bad-ca');
    mkdirSync(bad);
    writeFileSync(join(bad, 'ca_crt.pem'), readFileSync(join(cadir, 'ca_crt.pem')));
    const other = join(root, 'other');
    await initCa(other, { keyType: 'rsa' });
    writeFileSync(join(bad, 'ca_key.pem'), readFileSync(pkiPaths(other).caKey));
    const res = await cli('pki', 'import', '--puppet-ssldir', bad, '--dir', join(root, 'pki-bad'));
    assert.equal(res.code, 1);
    assert.match(res.stderr, /is not the key of /);
  });
});
