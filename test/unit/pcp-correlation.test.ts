// The PCP client's correlation of received messages with their waits, without sockets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { ClientErrorCode, PcpClientError } from '../../protocol/client/broker-uri.ts';
import { Correlation } from '../../protocol/client/correlation.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { PxpMessageType } from '../../protocol/pxp.ts';

const log = pino({ level: 'silent' });
const env = (e: Partial<EnvelopeV2>): EnvelopeV2 => ({ id: 'x', message_type: 'm', ...e }) as EnvelopeV2;
const pxpRequest = (id: string, tx: string, target = 'pcp://web1/agent') =>
  env({ id, target, message_type: PxpMessageType.nonBlockingRequest, data: { transaction_id: tx, module: 'task', action: 'run', params: {} } });

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof PcpClientError && e.code === code);
}

describe('PCP client correlation', () => {
  it('answers a request by in_reply_to, and rejects it with a typed error for a broker refusal', async () => {
    const c = new Correlation(log);
    const ok = c.expectReply(env({ id: 'a' }), 5_000);
    assert.equal(c.deliver(env({ id: 'r1', in_reply_to: 'a', message_type: 'reply' })), true);
    assert.equal((await ok).id, 'r1');
    const refused = c.expectReply(env({ id: 'b' }), 5_000);
    c.deliver(env({ id: 'r2', in_reply_to: 'b', message_type: 'http://puppetlabs.com/unauthorized' }));
    await rejectsWith(refused, ClientErrorCode.unauthorized);
    assert.equal(c.deliver(env({ id: 'r3', in_reply_to: 'a', message_type: 'reply' })), false); // already answered
  });

  it("answers a PXP request by its target's reply with the transaction id (no in_reply_to, as Puppet's agent sends)", async () => {
    const c = new Correlation(log);
    const p = c.expectReply(pxpRequest('q1', 'tx1'), 5_000);
    // The same transaction from another sender does not answer it.
    assert.equal(c.deliver(env({ id: 'n0', sender: 'pcp://web2/agent', message_type: PxpMessageType.provisionalResponse, data: { transaction_id: 'tx1' } })), false);
    assert.equal(c.deliver(env({ id: 'n1', sender: 'pcp://web1/agent', message_type: PxpMessageType.provisionalResponse, data: { transaction_id: 'tx1' } })), true);
    assert.equal((await p).id, 'n1');
  });

  it('ends a transaction with its non-blocking response, and an aborted wait with a typed error', async () => {
    const c = new Correlation(log);
    const t = c.expectTransaction('tx2', 5_000);
    c.deliver(env({ id: 'n2', sender: 'pcp://web1/agent', message_type: PxpMessageType.nonBlockingResponse, data: { transaction_id: 'tx2', results: {} } }));
    assert.equal((await t).id, 'n2');
    const ac = new AbortController();
    const aborted = c.expectTransaction('tx3', 5_000, ac.signal);
    ac.abort();
    await rejectsWith(aborted, ClientErrorCode.aborted);
  });

  it('times a wait out with a typed error naming it', async () => {
    const c = new Correlation(log);
    await assert.rejects(c.expectReply(env({ id: 'slow', message_type: 'ping' }), 5), (e: unknown) => e instanceof PcpClientError && e.code === ClientErrorCode.timeout && /ping/.test(e.message));
  });

  it('on disconnect rejects requests but keeps transactions; on stop rejects everything', async () => {
    const c = new Correlation(log);
    const req = c.expectReply(pxpRequest('q4', 'tx4'), 5_000);
    const tx = c.expectTransaction('tx4', 5_000);
    c.rejectReplies(new PcpClientError(ClientErrorCode.notConnected, 'gone'));
    await rejectsWith(req, ClientErrorCode.notConnected);
    c.rejectAll(new PcpClientError(ClientErrorCode.stopped, 'stopped'));
    await rejectsWith(tx, ClientErrorCode.stopped);
  });
});
