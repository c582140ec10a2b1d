// Point 9 of the broker: /status/v1/services and /metrics on the broker port.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fetchInsecure, metricValue, startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { identity, TestClient } from '../helpers/pcp-client.ts';

describe('broker status and metrics', () => {
  let pki: TestPki;
  let broker: BrokerProcess;

  before(async () => {
    pki = await makePki(['orchestrator', 'node1']);
    broker = await startBrokerProcess({ pki });
  });
  after(async () => {
    await broker?.stop();
    pki?.remove();
  });

  it('reports state running at /status/v1/services', async () => {
    const body = JSON.parse(await fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services`));
    assert.equal(body['broker-service'].state, 'running');
    assert.equal(body['broker-service'].status.sessions, 0);
    const one = JSON.parse(await fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services/broker-service`));
    assert.equal(one.state, 'running');
  });

  it('counts sessions, routed and refused messages and routing latency at /metrics', async () => {
    const ctl = await TestClient.connect(broker.url('/pcp2/controller'), identity(pki, 'orchestrator'));
    const agent = await TestClient.connect(broker.url(), identity(pki, 'node1'));
    try {
      let m = await broker.metrics();
      assert.equal(metricValue(m, 'baton_broker_sessions', { type: 'agent' }), 1);
      assert.equal(metricValue(m, 'baton_broker_sessions', { type: 'controller' }), 1);
      for (let i = 0; i < 3; i++) {
        const id = ctl.send({ message_type: 'http://puppetlabs.com/rpc_blocking_request', target: 'pcp://node1/agent' });
        await agent.next((e) => e.id === id);
      }
      await ctl.reply(ctl.send({ message_type: 'x', target: 'pcp://ghost/agent' }));
      ctl.sendText('not json');
      await ctl.next((e) => e.message_type === 'http://puppetlabs.com/error_message');
      m = await broker.metrics();
      assert.equal(metricValue(m, 'baton_broker_messages_routed_total'), 3);
      assert.equal(metricValue(m, 'baton_broker_messages_refused_total', { reason: 'not_connected' }), 1);
      assert.equal(metricValue(m, 'baton_broker_messages_refused_total', { reason: 'invalid_json' }), 1);
      assert.equal(metricValue(m, 'baton_broker_routing_seconds_count'), 3);
      assert.match(m, /baton_broker_routing_seconds_bucket\{le="0\.001"\} \d+/);
      const status = JSON.parse(await fetchInsecure(`https://127.0.0.1:${broker.port}/status/v1/services`));
      assert.equal(status['broker-service'].status.sessions, 2);
    } finally {
      await ctl.close();
      await agent.close();
    }
  });

  it('answers other paths with 404', async () => {
    assert.match(await fetchInsecure(`https://127.0.0.1:${broker.port}/nope`), /not found/);
  });
});
