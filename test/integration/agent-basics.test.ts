// The agent's PXP behaviour through a real broker: blocking and non-blocking requests, echo,
// ping, facts, status, and the errors for bad requests.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import { agentDirs, startAgentProcess, startController, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';

const AGENT = 'pcp://node1/agent';
let seq = 0;
const tx = () => `basics-${process.pid}-${++seq}`;

describe('agent: PXP requests and replies', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  let agent: AgentProcess;
  let ctl: PcpClient;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1']);
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    const dirs = agentDirs();
    mkdirSync(join(dirs.root, 'facts.d'));
    writeFileSync(join(dirs.root, 'facts.d', 'site.json'), JSON.stringify({ datacenter: 'ams1' }));
    agent = await startAgentProcess({
      pki,
      name: 'node1',
      brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`],
      dirs,
      config: { 'facts-dir': join(dirs.root, 'facts.d'), environment: 'staging' },
    });
    ctl = await startController(pki, [`wss://127.0.0.1:${broker.port}`]);
  });
  after(async () => {
    await ctl?.stop();
    await agent?.stop();
    await broker?.stop();
    pki?.remove();
  });

  it('connects as pcp://<CN>/agent', async () => {
    assert.deepEqual(await ctl.inventory(['pcp://*/agent']), [AGENT]);
  });

  it('answers a blocking echo with {outcome}', async () => {
    const res = await ctl.request(pxpRequest(AGENT, { transaction_id: tx(), module: 'echo', action: 'echo', params: { argument: 'hi there' } }, true));
    assert.equal(res.message_type, 'http://puppetlabs.com/rpc_blocking_response');
    assert.deepEqual((res.data as { results: unknown }).results, { outcome: 'hi there' });
  });

  it('answers a non-blocking request with a provisional response at once, then the outcome', async () => {
    const id = tx();
    const outcome = ctl.expectTransaction(id, 10_000);
    const first = await ctl.request(pxpRequest(AGENT, { transaction_id: id, module: 'echo', action: 'echo', params: { argument: 'later' }, notify_outcome: true }, false));
    assert.equal(first.message_type, 'http://puppetlabs.com/rpc_provisional_response');
    assert.deepEqual(first.data, { transaction_id: id });
    const last = await outcome;
    assert.equal(last.message_type, 'http://puppetlabs.com/rpc_non_blocking_response');
    assert.deepEqual((last.data as { results: unknown }).results, { outcome: 'later' });
    const status = await ctl.request(pxpRequest(AGENT, { transaction_id: tx(), module: 'status', action: 'query', params: { transaction_id: id } }, true));
    const results = (status.data as { results: Record<string, unknown> }).results;
    assert.equal(results.status, 'success');
    assert.deepEqual(JSON.parse(results.stdout as string), { outcome: 'later' });
  });

  it('answers ping with request_hops', async () => {
    const res = await ctl.request(pxpRequest(AGENT, { transaction_id: tx(), module: 'ping', action: 'ping', params: {} }, true));
    assert.deepEqual((res.data as { results: unknown }).results, { request_hops: [] });
  });

  it('reports facts of the host, the environment and facts-dir files', async () => {
    const res = await ctl.request(pxpRequest(AGENT, { transaction_id: tx(), module: 'facts', action: 'get' }, true));
    const facts = (res.data as { results: Record<string, unknown> }).results;
    assert.equal(typeof facts.hostname, 'string');
    assert.equal(facts.environment, 'staging');
    assert.equal(facts.datacenter, 'ams1');
    assert.ok((facts.processors as { count: number }).count >= 1);
    assert.ok((facts.memory as { total_bytes: number }).total_bytes > 0);
    assert.equal((facts.kernel as { name: string }).name, 'Linux');
  });

  it('reports an unknown transaction as unknown', async () => {
    const res = await ctl.request(pxpRequest(AGENT, { transaction_id: tx(), module: 'status', action: 'query', params: { transaction_id: 'never-seen' } }, true));
    assert.deepEqual((res.data as { results: unknown }).results, { transaction_id: 'never-seen', status: 'unknown' });
  });

  const refusals: [string, { module: string; action: string; params?: object }, RegExp][] = [
    ['an unknown module', { module: 'nope', action: 'x' }, /unknown module 'nope'; this agent has: command, echo, facts, ping, puppet, pxp-module-puppet, status, task/],
    ['an unknown action', { module: 'echo', action: 'shout' }, /unknown action 'shout' of module 'echo'/],
    ['params failing the schema', { module: 'echo', action: 'echo', params: { argument: 42 } }, /invalid params for echo echo: params\.argument must be string/],
    ['unknown params', { module: 'echo', action: 'echo', params: { argument: 'a', extra: 1 } }, /unknown key 'extra'/],
    ['task params without files', { module: 'task', action: 'run', params: { task: 'x::y', input: {} } }, /required property 'files'/],
  ];
  for (const [what, data, expected] of refusals) {
    it(`answers ${what} with rpc_error_message naming it`, async () => {
      const id = tx();
      const res = await ctl.request(pxpRequest(AGENT, { transaction_id: id, ...data }, true));
      assert.equal(res.message_type, 'http://puppetlabs.com/rpc_error_message');
      const d = res.data as { transaction_id: string; id: string; description: string };
      assert.equal(d.transaction_id, id);
      assert.equal(d.id, res.in_reply_to);
      assert.match(d.description, expected);
    });
  }

  it('answers unparsable request data with a PCP error_message', async () => {
    for (const data of [undefined, 'text', { module: 'echo', action: 'echo' }, { transaction_id: '../etc', module: 'echo', action: 'echo' }]) {
      const err = await ctl.request({ message_type: 'http://puppetlabs.com/rpc_blocking_request', target: AGENT, ...(data === undefined ? {} : { data }) }).then(
        () => assert.fail('the agent accepted it'),
        (e: { code: string; message: string }) => e,
      );
      assert.equal(err.code, 'pcp-client/error-message', JSON.stringify(data));
      assert.match(err.message, /rpc_blocking_request data/);
    }
  });
});
