import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { initCa, issueCert, PkiError, PkiErrorCode, pkiPaths } from '../../lib/pki.ts';

describe('pki', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'baton-pki-unit-'));
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  for (const keyType of ['ec', 'rsa'] as const) {
    it(`issues ${keyType} certificates with CN=NAME, signed by the CA, for both TLS ends`, async () => {
      const dir = tmp();
      await initCa(dir, { keyType });
      const { cert, key } = await issueCert(dir, 'web01.example.com', { keyType, altNames: ['localhost', '127.0.0.1'] });
      const ca = new X509Certificate(readFileSync(pkiPaths(dir).caCert));
      const leaf = new X509Certificate(readFileSync(cert));
      assert.ok(ca.ca);
      assert.ok(!leaf.ca);
      assert.equal(leaf.subject, 'CN=web01.example.com');
      assert.ok(leaf.verify(ca.publicKey), 'signed by the CA');
      assert.ok(leaf.checkIssued(ca));
      assert.equal(leaf.checkHost('localhost'), 'localhost');
      assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
      assert.match(leaf.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.1.*1\.3\.6\.1\.5\.5\.7\.3\.2/);
      const priv = createPrivateKey(readFileSync(key));
      assert.equal(priv.asymmetricKeyType, keyType);
      assert.ok(createPublicKey(priv).equals(leaf.publicKey), 'the key matches the certificate');
      assert.equal(statSync(key).mode & 0o777, 0o600);
      assert.equal(statSync(pkiPaths(dir).caKey).mode & 0o777, 0o600);
    });
  }

  it('refuses to overwrite, to issue without a CA, and names it cannot use', async () => {
    const dir = tmp();
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
      } catch (err) {
        assert.ok(err instanceof PkiError);
        return err.code;
      }
      return 'none';
    };
    assert.equal(await code(issueCert(dir, 'x')), PkiErrorCode.noCa);
    await initCa(dir);
    assert.equal(await code(initCa(dir)), PkiErrorCode.exists);
    await issueCert(dir, 'x');
    assert.equal(await code(issueCert(dir, 'x')), PkiErrorCode.exists);
    assert.equal(await code(issueCert(dir, '../etc/passwd')), PkiErrorCode.badName);
    await issueCert(dir, 'x', { force: true });
  });
});
