// Puppet's real pxp-agent 1.15.23 (../shared/interop/pxp-agent) in PCP v2 mode through Baton's
// broker, driven by Baton's PcpClient as a controller: echo, ping, status query, task run, and
// what it does when the broker goes away. pxp-agent correlates PXP replies by
// `data.transaction_id` only (no `in_reply_to`), so replies are matched here by transaction id.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
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
const NAME = 'pxp1';
const AGENT = `pcp://${NAME}/agent`;
const CONTROLLER = 'pcp://orchestrator/controller';
const REPLY_TIMEOUT_MS = 15_000;
/** The envelope keys pxp-agent 1.15.23 sends in PCP v2: never `in_reply_to`. */
const PXP_AGENT_V2_KEYS = ['data', 'id', 'message_type', 'sender', 'target'];

/** Every message the controller gets that nothing else consumed, awaitable by predicate. */
class Inbox {
  readonly seen: EnvelopeV2[] = [];
  private waiters: { pred: (e: EnvelopeV2) => boolean; resolve: (e: EnvelopeV2) => void }[] = [];

  constructor(client: PcpClient) {
    client.on('message', (env) => {
      this.seen.push(env);
      this.waiters = this.waiters.filter((w) => (w.pred(env) ? (w.resolve(env), false) : true));
    });
  }

  next(pred: (e: EnvelopeV2) => boolean, what: string, timeoutMs = REPLY_TIMEOUT_MS): Promise<EnvelopeV2> {
    const had = this.seen.find(pred);
    if (had) return Promise.resolve(had);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.seen.slice(-5))}`));
      }, timeoutMs);
      const done = (e: EnvelopeV2) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** The next message of `type` whose data names `transactionId`. */
  reply(transactionId: string, type: string, timeoutMs?: number): Promise<EnvelopeV2> {
    return this.next((e) => e.message_type === type && txOf(e) === transactionId, `${type} for ${transactionId}`, timeoutMs);
  }
}

function txOf(env: EnvelopeV2): unknown {
  return (env.data as { transaction_id?: unknown } | undefined)?.transaction_id;
}

function assertPxpAgentEnvelope(env: EnvelopeV2): void {
  assert.deepEqual(Object.keys(env).sort(), PXP_AGENT_V2_KEYS, `envelope keys of ${JSON.stringify(env)}`);
  assert.equal(env.sender, AGENT);
  assert.equal(env.target, CONTROLLER);
  assert.equal(env.in_reply_to, undefined, 'pxp-agent does not set in_reply_to');
}

describe("Puppet's pxp-agent 1.15.23 over PCP v2 through Baton's broker", { skip }, () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let files: FileServer;
  let agent: PxpAgentProcess;
  let ctl: PcpClient;
  let inbox: Inbox;
  let connectMs = 0;

  before(async () => {
    pki = await makePki(['orchestrator']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    files = await FileServer.start(pki);
    const t0 = Date.now();
    agent = await startPxpAgent({ pki, name: NAME, brokerUris: [pxpBrokerUri(broker.port, '2')], pcpVersion: '2', masterUris: [files.url] });
    connectMs = Date.now() - t0;
    ctl = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
    inbox = new Inbox(ctl);
  });
  after(async () => {
    await ctl?.stop();
    await agent?.stop();
    await files?.stop();
    await broker?.stop();
    pki?.remove();
  });

  const send = (transactionId: string, module: string, action: string, params: object, blocking = true): string =>
    blocking
      ? ctl.send(pxpRequest(AGENT, { transaction_id: transactionId, module, action, params }, true))
      : ctl.send(pxpRequest(AGENT, { transaction_id: transactionId, module, action, params, notify_outcome: true }, false));

  it('connects to /pcp2/agent with its certificate CN as pcp://<CN>/agent, within seconds', async () => {
    assert.ok(connectMs < 10_000, `connected in ${connectMs} ms`);
    assert.match(agent.log(), new RegExp(`Establishing the WebSocket connection with 'wss://127\\.0\\.0\\.1:${broker.port}/pcp2/agent'`));
    assert.match(agent.log(), /Successfully established a WebSocket connection with the PCP broker/);
    assert.deepEqual(await ctl.inventory(['pcp://*/agent']), [AGENT]);
    await broker.waitForLog((l) => l.msg === 'session opened' && l.uri === AGENT);
  });

  it('answers a blocking echo with {outcome}, correlated by data.transaction_id only', async () => {
    const tx = newTransactionId('echo');
    send(tx, 'echo', 'echo', { argument: 'hello' });
    const res = await inbox.reply(tx, PxpMessageType.blockingResponse);
    assertPxpAgentEnvelope(res);
    assert.deepEqual(res.data, { transaction_id: tx, results: { outcome: 'hello' } });
  });

  it('answers a blocking ping with request_hops (empty in v2: there are no debug chunks)', async () => {
    const tx = newTransactionId('ping');
    send(tx, 'ping', 'ping', {});
    const res = await inbox.reply(tx, PxpMessageType.blockingResponse);
    assertPxpAgentEnvelope(res);
    assert.deepEqual(res.data, { transaction_id: tx, results: { request_hops: [] } });
  });

  it("answers a status query for an unknown transaction with status 'unknown' and an _error in stdout", async () => {
    const tx = newTransactionId('status');
    send(tx, 'status', 'query', { transaction_id: 'no-such-transaction' });
    const res = await inbox.reply(tx, PxpMessageType.blockingResponse);
    assertPxpAgentEnvelope(res);
    const { results } = res.data as { results: { transaction_id: string; status: string; stdout: string } };
    assert.deepEqual(Object.keys(results).sort(), ['status', 'stdout', 'transaction_id']);
    assert.equal(results.transaction_id, 'no-such-transaction');
    assert.equal(results.status, 'unknown');
    assert.deepEqual(JSON.parse(results.stdout), { _error: { kind: 'puppetlabs.pxp-agent/execution-error', details: {}, msg: 'found no results directory' } });
  });

  it('refuses a request it cannot run with rpc_error_message {transaction_id, id: <request id>, description}', async () => {
    const tx = newTransactionId('nb-echo');
    const requestId = send(tx, 'echo', 'echo', { argument: 'x' }, false);
    const err = await inbox.reply(tx, PxpMessageType.errorMessage);
    assertPxpAgentEnvelope(err);
    assert.deepEqual(err.data, { transaction_id: tx, id: requestId, description: "the module 'echo' supports only blocking PXP requests" });
    const tx2 = newTransactionId('unknown-module');
    const id2 = send(tx2, 'nosuch', 'run', {});
    assert.deepEqual((await inbox.reply(tx2, PxpMessageType.errorMessage)).data, { transaction_id: tx2, id: id2, description: 'unknown module: nosuch' });
  });

  it('runs a non-blocking task: provisional response, then {exitcode, stdout} (stderr only when there is some); status query reports it', async () => {
    const body = '#!/bin/sh\nprintf "stdin=%s\\n" "$(cat)"\nprintf "env=%s\\n" "$PT_message"\n';
    const file = files.add('/puppet/v3/file_content/tasks/sample/echo.sh', 'echo.sh', body);
    const tx = newTransactionId('task');
    send(tx, 'task', 'run', { task: 'sample::echo', input: { message: 'hello' }, files: [file] }, false);

    const provisional = await inbox.reply(tx, PxpMessageType.provisionalResponse);
    assertPxpAgentEnvelope(provisional);
    assert.deepEqual(provisional.data, { transaction_id: tx });

    const outcome = await inbox.reply(tx, PxpMessageType.nonBlockingResponse, 30_000);
    assertPxpAgentEnvelope(outcome);
    assert.deepEqual(outcome.data, {
      transaction_id: tx,
      results: { exitcode: 0, stdout: 'stdin={"message":"hello","_task":"sample::echo"}\nenv=hello\n' },
    });
    assert.deepEqual(files.requests.at(-1), { path: '/puppet/v3/file_content/tasks/sample/echo.sh?environment=production', cn: NAME });

    const stx = newTransactionId('status');
    send(stx, 'status', 'query', { transaction_id: tx });
    const status = await inbox.reply(stx, PxpMessageType.blockingResponse);
    assertPxpAgentEnvelope(status);
    assert.deepEqual(status.data, {
      transaction_id: stx,
      results: { transaction_id: tx, status: 'success', exitcode: 0, stdout: 'stdin={"message":"hello","_task":"sample::echo"}\nenv=hello\n' },
    });
  });

  it("reports a failing task with its exit code and stderr, and status 'failure'", async () => {
    const file = files.add('/puppet/v3/file_content/tasks/sample/fail.sh', 'fail.sh', '#!/bin/sh\necho out\necho oops >&2\nexit 3\n');
    const tx = newTransactionId('task-fail');
    // Input by environment only: this task never reads stdin, and pxp-agent 1.15.23's
    // execution_wrapper, writing to it, can die of SIGPIPE (exit code 13, no output).
    send(tx, 'task', 'run', { task: 'sample::fail', input: {}, input_method: 'environment', files: [file] }, false);
    await inbox.reply(tx, PxpMessageType.provisionalResponse);
    const outcome = await inbox.reply(tx, PxpMessageType.nonBlockingResponse, 30_000);
    assert.deepEqual(outcome.data, { transaction_id: tx, results: { exitcode: 3, stdout: 'out\n', stderr: 'oops\n' } });
    const stx = newTransactionId('status');
    send(stx, 'status', 'query', { transaction_id: tx });
    assert.deepEqual((await inbox.reply(stx, PxpMessageType.blockingResponse)).data, {
      transaction_id: stx,
      results: { transaction_id: tx, status: 'failure', exitcode: 3, stdout: 'out\n', stderr: 'oops\n' },
    });
  });

  it("has no 'stop' action: task stop is an unknown action", async () => {
    const tx = newTransactionId('stop');
    const id = send(tx, 'task', 'stop', { transaction_id: 'whatever' });
    assert.deepEqual((await inbox.reply(tx, PxpMessageType.errorMessage)).data, { transaction_id: tx, id, description: "unknown action 'stop' for module 'task'" });
  });

  it('reconnects on its own after the broker restarts on the same port', async () => {
    const port = broker.port;
    await ctl.stop();
    await broker.stop();
    await agent.waitForLog(/WebSocket on close event|WebSocket on fail event/, REPLY_TIMEOUT_MS);
    broker = await startBrokerProcess({ pki, logLevel: 'info', port });
    // The connection monitor notices every ping-interval (6 s here; 120 s by default).
    await agent.waitForLogCount(/Successfully established a WebSocket connection with the PCP broker/, 2, 30_000);
    await broker.waitForLog((l) => l.msg === 'session opened' && l.uri === AGENT);
    ctl = await startController(pki, [`wss://127.0.0.1:${port}`]);
    inbox = new Inbox(ctl);
    const tx = newTransactionId('echo-again');
    send(tx, 'echo', 'echo', { argument: 'back' });
    assert.deepEqual((await inbox.reply(tx, PxpMessageType.blockingResponse)).data, { transaction_id: tx, results: { outcome: 'back' } });
  });
});

/** A TLS server that records the WebSocket upgrade requests it gets and refuses them with `status`. */
async function upgradeRecorder(pki: TestPki, status: number): Promise<{ server: Server; port: number; requests: { url: string; headers: Record<string, unknown> }[] }> {
  const requests: { url: string; headers: Record<string, unknown> }[] = [];
  const server = createServer({ ca: readFileSync(pki.ca), cert: readFileSync(pki.cert('broker')), key: readFileSync(pki.key('broker')), requestCert: true });
  server.on('upgrade', (req, socket) => {
    requests.push({ url: req.url ?? '', headers: { ...req.headers } });
    socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, requests };
}

describe('pxp-agent 1.15.23: the WebSocket paths it asks for', { skip }, () => {
  let pki: TestPki;
  const agents: PxpAgentProcess[] = [];
  const servers: Server[] = [];

  before(async () => {
    pki = await makePki([]);
  });
  after(async () => {
    for (const a of agents) await a.stop();
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    pki?.remove();
  });

  for (const [version, expected] of [['1', '/pcp/'], ['2', '/pcp2/agent']] as const) {
    it(`with pcp-version ${version} and broker-ws-uris .../${version === '1' ? 'pcp' : 'pcp2'}/ it requests ${expected}, and retries after a refusal`, async () => {
      const rec = await upgradeRecorder(pki, 501);
      servers.push(rec.server);
      const agent = await startPxpAgent({ pki, name: `paths-v${version}`, brokerUris: [pxpBrokerUri(rec.port, version)], pcpVersion: version, waitConnected: false });
      agents.push(agent);
      await agent.waitForLog(/Failed to establish a WebSocket connection; retrying in \d+ seconds/, 30_000);
      assert.equal(rec.requests[0]?.url, expected);
      assert.equal(rec.requests[0]?.headers.upgrade, 'websocket');
      await agent.stop();
    });
  }
});
