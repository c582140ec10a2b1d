// The PCP client's pure parts: session URLs per PCP version, v1 framing through the v2 envelope,
// the association's outcome, v1 inventory changes, and the classification of the broker's refusals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientErrorCode, PcpClientError, replyError, sessionUrl } from '../../protocol/client/broker-uri.ts';
import { associationOutcome } from '../../protocol/client/v1-association.ts';
import { decodeV1Frame, decodeV2Frame, encodeV1Frame, inventoryChanges } from '../../protocol/client/wire.ts';
import { ProtocolErrorCode } from '../../protocol/errors.ts';
import { BrokerMessageType } from '../../protocol/message-types.ts';
import { decodeV1, encodeV1, v1JsonData } from '../../protocol/pcp-v1.ts';
import { associateResponse, errorMessageV1, ttlExpired } from '../../protocol/pcp-v1-broker.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { PxpMessageType } from '../../protocol/pxp.ts';

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as PcpClientError).code;
  }
  return 'no error';
}

const SELF = 'pcp://node1/agent';

describe('sessionUrl', () => {
  it('completes v2 URIs with the client type, as before', () => {
    assert.equal(sessionUrl('wss://b:8142/pcp2/', 'agent', '2'), 'wss://b:8142/pcp2/agent');
    assert.equal(sessionUrl('wss://b:8142', 'controller'), 'wss://b:8142/pcp2/controller');
    assert.equal(sessionUrl('wss://b:8142/pcp/v2.0', 'agent', '2'), 'wss://b:8142/pcp/v2.0/agent');
    assert.equal(sessionUrl('wss://b:8142/pcp2/web', 'agent', '2'), 'wss://b:8142/pcp2/web');
  });

  it('points v1 sessions at /pcp/, where the type travels in the association, as pxp-agent does', () => {
    assert.equal(sessionUrl('wss://b:8142', 'agent', '1'), 'wss://b:8142/pcp/');
    assert.equal(sessionUrl('wss://b:8142/', 'agent', '1'), 'wss://b:8142/pcp/');
    assert.equal(sessionUrl('wss://b:8142/pcp', 'agent', '1'), 'wss://b:8142/pcp/');
    assert.equal(sessionUrl('wss://b:8142/pcp/', 'controller', '1'), 'wss://b:8142/pcp/');
  });

  it('keeps the /pcp/v1.0 paths of a v1 session', () => {
    assert.equal(sessionUrl('wss://b:8142/pcp/v1.0', 'agent', '1'), 'wss://b:8142/pcp/v1.0');
    assert.equal(sessionUrl('wss://b:8142/pcp/v1.0/', 'agent', '1'), 'wss://b:8142/pcp/v1.0/');
    assert.equal(sessionUrl('wss://b:8142/pcp/v1.0/agent', 'agent', '1'), 'wss://b:8142/pcp/v1.0/agent');
  });

  it('refuses a path of the other PCP version, naming the mismatch', () => {
    for (const [uri, version] of [
      ['wss://b:8142/pcp2/', '1'],
      ['wss://b:8142/pcp2/agent', '1'],
      ['wss://b:8142/pcp/v2.0/', '1'],
      ['wss://b:8142/pcp/', '2'],
      ['wss://b:8142/pcp', '2'],
      ['wss://b:8142/pcp/v1.0/agent', '2'],
    ] as const) {
      let err: PcpClientError | undefined;
      try {
        sessionUrl(uri, 'agent', version);
      } catch (e) {
        err = e as PcpClientError;
      }
      assert.equal(err?.code, ClientErrorCode.badBrokerUri, uri);
      assert.match(err.message, new RegExp(`PCP v${version === '1' ? 2 : 1} endpoint but pcp-version is ${version}`), uri);
      assert.deepEqual(err.details, { pathVersion: version === '1' ? '2' : '1', pcpVersion: version });
    }
  });

  it('refuses a v1 path naming another client type, plain ws and garbage', () => {
    assert.equal(codeOf(() => sessionUrl('wss://b:8142/pcp/v1.0/controller', 'agent', '1')), ClientErrorCode.badBrokerUri);
    assert.equal(codeOf(() => sessionUrl('ws://b:8142/pcp/', 'agent', '1')), ClientErrorCode.badBrokerUri);
    assert.equal(codeOf(() => sessionUrl('not a url', 'agent', '1')), ClientErrorCode.badBrokerUri);
  });
});

describe('client wire', () => {
  it('sends v1 frames from its own URI, expiring after the TTL, and reads them back as v2 envelopes', () => {
    const env: EnvelopeV2 = { id: 'm1', message_type: PxpMessageType.blockingRequest, target: 'pcp://node2/agent', data: { transaction_id: 't1', module: 'echo', action: 'echo' } };
    const frame = encodeV1Frame(env, SELF, 60_000, Date.parse('2024-01-01T00:00:00Z'));
    const msg = decodeV1(frame);
    assert.deepEqual(msg.envelope, { id: 'm1', message_type: env.message_type, expires: '2024-01-01T00:01:00.000Z', targets: ['pcp://node2/agent'], sender: SELF });
    assert.deepEqual(v1JsonData(msg), env.data);
    assert.deepEqual(decodeV1Frame(frame, true, 'pcp://node2/agent', 64), { ...env, sender: SELF });
  });

  it('reads a v1 error_message as an error naming the message it answers', () => {
    const frame = encodeV1(errorMessageV1(SELF, 'no such target', 'req-1'));
    const env = decodeV1Frame(frame, true, SELF, 64);
    assert.equal(env.message_type, BrokerMessageType.errorMessage);
    assert.equal(env.in_reply_to, 'req-1');
    assert.equal(env.data, 'no such target');
    assert.equal(replyError(env)?.code, ClientErrorCode.errorMessage);
  });

  it('refuses frames of the wrong kind and undecodable ones with protocol error codes', () => {
    const v1 = encodeV1(ttlExpired(SELF, 'x'));
    assert.equal(codeOf(() => decodeV1Frame(Buffer.from('{}'), false, SELF, 64)), ProtocolErrorCode.textFrame);
    assert.equal(codeOf(() => decodeV1Frame(Buffer.from([2, 1, 0, 0, 0, 0]), true, SELF, 64)), ProtocolErrorCode.badVersion);
    assert.equal(codeOf(() => decodeV1Frame(v1.subarray(0, v1.length - 3), true, SELF, 64)), ProtocolErrorCode.malformedChunks);
    assert.equal(codeOf(() => decodeV2Frame(v1, true, 64)), ProtocolErrorCode.binaryFrame);
    assert.equal(codeOf(() => decodeV2Frame(Buffer.from('nope'), false, 64)), ProtocolErrorCode.invalidJson);
  });

  it('classifies ttl_expired and unauthorized replies, and lets other replies through', () => {
    assert.equal(replyError({ id: 'a', message_type: BrokerMessageType.ttlExpired, data: { id: 'r' } })?.code, ClientErrorCode.ttlExpired);
    assert.equal(replyError({ id: 'a', message_type: BrokerMessageType.unauthorized })?.code, ClientErrorCode.unauthorized);
    assert.equal(replyError({ id: 'a', message_type: PxpMessageType.blockingResponse }), undefined);
  });

  it('derives v1 inventory changes from two answers', () => {
    assert.deepEqual(inventoryChanges(new Set(['pcp://a/agent', 'pcp://b/agent']), ['pcp://b/agent', 'pcp://c/agent']), [
      { client: 'pcp://c/agent', change: 1 },
      { client: 'pcp://a/agent', change: -1 },
    ]);
    assert.deepEqual(inventoryChanges(new Set(['pcp://a/agent']), ['pcp://a/agent']), []);
  });
});

describe('v1 association outcome', () => {
  const read = (frame: Buffer) => decodeV1Frame(frame, true, SELF, 64);

  it('is success for the associate_response naming the request', () => {
    assert.equal(associationOutcome(read(encodeV1(associateResponse(SELF, 'req', true))), 'req'), true);
  });

  it('ignores answers to other requests and other messages', () => {
    assert.equal(associationOutcome(read(encodeV1(associateResponse(SELF, 'other', false, 'no'))), 'req'), undefined);
    assert.equal(associationOutcome(read(encodeV1(errorMessageV1(SELF, 'x', 'other'))), 'req'), undefined);
    assert.equal(associationOutcome(read(encodeV1(ttlExpired(SELF, 'other'))), 'req'), undefined);
    assert.equal(associationOutcome({ id: 'i', message_type: PxpMessageType.blockingRequest, sender: 'pcp://c/controller' }, 'req'), undefined);
  });

  it('is refused with the broker reason, or an error for error_message, ttl_expired and a malformed response', () => {
    const refused = associationOutcome(read(encodeV1(associateResponse(SELF, 'req', false, 'not_a_controller'))), 'req');
    assert.ok(refused instanceof PcpClientError);
    assert.equal(refused.code, ClientErrorCode.refused);
    assert.equal(refused.details?.reason, 'not_a_controller');
    assert.match(refused.message, /not_a_controller/);
    assert.equal((associationOutcome(read(encodeV1(errorMessageV1(SELF, 'bad', 'req'))), 'req') as PcpClientError).code, ClientErrorCode.errorMessage);
    assert.equal((associationOutcome(read(encodeV1(ttlExpired(SELF, 'req'))), 'req') as PcpClientError).code, ClientErrorCode.ttlExpired);
    const malformed = associationOutcome({ id: 'i', message_type: BrokerMessageType.associateResponse, data: { id: 'req' } }, 'req');
    assert.equal((malformed as PcpClientError).code, ClientErrorCode.refused);
  });
});
