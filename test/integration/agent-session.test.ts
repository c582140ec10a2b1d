// The agent's session with its broker: keepalive, reconnection, logging and configuration errors.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { agentDirs, startAgentProcess } from '../helpers/agent.ts';
import { BATON_BIN, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';

const run = promisify(execFile);

describe('agent session', () => {
  let pki: TestPki;
  let broker: BrokerProcess;

  before(async () => {
    pki = await makePki(['node1']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
  });
  after(async () => {
    broker.proc.kill('SIGCONT');
    await broker?.stop();
    pki?.remove();
  });

  it('notices a dead connection by missed pongs and reconnects once the broker answers again', async () => {
    const agent = await startAgentProcess({
      pki,
      name: 'node1',
      brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`],
      config: { 'ping-interval': 1, 'allowed-keepalive-timeouts': 1, 'connection-timeout': 500 },
    });
    try {
      const noticed = agent.waitForNextLog((l) => l.msg === 'no pong from the broker; reconnecting');
      broker.proc.kill('SIGSTOP'); // the broker's host hangs: TCP stays up, nothing answers
      await noticed;
      const back = agent.waitForNextLog((l) => l.msg === 'connected to broker');
      broker.proc.kill('SIGCONT');
      await back;
      assert.ok(agent.logs.some((l) => l.msg === 'reconnecting after a pause' && typeof l.delay_ms === 'number'));
    } finally {
      broker.proc.kill('SIGCONT');
      await agent.stop();
    }
  });

  it('logs pino JSON to stderr with --foreground', async () => {
    const dirs = agentDirs();
    writeFileSync(
      dirs.config,
      JSON.stringify({
        'broker-ws-uris': [`wss://127.0.0.1:${broker.port}/pcp2/`],
        'ssl-ca-cert': pki.ca,
        'ssl-cert': pki.cert('node1'),
        'ssl-key': pki.key('node1'),
        'spool-dir': dirs.spool,
        'task-cache-dir': dirs.cache,
      }),
    );
    const proc = spawn(process.execPath, [BATON_BIN, 'agent', '--foreground', '--config', dirs.config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    for await (const line of createInterface({ input: proc.stderr })) {
      const log = JSON.parse(line) as { msg: string; level: number; component: string };
      if (log.msg === 'connected to broker') break;
    }
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(stdout, '');
  });

  it('exits 2 naming the bad key of a bad configuration', async () => {
    const err = await run(process.execPath, [BATON_BIN, 'agent', '--broker-ws-uris', 'ws://plain:8142/pcp2/', '--ssl-ca-cert', 'a', '--ssl-cert', 'b', '--ssl-key', 'c', '--spool-dir', '/tmp/s', '--task-cache-dir', '/tmp/c']).then(
      () => assert.fail('it started'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2);
    assert.match(err.stderr, /config key 'broker-ws-uris\.0' must match pattern "\^wss:\/\/"/);
  });
});
