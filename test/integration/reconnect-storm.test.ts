// Reconnect storms settle: a fleet of real agents (product backoff) comes back after a broker
// SIGKILL and restart on the same port, within the backoff's own bound; a broker at its
// handshake capacity sheds with a refusal the client takes as "busy, retry soon", and then lets
// every client in.
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { DEFAULT_RECONNECT_MAX_MS } from '../../protocol/client/backoff.ts';
import { ClientErrorCode } from '../../protocol/client/broker-uri.ts';
import { PcpClient } from '../../protocol/client/pcp-client.ts';
import { fetchInsecure, metricValue, startBrokerProcess, type BrokerProcess, type LogLine } from '../helpers/broker.ts';
import { identity } from '../helpers/pcp-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { issueFleetCerts, startFleet, type Fleet } from '../fleet/fleet.ts';

const AGENTS = 300;
/** Beyond the backoff cap: the restarted broker's own start-up and the handshakes of 300 agents on a shared machine. */
const SLACK_MS = 10_000;

function sessions(broker: BrokerProcess): Promise<number> {
  return fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services`).then(
    (body) => (JSON.parse(body) as Record<string, { status: { sessions: number } }>)['broker-service']!.status.sessions,
  );
}

/** Resolves with each URI's first "session opened" time (broker's clock) once `n` distinct URIs have one, or rejects after `timeoutMs`. */
function allOpened(broker: BrokerProcess, n: number, timeoutMs: number): Promise<Map<string, number>> {
  const first = new Map<string, number>();
  const count = (l: LogLine) => {
    if (l.msg === 'session opened' && typeof l.uri === 'string' && !first.has(l.uri)) first.set(l.uri, Date.parse(String(l.time)));
    return first.size >= n;
  };
  const done = broker.logs.some(count) ? Promise.resolve() : broker.waitForNextLog(count).then(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    done.then(() => first),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${first.size} of ${n} sessions opened within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('reconnect storm', () => {
  let pki: TestPki;
  const brokers: BrokerProcess[] = [];
  const clients: PcpClient[] = [];
  let fleet: Fleet | undefined;

  before(async () => {
    pki = await makePki(['shed0', 'shed1', 'shed2', 'shed3', 'shed4', 'shed5', 'shed6', 'shed7', 'shed8', 'shed9']);
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await fleet?.stop();
    for (const b of brokers) await b.stop();
    pki?.remove();
  });

  it(`brings all ${AGENTS} agents back after a broker SIGKILL and restart, none later than the backoff cap allows`, async () => {
    const names = Array.from({ length: AGENTS }, (_, i) => `storm${String(i).padStart(3, '0')}`);
    await issueFleetCerts(pki.dir, names);
    const first = await startBrokerProcess({ pki, logLevel: 'info' });
    brokers.push(first);
    fleet = await startFleet({ pkiDir: pki.dir, names, brokerUris: [`wss://127.0.0.1:${first.port}/pcp2/`], reconnect: 'default' });
    assert.equal(await sessions(first), AGENTS);

    await first.stop('SIGKILL');
    const second = await startBrokerProcess({ pki, logLevel: 'info', port: first.port });
    brokers.push(second);
    const listeningAt = Date.parse(String((await second.waitForLog((l) => l.msg === 'listening')).time));
    const bound = DEFAULT_RECONNECT_MAX_MS + SLACK_MS;
    const opened = await allOpened(second, AGENTS, bound + 5_000);
    const latest = Math.max(...opened.values()) - listeningAt;
    assert.ok(latest <= bound, `the last agent came back ${latest} ms after the broker listened; the cap allows ${bound} ms`);
    assert.deepEqual(new Set(opened.keys()), new Set(names.map((n) => `pcp://${n}/agent`)));
    assert.equal(await sessions(second), AGENTS, 'all are still connected');
    assert.equal((await fleet.stats()).connected, AGENTS);
  });

  it('refuses connections beyond its handshake capacity as busy (before TLS), and every client then gets in', async () => {
    const broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'max-concurrent-handshakes': 1, 'handshake-queue-timeout': 0 } });
    brokers.push(broker);
    const errors: string[] = [];
    const log = pino({ level: 'silent' });
    for (let i = 0; i < 10; i++) {
      const c = new PcpClient({ brokerUris: [broker.url('/pcp2/')], clientType: 'agent', tls: identity(pki, `shed${i}`), log, backoff: { initialMs: 100, maxMs: 1_000 } });
      c.on('connectError', (_b, err) => errors.push((err as { code?: string }).code ?? 'none'));
      clients.push(c);
    }
    const connected = clients.map((c) => c.waitConnected(20_000));
    for (const c of clients) c.start();
    await Promise.all(connected);
    assert.ok(errors.length > 0, 'ten clients at once against one handshake slot: some were refused');
    assert.deepEqual([...new Set(errors)], [ClientErrorCode.busy], 'every refusal was the retryable one');
    const metrics = await broker.metrics();
    assert.ok(metricValue(metrics, 'baton_broker_connections_shed_total') >= errors.length);
    assert.equal(metricValue(metrics, 'baton_broker_handshakes_in_progress'), 0);
    assert.equal(await sessions(broker), 10);
  });

  it('queues connections for a handshake slot instead of refusing them, and frees the slot of a connection that never finished TLS', async () => {
    const broker = await startBrokerProcess({
      pki,
      logLevel: 'info',
      config: { 'max-concurrent-handshakes': 1, 'handshake-queue-timeout': 10_000, 'tls-handshake-timeout': 500 },
    });
    brokers.push(broker);
    // Holds the only slot without ever starting TLS, then goes away; another sends garbage.
    const silent = tcpConnect(broker.port, '127.0.0.1');
    await once(silent, 'connect');
    const garbage = tcpConnect(broker.port, '127.0.0.1');
    await once(garbage, 'connect');
    garbage.end('GET / HTTP/1.1\r\n\r\n');
    const errors: string[] = [];
    const log = pino({ level: 'silent' });
    const queued = ['shed0', 'shed1', 'shed2'].map((n) => {
      const c = new PcpClient({ brokerUris: [broker.url('/pcp2/')], clientType: 'queued', tls: identity(pki, n), log, backoff: { initialMs: 5_000, maxMs: 5_000 } });
      c.on('connectError', (_b, err) => errors.push((err as { code?: string }).code ?? 'none'));
      clients.push(c);
      return c;
    });
    const connected = queued.map((c) => c.waitConnected(8_000));
    for (const c of queued) c.start();
    silent.destroy();
    await Promise.all(connected);
    assert.deepEqual(errors, [], 'nobody was refused: they waited for the slot');
    const metrics = await broker.metrics();
    assert.equal(metricValue(metrics, 'baton_broker_connections_shed_total'), 0);
    assert.equal(metricValue(metrics, 'baton_broker_handshakes_in_progress'), 0);
    assert.equal(metricValue(metrics, 'baton_broker_handshake_queue_length'), 0);
  });
});
