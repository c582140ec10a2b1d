// A fleet larger than one process's share runs in several processes: every agent connects to the
// broker once, stats sum over the processes, and stop leaves none of them behind.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fetchInsecure, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { within } from '../helpers/pcp-client.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { fleetCpuMs, issueFleetCerts, startFleet, type Fleet } from './fleet.ts';

const AGENTS = 300;
const AGENTS_PER_PROCESS = 100;
/** 300 TLS handshakes and three tsx start-ups on a shared two-core machine. */
const CONNECT_BOUND_MS = 60_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

async function sessions(broker: BrokerProcess): Promise<number> {
  const body = JSON.parse(await fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services`)) as Record<string, { status: { sessions: number } }>;
  return body['broker-service']!.status.sessions;
}

describe('fleet in several processes', () => {
  let pki: TestPki;
  let broker: BrokerProcess | undefined;
  let fleet: Fleet | undefined;

  before(async () => {
    pki = await makePki([]);
  });
  after(async () => {
    await fleet?.stop();
    await broker?.stop();
    pki?.remove();
  });

  it(`runs ${AGENTS} agents in ${AGENTS / AGENTS_PER_PROCESS} processes of ${AGENTS_PER_PROCESS}, each connected once, and stops every process`, async () => {
    const names = Array.from({ length: AGENTS }, (_, i) => `multi${String(i).padStart(3, '0')}`);
    await issueFleetCerts(pki.dir, names);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const b = broker;
    fleet = await within(
      startFleet({ pkiDir: pki.dir, names, brokerUris: [b.url('/pcp2/')], inMemoryTask: true, agentsPerProcess: AGENTS_PER_PROCESS }),
      `${AGENTS} agents connected`,
      CONNECT_BOUND_MS,
    );
    const pids = fleet.procs.map((p) => p.pid!);
    assert.equal(fleet.procs.length, 3);
    assert.equal(new Set(pids).size, 3, 'three distinct processes');
    assert.equal(fleet.proc, fleet.procs[0], 'proc is the first process');
    for (const pid of pids) assert.ok(alive(pid), `fleet process ${pid} runs`);

    // The broker's own count, and each agent's session by its URI: no name in two processes.
    assert.equal(await sessions(b), AGENTS);
    const opened = (uri: unknown) => b.logs.some((l) => l.msg === 'session opened' && l.uri === uri);
    await within(b.waitForCount((l) => l.msg === 'session opened', AGENTS), 'session logs', CONNECT_BOUND_MS);
    assert.deepEqual(names.filter((n) => !opened(`pcp://${n}/agent`)), [], 'every name has a session');
    const uris = b.logs.filter((l) => l.msg === 'session opened').map((l) => l.uri);
    assert.equal(new Set(uris).size, uris.length, 'no agent opened a second session');

    const stats = await fleet.stats();
    assert.equal(stats.connected, AGENTS, 'stats sum over the processes');
    assert.ok(fleetCpuMs(fleet) > 0, 'CPU summed over the processes');

    await within(fleet.stop(), 'fleet stopped', 20_000);
    assert.deepEqual(pids.filter(alive), [], 'no fleet process is left');
    await within(b.waitForCount((l) => l.msg === 'session closed', AGENTS), 'the broker saw every session close', 20_000);
    assert.equal(await sessions(b), 0);
  });
});
