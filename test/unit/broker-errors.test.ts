// The broker's error codes: one catalogue in protocol/ that the broker sends and the PCP client
// reads, in PCP v2 (envelope `code`, data a string) and PCP v1 (data `{id?, description, code}`),
// and the run start's classification by code, never by the description.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startRefusal } from '../../orchestrator/pcp/pxp-runner.ts';
import { BrokerErrorCode, brokerCodeOf, brokerErrorCode, isBrokerErrorCode, RefusalReason, refusalForProtocolError } from '../../protocol/broker-errors.ts';
import { ClientErrorCode, PcpClientError, replyError } from '../../protocol/client/broker-uri.ts';
import { decodeV1Frame } from '../../protocol/client/wire.ts';
import { ProtocolErrorCode } from '../../protocol/errors.ts';
import { BrokerMessageType } from '../../protocol/message-types.ts';
import { encodeV1 } from '../../protocol/pcp-v1.ts';
import { errorMessageV1, isErrorMessageV1Data } from '../../protocol/pcp-v1-broker.ts';
import { v1ToV2, v2ToV1 } from '../../protocol/pcp-translate.ts';
import { decodeV2, encodeV2, type EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { BROKER_URI } from '../../protocol/uri.ts';
import { RefusalReason as BrokerRefusalReason } from '../../broker/errors.ts';

const ME = 'pcp://orch/controller';
const brokerError = (code?: string, sender: string = BROKER_URI): EnvelopeV2 => ({
  id: 'e1',
  message_type: BrokerMessageType.errorMessage,
  target: ME,
  sender,
  in_reply_to: 'm1',
  data: "target 'pcp://n1/agent' is not connected",
  ...(code === undefined ? {} : { code }),
});

describe('the broker error catalogue', () => {
  it('gives every refusal reason a distinct kebab-case wire code', () => {
    const codes = Object.values(RefusalReason).map(brokerErrorCode);
    assert.equal(new Set(codes).size, Object.values(RefusalReason).length);
    for (const c of codes) assert.match(c, /^[a-z]+(-[a-z]+)*$/);
    assert.equal(brokerErrorCode(RefusalReason.notConnected), 'target-not-connected');
    assert.equal(brokerErrorCode(RefusalReason.unauthorized), 'unauthorized');
    assert.equal(brokerErrorCode(RefusalReason.invalidEnvelope), 'invalid-envelope');
    assert.deepEqual(new Set(codes), new Set(Object.values(BrokerErrorCode)));
  });

  it('is the one the broker uses (broker/errors.ts re-exports it)', () => {
    assert.equal(BrokerRefusalReason, RefusalReason);
    assert.equal(refusalForProtocolError(ProtocolErrorCode.tooDeep), RefusalReason.tooDeep);
    assert.equal(refusalForProtocolError('anything else'), RefusalReason.invalidEnvelope);
  });

  it('knows its codes and nothing else', () => {
    assert.equal(isBrokerErrorCode('target-not-connected'), true);
    assert.equal(isBrokerErrorCode('not_connected'), false);
    assert.equal(isBrokerErrorCode(42), false);
    assert.equal(isBrokerErrorCode(undefined), false);
  });

  it("takes a code only from the broker's own error_message", () => {
    assert.equal(brokerCodeOf(brokerError('target-not-connected')), 'target-not-connected');
    assert.equal(brokerCodeOf({ code: 'unauthorized' }), 'unauthorized', 'a v2 message without sender comes from the broker');
    assert.equal(brokerCodeOf(brokerError('target-not-connected', 'pcp://evil/agent')), undefined, 'another client cannot pose as the broker');
    assert.equal(brokerCodeOf(brokerError('no-such-code')), undefined);
    assert.equal(brokerCodeOf(brokerError()), undefined, 'an older broker sends none');
  });
});

describe('the code on the wire', () => {
  it('PCP v2: an envelope field beside in_reply_to; the data stays the description string', () => {
    const env = decodeV2(encodeV2(brokerError('target-not-connected')));
    assert.equal(env.code, 'target-not-connected');
    assert.equal(typeof env.data, 'string');
  });

  it('PCP v1: in the error data beside id and description, both ways through the translation', () => {
    const v1 = v2ToV1(brokerError('target-not-connected'), '2030-01-01T00:00:00.000Z');
    const data = JSON.parse(String(v1.data)) as unknown;
    assert.deepEqual(data, { description: "target 'pcp://n1/agent' is not connected", id: 'm1', code: 'target-not-connected' });
    assert.equal(isErrorMessageV1Data(data), true);
    const back = v1ToV2(v1.envelope, ME, data);
    assert.equal(back.code, 'target-not-connected');
    assert.equal(back.in_reply_to, 'm1');
    assert.equal(back.data, "target 'pcp://n1/agent' is not connected");

    const built = errorMessageV1(ME, 'not associated', 'm2', Date.now(), BrokerErrorCode.notAssociated);
    const read = decodeV1Frame(encodeV1(built), true, ME, 64);
    assert.deepEqual([read.code, read.in_reply_to, read.data], ['not-associated', 'm2', 'not associated']);
  });

  it('PCP v1 error data without a code (pxp-agent, older brokers) reads as before', () => {
    const read = decodeV1Frame(encodeV1(errorMessageV1(ME, 'no', 'm3')), true, ME, 64);
    assert.equal(read.code, undefined);
    assert.equal(read.data, 'no');
  });
});

describe("the client's typed refusal and the run start's classification", () => {
  it("exposes the broker's code on PcpClientError", () => {
    const err = replyError(brokerError('target-not-connected'));
    assert.ok(err instanceof PcpClientError);
    assert.equal(err.code, ClientErrorCode.errorMessage);
    assert.equal(err.brokerCode, 'target-not-connected');
    const denied = replyError({ id: 'u', message_type: BrokerMessageType.unauthorized, sender: BROKER_URI, in_reply_to: 'm1' });
    assert.equal(denied?.brokerCode, 'unauthorized');
  });

  it('reads an absent target by its code, whatever the text', () => {
    const coded = replyError({ ...brokerError('target-not-connected'), data: 'la cible est absente' });
    assert.deepEqual(startRefusal(coded), { kind: 'not-connected' });
    assert.deepEqual(startRefusal(replyError(brokerError('target-slow-consumer'))), { kind: 'not-connected' });
  });

  it('does not read "not connected" in the text as an absent target', () => {
    assert.equal(startRefusal(replyError(brokerError())), undefined, 'no code: the wait finds out');
    assert.equal(startRefusal(replyError(brokerError('invalid-data'))), undefined);
    assert.equal(startRefusal(new Error('target is not connected')), undefined);
  });

  it('reads unauthorized (v2 message or v1 error code) as refused, and our own session down as not connected', () => {
    assert.equal(startRefusal(replyError(brokerError('unauthorized')))?.kind, 'agent-error');
    assert.equal(startRefusal(new PcpClientError(ClientErrorCode.unauthorized, 'x'))?.kind, 'agent-error');
    assert.deepEqual(startRefusal(new PcpClientError(ClientErrorCode.notConnected, 'x')), { kind: 'not-connected' });
    assert.equal(startRefusal(new PcpClientError(ClientErrorCode.timeout, 'x')), undefined);
  });
});
