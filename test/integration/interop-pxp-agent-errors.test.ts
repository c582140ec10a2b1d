// Puppet's real pxp-agent 1.15.23 (../shared/interop/pxp-agent) and the broker's error_message.
// Its cpp-pcp-client (1.7.7, with a valijson that refuses properties a schema does not name) drops
// a v2 envelope with a field it does not know and v1 error data with a key it does not know, so
// Baton's broker sends its stable error code (protocol/broker-errors.ts) to controllers only. Here:
// a response refused for its absent controller reaches pxp-agent as an error_message it reads (its
// warning names the description) in PCP v2 and v1; it goes on serving and keeps the run's results
// for a status query, which is how the orchestrator learns the outcome after its session is back.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { pxpRequest, PxpMessageType } from '../../protocol/pxp.ts';
import { startController } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { FileServer } from '../helpers/file-server.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { pxpAgentSkip, pxpBrokerUri, startPxpAgent, type PxpAgentProcess } from '../helpers/pxp-agent.ts';
import { newTransactionId } from '../helpers/tasks.ts';

const skip = pxpAgentSkip();
const CONTROLLER = 'pcp://orchestrator/controller';
const WAIT_MS = 30_000;
const GATED_TASK = '#!/bin/sh\nwhile [ ! -f "$PT_gate" ]; do sleep 0.05; done\necho through\n';

function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms))),
  ]);
}

/** The first message to `client` (from now on) for transaction `tx` of `type`. */
function replyOf(client: PcpClient, tx: string, type: string): Promise<EnvelopeV2> {
  return within(
    new Promise((resolve) => {
      const on = (env: EnvelopeV2) => {
        if (env.message_type !== type || (env.data as { transaction_id?: unknown } | undefined)?.transaction_id !== tx) return;
        client.off('message', on);
        resolve(env);
      };
      client.on('message', on);
    }),
    `${type} for ${tx}`,
  );
}

describe("Puppet's pxp-agent reads the broker's error_message (which has no code for agents)", { skip }, () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let files: FileServer;
  let scratch: string;
  const agents: PxpAgentProcess[] = [];
  const controllers: PcpClient[] = [];

  before(async () => {
    pki = await makePki(['orchestrator']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    files = await FileServer.start(pki);
    scratch = mkdtempSync(join(tmpdir(), 'baton-pxp-errors-'));
  });
  after(async () => {
    for (const c of controllers) await c.stop();
    for (const a of agents) await a.stop();
    await files?.stop();
    await broker?.stop();
    pki?.remove();
  });

  for (const version of ['2', '1'] as const) {
    it(`PCP v${version}: a response refused for its absent target is logged with its description; the agent goes on and reports the run by status query`, async () => {
      const name = `pxperr${version}`;
      const agentUri = `pcp://${name}/agent`;
      const agent = await startPxpAgent({ pki, name, brokerUris: [pxpBrokerUri(broker.port, version)], pcpVersion: version, masterUris: [files.url] });
      agents.push(agent);
      const file = files.add(`/puppet/v3/file_content/tasks/sample/gated${version}.sh`, `gated${version}.sh`, GATED_TASK);
      const gate = join(scratch, `gate${version}`);

      // A run starts; its controller goes away before it ends. Input by environment only: pxp-agent
      // 1.15.23's execution_wrapper, writing to a task's stdin, can die of SIGPIPE (exit code 13).
      const first = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
      controllers.push(first);
      const tx = newTransactionId(`gated${version}`);
      const provisional = replyOf(first, tx, PxpMessageType.provisionalResponse);
      first.send(pxpRequest(agentUri, { transaction_id: tx, module: 'task', action: 'run', params: { task: `sample::gated${version}`, input: { gate }, input_method: 'environment', files: [file] }, notify_outcome: true }, false));
      await provisional;
      const closed = broker.waitForNextLog((l) => l.msg === 'session closed' && l.uri === CONTROLLER);
      await first.stop();
      await within(closed, 'the broker closes the controller session');

      // The run ends: the broker answers its response with an error_message (no code: an agent).
      writeFileSync(gate, '');
      const [line] = await agent.waitForLog(/Received error \S+ from pcp:\/\/\/server caused by message \S+: [^\n]*is not connected/, WAIT_MS);
      assert.doesNotMatch(agent.log(), /does not match schema/, 'no message of the broker was refused');
      assert.match(line, new RegExp(`'${CONTROLLER.replace(/[/.]/g, '\\$&')}' is not connected`), 'the description, read from the error_message');

      // Still serving: a new controller session gets an echo and the run's results by status query.
      // (Stopped before the next test: a session of the same identity left running would take the next run's response.)
      const second = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
      controllers.push(second);
      try {
        const etx = newTransactionId('echo');
        const echoed = second.request(pxpRequest(agentUri, { transaction_id: etx, module: 'echo', action: 'echo', params: { argument: 'still here' } }, true), WAIT_MS);
        assert.deepEqual((await echoed).data, { transaction_id: etx, results: { outcome: 'still here' } });
        const stx = newTransactionId('status');
        const status = await second.request(pxpRequest(agentUri, { transaction_id: stx, module: 'status', action: 'query', params: { transaction_id: tx } }, true), WAIT_MS);
        const results = (status.data as { results: { status: string; exitcode: number; stdout: string } }).results;
        assert.deepEqual([results.status, results.exitcode, results.stdout], ['success', 0, 'through\n']);
      } finally {
        await second.stop();
      }
    });
  }
});
