// A certificate revoked by the CA (its CRL given as `ssl-crl-path`) is refused by the broker's
// upgrade and by the orchestrator's task file downloads, while the CA's other certificates work.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { makeCodedir, startOrchestratorProcess, stopStack, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { expectRefused, identity, TestClient } from '../helpers/pcp-client.ts';
import { makePki, writeRevocationList, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const TASK_FILE = '/puppet/v3/file_content/tasks/sample/echo.sh?environment=production';

describe('revoked certificates (ssl-crl-path)', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess;

  before(async () => {
    pki = await makePki(['node1', 'revoked1']);
    const crl = await writeRevocationList(pki, ['revoked1']);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info', config: { 'ssl-crl-path': crl } });
    orch = await startOrchestratorProcess({ pki, brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], redisUrl: redis.url, codedir: makeCodedir(), config: { 'ssl-crl-path': crl } });
  });
  after(() => stopStack({ agents: [], orch, broker, redis, pki }));

  it('the broker refuses a revoked agent with 403 naming the reason, and takes the others', async () => {
    const { status, body } = await expectRefused(broker.url(), identity(pki, 'revoked1'));
    assert.equal(status, 403);
    assert.match(body, /CERT_REVOKED/);
    const ok = await TestClient.connect(broker.url(), identity(pki, 'node1'));
    await ok.close();
  });

  it('the orchestrator serves task files to a valid agent certificate only', async () => {
    const agent = new Agent({ keepAlive: false });
    try {
      const as = (name: string) => orch.api(TASK_FILE, { token: undefined, agent, cert: readFileSync(pki.cert(name)), key: readFileSync(pki.key(name)) });
      const revoked = await as('revoked1');
      assert.equal(revoked.status, 403, revoked.text);
      const valid = await as('node1');
      assert.equal(valid.status, 200, valid.text);
    } finally {
      agent.destroy();
    }
  });
});
