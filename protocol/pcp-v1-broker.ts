// The broker's own PCP v1 messages (pcp-specifications 1.0): association, errors, TTL expiry,
// destination reports (inventory requests and answers are v2's, translated). Pure builders and decoders over the v1 codec.
import type { FromSchema } from 'json-schema-to-ts';
import { associateResponseDataSchema, errorMessageV1DataSchema } from '../schemas/pcp.ts';
import type { BrokerErrorCode } from './broker-errors.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import { BrokerMessageType } from './message-types.ts';
import { expiresIn, type EnvelopeV1, type OutgoingV1 } from './pcp-v1.ts';
import { newMessageId } from './pcp-v2.ts';
import { BROKER_URI } from './uri.ts';
import { compile, describeErrors } from './validate.ts';

export type AssociateResponseData = FromSchema<typeof associateResponseDataSchema>;
export type ErrorMessageV1Data = FromSchema<typeof errorMessageV1DataSchema>;

const validateAssociateResponse = compile<AssociateResponseData>(associateResponseDataSchema);
const validateErrorData = compile<ErrorMessageV1Data>(errorMessageV1DataSchema);

/** Time to live of the broker's own v1 messages (`expires`). */
export const BROKER_V1_MESSAGE_TTL_MS = 60_000;

/** `target` undefined: a client not associated yet, whose URI is not known. */
function fromBroker(target: string | undefined, messageType: string, data: object, ttlMs: number, nowMs: number, sender: string = BROKER_URI): OutgoingV1 {
  const envelope: EnvelopeV1 = { id: newMessageId(), message_type: messageType, expires: expiresIn(ttlMs, nowMs), targets: target === undefined ? [] : [target], sender };
  return { envelope, data: JSON.stringify(data) };
}

export function associateRequest(sender: string, ttlMs: number, nowMs: number = Date.now()): OutgoingV1 {
  return {
    envelope: { id: newMessageId(), message_type: BrokerMessageType.associateRequest, expires: expiresIn(ttlMs, nowMs), targets: [BROKER_URI], sender },
  };
}

export function associateResponse(target: string | undefined, requestId: string, success: boolean, reason?: string, nowMs: number = Date.now()): OutgoingV1 {
  const data: AssociateResponseData = { id: requestId, success, ...(reason === undefined ? {} : { reason }) };
  return fromBroker(target, BrokerMessageType.associateResponse, data, BROKER_V1_MESSAGE_TTL_MS, nowMs);
}

/** Reads an `associate_response`'s data; throws `pcp/invalid-data`. */
export function decodeAssociateResponse(data: unknown): AssociateResponseData {
  if (!validateAssociateResponse(data)) throw new ProtocolError(ProtocolErrorCode.invalidData, describeErrors(validateAssociateResponse.errors, 'associate_response data'));
  return data;
}

/**
 * A v1 `error_message` (data `{id?, description, code?}`, `code` a BrokerErrorCode); `target` may be
 * unknown before association.
 */
export function errorMessageV1(target: string | undefined, description: string, causeId?: string, nowMs: number = Date.now(), code?: BrokerErrorCode): OutgoingV1 {
  const data: ErrorMessageV1Data = { description, ...(causeId === undefined ? {} : { id: causeId }), ...(code === undefined ? {} : { code }) };
  return fromBroker(target, BrokerMessageType.errorMessage, data, BROKER_V1_MESSAGE_TTL_MS, nowMs);
}

export function isErrorMessageV1Data(data: unknown): data is ErrorMessageV1Data {
  return validateErrorData(data);
}

export function ttlExpired(target: string | undefined, expiredId: string, nowMs: number = Date.now()): OutgoingV1 {
  return fromBroker(target, BrokerMessageType.ttlExpired, { id: expiredId }, BROKER_V1_MESSAGE_TTL_MS, nowMs);
}

export function destinationReport(target: string, messageId: string, targets: readonly string[], nowMs: number = Date.now()): OutgoingV1 {
  return fromBroker(target, BrokerMessageType.destinationReport, { id: messageId, targets }, BROKER_V1_MESSAGE_TTL_MS, nowMs);
}

