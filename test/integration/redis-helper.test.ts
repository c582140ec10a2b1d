// The test helper that gives each test file its own redis-server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

describe('private redis-server for tests', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('starts on a free port, answers ioredis, and stops', async () => {
    assert.notEqual(redis.port, 6379);
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    try {
      assert.equal(await client.ping(), 'PONG');
      await client.set('baton:test', 'v');
      assert.equal(await client.get('baton:test'), 'v');
    } finally {
      client.disconnect();
    }
    const other = await startRedis();
    assert.notEqual(other.port, redis.port);
    await other.stop();
    assert.notEqual(other.proc.exitCode ?? other.proc.signalCode, null);
  });
});
