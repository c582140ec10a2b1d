// The broker's error catalogue, shared by the broker (which refuses) and the PCP client (which is
// refused): every reason a message is refused, as a metrics label (RefusalReason) and as the stable
// code the broker sends with its `error_message` (BrokerErrorCode). Callers branch on the code,
// never on the description. Pure.
//
// Where the code travels: PCP v2 keeps the `error_message` data a plain description string
// (pcp-specifications 2.0; cpp-pcp-client's v2 schema of it is a string), so the code is an
// envelope field `code` beside `in_reply_to`. PCP v1 carries it in the data, `{id?, description,
// code}`. Both are Baton's extensions, sent to controllers only: Puppet's pxp-agent drops
// messages with fields its schemas do not name (see broker/router.ts, withCode).
import { ProtocolErrorCode } from './errors.ts';
import { BROKER_URI } from './uri.ts';

/** Why the broker refused a message: the label of its `refused` metric (snake case). */
export const RefusalReason = {
  invalidJson: 'invalid_json',
  invalidEnvelope: 'invalid_envelope',
  invalidData: 'invalid_data',
  binaryFrame: 'binary_frame',
  /** Nested deeper than max-message-depth: refused before parsing. */
  tooDeep: 'too_deep',
  senderMismatch: 'sender_mismatch',
  wildcardTarget: 'wildcard_target',
  notConnected: 'not_connected',
  unauthorized: 'unauthorized',
  unknownMessageType: 'unknown_message_type',
  slowConsumer: 'slow_consumer',
  /** An unexpected exception while handling the message: contained to its session. */
  internalError: 'internal_error',
  /** PCP v1: a text frame (v1 messages are binary). */
  textFrame: 'text_frame',
  /** PCP v1: the version byte is not 1. */
  badVersion: 'bad_version',
  /** PCP v1: chunks that cannot be read. */
  malformedChunks: 'malformed_chunks',
  /** PCP v1: `expires` has passed; answered with ttl_expired. */
  ttlExpired: 'ttl_expired',
  /** PCP v1: a message other than associate_request before the association. */
  notAssociated: 'not_associated',
  /** Fabric: the directory of the fabric (Redis) could not be read in time. */
  fabricUnavailable: 'fabric_unavailable',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/**
 * The WebSocket upgrade header by which a client asks for error codes (value "1"). Only clients
 * that ask get them: Puppet's pxp-agent and pcp-client refuse envelopes and error data with a
 * field they do not know, so a broker error to them must stay as the specification has it.
 */
export const ERROR_CODES_HEADER = 'x-baton-error-codes';

/** The stable code of a broker `error_message` on the wire (kebab case). */
export const BrokerErrorCode = {
  invalidJson: 'invalid-json',
  invalidEnvelope: 'invalid-envelope',
  invalidData: 'invalid-data',
  binaryFrame: 'binary-frame',
  tooDeep: 'too-deep',
  senderMismatch: 'sender-mismatch',
  wildcardTarget: 'wildcard-target',
  /** The target has no session on this broker: nothing was delivered. */
  targetNotConnected: 'target-not-connected',
  unauthorized: 'unauthorized',
  unknownMessageType: 'unknown-message-type',
  /** The target did not read its messages and was disconnected: the message was not delivered. */
  targetSlowConsumer: 'target-slow-consumer',
  internalError: 'internal-error',
  textFrame: 'text-frame',
  badVersion: 'bad-version',
  malformedChunks: 'malformed-chunks',
  ttlExpired: 'ttl-expired',
  notAssociated: 'not-associated',
  fabricUnavailable: 'fabric-unavailable',
} as const;
export type BrokerErrorCode = (typeof BrokerErrorCode)[keyof typeof BrokerErrorCode];

const CODE_OF_REFUSAL: Readonly<Record<RefusalReason, BrokerErrorCode>> = {
  invalid_json: BrokerErrorCode.invalidJson,
  invalid_envelope: BrokerErrorCode.invalidEnvelope,
  invalid_data: BrokerErrorCode.invalidData,
  binary_frame: BrokerErrorCode.binaryFrame,
  too_deep: BrokerErrorCode.tooDeep,
  sender_mismatch: BrokerErrorCode.senderMismatch,
  wildcard_target: BrokerErrorCode.wildcardTarget,
  not_connected: BrokerErrorCode.targetNotConnected,
  unauthorized: BrokerErrorCode.unauthorized,
  unknown_message_type: BrokerErrorCode.unknownMessageType,
  slow_consumer: BrokerErrorCode.targetSlowConsumer,
  internal_error: BrokerErrorCode.internalError,
  text_frame: BrokerErrorCode.textFrame,
  bad_version: BrokerErrorCode.badVersion,
  malformed_chunks: BrokerErrorCode.malformedChunks,
  ttl_expired: BrokerErrorCode.ttlExpired,
  not_associated: BrokerErrorCode.notAssociated,
  fabric_unavailable: BrokerErrorCode.fabricUnavailable,
};

const BROKER_ERROR_CODES: ReadonlySet<string> = new Set(Object.values(BrokerErrorCode));

/** The wire code of a refusal. */
export function brokerErrorCode(reason: RefusalReason): BrokerErrorCode {
  return CODE_OF_REFUSAL[reason];
}

export function isBrokerErrorCode(value: unknown): value is BrokerErrorCode {
  return typeof value === 'string' && BROKER_ERROR_CODES.has(value);
}

/** The refusal of a message the protocol code could not decode. */
export function refusalForProtocolError(code: string): RefusalReason {
  switch (code) {
    case ProtocolErrorCode.invalidJson:
      return RefusalReason.invalidJson;
    case ProtocolErrorCode.invalidData:
      return RefusalReason.invalidData;
    case ProtocolErrorCode.binaryFrame:
      return RefusalReason.binaryFrame;
    case ProtocolErrorCode.tooDeep:
      return RefusalReason.tooDeep;
    case ProtocolErrorCode.textFrame:
      return RefusalReason.textFrame;
    case ProtocolErrorCode.badVersion:
      return RefusalReason.badVersion;
    case ProtocolErrorCode.malformedChunks:
      return RefusalReason.malformedChunks;
    default:
      return RefusalReason.invalidEnvelope;
  }
}

/**
 * The broker's code of a received `error_message` (as a v2 envelope: `code` beside
 * `in_reply_to`), classified once where it enters: undefined when it came from another client
 * (only the broker's word counts), carries no code (an older broker, Puppet's pcp-broker) or one
 * this catalogue does not know.
 */
export function brokerCodeOf(env: { sender?: string | undefined; code?: unknown }): BrokerErrorCode | undefined {
  if (env.sender !== undefined && env.sender !== BROKER_URI) return undefined;
  return isBrokerErrorCode(env.code) ? env.code : undefined;
}
