// The command line as a new user types it: `baton pki init/issue`, then `baton broker` with flags.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { BATON_BIN, fetchInsecure } from '../helpers/broker.ts';

const run = promisify(execFile);

describe('baton CLI: pki and broker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a CA and certificates, then runs a broker from flags on --port 0', async () => {
    await run(process.execPath, [BATON_BIN, 'pki', 'init', '--dir', dir]);
    const issued = await run(process.execPath, [BATON_BIN, 'pki', 'issue', '--dir', dir, 'broker', 'orchestrator', '--alt-names', 'localhost,127.0.0.1']);
    assert.match(issued.stdout, /broker: certificate .*certs\/broker\.pem/);
    const proc = spawn(process.execPath, [
      BATON_BIN, 'broker',
      '--ssl-ca-cert', join(dir, 'certs/ca.pem'),
      '--ssl-cert', join(dir, 'certs/broker.pem'),
      '--ssl-key', join(dir, 'private_keys/broker.pem'),
      '--host', '127.0.0.1', '--port', '0',
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: proc.stdout! });
      let port = 0;
      for await (const line of lines) {
        const log = JSON.parse(line) as { msg: string; port?: number };
        if (log.msg === 'listening') {
          port = log.port!;
          break;
        }
      }
      assert.ok(port > 0);
      const status = JSON.parse(await fetchInsecure(`https://127.0.0.1:${port}/status/v1/services`));
      assert.equal(status['broker-service'].state, 'running');
    } finally {
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, 'a clean exit on SIGTERM');
    }
  });

  it('exits 2 with a message naming the bad key', async () => {
    const err = await run(process.execPath, [BATON_BIN, 'broker', '--ssl-ca-cert', 'a', '--ssl-cert', 'b', '--ssl-key', 'c', '--idle-timeout', 'soon']).then(
      () => assert.fail('it started'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2);
    assert.match(err.stderr, /config key 'idle-timeout' \(flag --idle-timeout\) must be an integer, got 'soon'/);
  });

  it('exits 2 naming a certificate file it cannot read', async () => {
    const err = await run(process.execPath, [BATON_BIN, 'broker', '--ssl-ca-cert', '/nonexistent/ca.pem', '--ssl-cert', 'b', '--ssl-key', 'c']).then(
      () => assert.fail('it started'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2);
    assert.match(err.stderr, /config key 'ssl-ca-cert': cannot read \/nonexistent\/ca\.pem: ENOENT/);
  });
});
