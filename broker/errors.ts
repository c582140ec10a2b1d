// The broker's error catalogue: every reason a message or a connection is refused, its stable
// code (used as the metrics label) and how it is described on the wire.
import { ProtocolErrorCode } from '../protocol/errors.ts';

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
  /** An unexpected exception while handling the message: contained to its session, logged as BROKER_HANDLER_FAILED. */
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
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

export const CONNECTION_REFUSAL_REASONS = [
  'no_certificate',
  'untrusted_certificate',
  'bad_common_name',
  'bad_path',
  'reserved_type',
  'not_a_controller',
  'max_connections',
  /** PCP v1: the associate_request was refused (its reason is in the associate_response). */
  'association_refused',
  /** PCP v1: no successful association within association-timeout. */
  'association_timeout',
] as const;
export type ConnectionRefusal = (typeof CONNECTION_REFUSAL_REASONS)[number];

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

/** Stable code in the warn log line of a message whose handling threw unexpectedly (the session lives on). */
export const BROKER_HANDLER_FAILED = 'broker/handler-failed';
