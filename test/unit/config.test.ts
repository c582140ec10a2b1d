import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveBrokerConfig } from '../../broker/index.ts';
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_MESSAGE_BYTES } from '../../broker/defaults.ts';
import { ConfigError, envName } from '../../lib/config.ts';

const required = { 'ssl-ca-cert': 'ca.pem', 'ssl-cert': 'b.pem', 'ssl-key': 'b.key' };

function file(content: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'baton-config-')), 'broker.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('broker configuration', () => {
  it('applies defaults with pcp-broker key names', () => {
    const c = resolveBrokerConfig({ flags: required });
    assert.equal(c.port, 8142);
    assert.equal(c['max-message-size'], DEFAULT_MAX_MESSAGE_BYTES);
    assert.equal(c['idle-timeout'], DEFAULT_IDLE_TIMEOUT_MS);
    assert.equal(c['max-connections'], 0);
    assert.deepEqual(c['controller-cns'], ['orchestrator']);
  });

  it('takes file < BATON_* environment < flags', () => {
    const f = file({ ...required, port: 1, 'idle-timeout': 1000, 'max-connections': 5 });
    const c = resolveBrokerConfig({
      file: f,
      env: { BATON_PORT: '2', BATON_IDLE_TIMEOUT: '2000', BATON_CONTROLLER_CNS: 'a, b*' },
      flags: { port: '3' },
    });
    assert.equal(c.port, 3);
    assert.equal(c['idle-timeout'], 2000);
    assert.equal(c['max-connections'], 5);
    assert.deepEqual(c['controller-cns'], ['a', 'b*']);
    assert.equal(envName('max-message-size'), 'BATON_MAX_MESSAGE_SIZE');
  });

  it('stops with a message naming the bad key', () => {
    const cases: [Parameters<typeof resolveBrokerConfig>[0], RegExp][] = [
      [{ flags: { ...required, port: 'abc' } }, /config key 'port' \(flag --port\) must be an integer, got 'abc'/],
      [{ flags: { ...required, port: 70000 } }, /config key 'port' must be <= 65535/],
      [{ env: { BATON_MAX_CONNECTIONS: '-1' }, flags: required }, /config key 'max-connections' must be >= 0/],
      [{ flags: { 'ssl-cert': 'x', 'ssl-key': 'y' } }, /config key 'ssl-ca-cert' is required/],
      [{ file: file({ ...required, 'max-mesage-size': 1 }) }, /unknown config key 'max-mesage-size'/],
      [{ file: file({ ...required, authorization: { rules: [{ sender: '*' }] } }) }, /config key 'authorization\.rules\.0\.allow' is required/],
      [{ file: file({ ...required, 'log-level': 'loud' }) }, /config key 'log-level' must be one of fatal, error/],
      [{ file: file('{nope') }, /is not valid JSON/],
      [{ file: '/nonexistent/broker.json' }, /cannot read config file \/nonexistent\/broker.json/],
    ];
    for (const [sources, expected] of cases) {
      assert.throws(() => resolveBrokerConfig(sources), (err: unknown) => err instanceof ConfigError && expected.test(err.message), String(expected));
    }
  });
});
