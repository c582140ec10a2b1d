// classifyRedisError against the errors a real ioredis client raises: a refused connection, no
// connection to send on, a peer that never answers, a Redis that is loading, and error replies
// that are not unavailability. The peers are scripted TCP servers on port 0 (no Redis needed).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import { classifyRedisError, StoreErrorCode } from '../../orchestrator/engine/store.ts';

/** Longest any one case waits for ioredis to raise its error. */
const CASE_WAIT_MS = 5_000;

const clients: Redis[] = [];
const servers: Server[] = [];
after(() => {
  for (const c of clients) c.disconnect();
  for (const s of servers) s.close();
});

function client(port: number, opts: RedisOptions): Redis {
  const r = new Redis({ host: '127.0.0.1', port, enableReadyCheck: false, ...opts });
  r.on('error', () => {});
  clients.push(r);
  return r;
}

/**
 * A TCP peer that answers every command with `reply` (RESP), or never answers when reply is null.
 * Commands are counted by their array headers (ours carry no `*` in their arguments); ioredis
 * sends HELLO and CLIENT SETINFO first and goes on whatever they are answered.
 */
async function peer(reply: string | null): Promise<number> {
  const sockets: Socket[] = [];
  const s = createServer((sock) => {
    sockets.push(sock);
    sock.on('error', () => {});
    if (reply !== null) sock.on('data', (d: Buffer) => sock.write(reply.repeat(String(d).match(/^\*[0-9]+\r$/gm)?.length ?? 0)));
  });
  s.on('close', () => sockets.forEach((x) => x.destroy()));
  servers.push(s);
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as AddressInfo).port;
}

/** A port nothing listens on (connections are refused). */
async function closedPort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** An event of the client (events.once would reject on the 'error' events that come first). */
function event(r: Redis, name: string): Promise<void> {
  return new Promise((resolve) => r.once(name, () => resolve()));
}

/** The error a command fails with, within CASE_WAIT_MS. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no error within ${CASE_WAIT_MS} ms`)), CASE_WAIT_MS)));
  try {
    await Promise.race([p, late]);
  } catch (err) {
    return err as Error;
  } finally {
    clearTimeout(timer);
  }
  throw new Error('the command did not fail');
}

describe('classifyRedisError', () => {
  it('classifies a refused connection by its errno code as unavailable', async () => {
    const r = client(await closedPort(), { retryStrategy: () => 60_000 });
    const [err] = (await once(r, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    assert.equal(classifyRedisError(err)?.code, StoreErrorCode.unavailable);
  });

  it('classifies a command sent while reconnecting with the offline queue off as unavailable', async () => {
    const r = client(await closedPort(), { enableOfflineQueue: false, retryStrategy: () => 60_000 });
    await event(r, 'reconnecting');
    const err = await rejection(r.get('k'));
    assert.equal(classifyRedisError(err)?.code, StoreErrorCode.unavailable, err.message);
  });

  it('classifies a command sent on an ended connection as unavailable', async () => {
    const r = client(await closedPort(), { retryStrategy: () => null });
    await event(r, 'end');
    const err = await rejection(r.get('k'));
    assert.equal(classifyRedisError(err)?.code, StoreErrorCode.unavailable, err.message);
  });

  it('classifies MaxRetriesPerRequestError as unavailable', async () => {
    const r = client(await closedPort(), { maxRetriesPerRequest: 0, retryStrategy: () => 60_000 });
    const err = await rejection(r.get('k'));
    assert.equal(err.name, 'MaxRetriesPerRequestError');
    assert.equal(classifyRedisError(err)?.code, StoreErrorCode.unavailable);
  });

  it('classifies a command timeout as a timeout', async () => {
    const r = client(await peer(null), { commandTimeout: 50, retryStrategy: () => 60_000 });
    const err = await rejection(r.get('k'));
    assert.equal(classifyRedisError(err)?.code, StoreErrorCode.timeout, err.message);
  });

  for (const code of ['LOADING', 'BUSY', 'MASTERDOWN', 'TRYAGAIN', 'CLUSTERDOWN']) {
    it(`classifies the error reply ${code} (a Redis not serving) as unavailable`, async () => {
      const r = client(await peer(`-${code} not serving now\r\n`), { retryStrategy: () => 60_000 });
      const err = await rejection(r.get('k'));
      assert.ok(err instanceof ReplyError);
      assert.equal(classifyRedisError(err)?.code, StoreErrorCode.unavailable);
    });
  }

  for (const reply of ['-ERR unknown command\r\n', '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n', '-ERR LOADING is not a code here\r\n']) {
    it(`does not take the error reply ${JSON.stringify(reply.trim())} for unavailability`, async () => {
      const r = client(await peer(reply), { retryStrategy: () => 60_000 });
      const err = await rejection(r.get('k'));
      assert.ok(err instanceof ReplyError);
      assert.equal(classifyRedisError(err), null);
    });
  }

  it('does not take errors of other origins for unavailability, whatever their text', () => {
    assert.equal(classifyRedisError(new Error('LOADING the page')), null);
    assert.equal(classifyRedisError(new TypeError('Command timed out')), null);
    assert.equal(classifyRedisError(new TypeError('Connection is closed.')), null);
    assert.equal(classifyRedisError('ECONNREFUSED'), null);
  });
});
