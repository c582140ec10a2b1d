// Typed errors. Callers branch on `code`, never on message text.

export class BatonError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }
}

/** Codes of errors raised by the pure protocol code. */
export const ProtocolErrorCode = {
  invalidJson: 'pcp/invalid-json',
  invalidEnvelope: 'pcp/invalid-envelope',
  invalidData: 'pcp/invalid-data',
  binaryFrame: 'pcp/binary-frame',
  invalidUri: 'pcp/invalid-uri',
  /** Arrays/objects nested deeper than the receiver's `max-message-depth`; refused before parsing. */
  tooDeep: 'pcp/too-deep',
  /** A PCP v1 frame whose version byte is not 1. */
  badVersion: 'pcp/bad-version',
  /** A PCP v1 frame whose chunks cannot be read (truncated, unknown type, no or two envelopes). */
  malformedChunks: 'pcp/malformed-chunks',
  /** A text frame on a PCP v1 session (v1 messages are binary). */
  textFrame: 'pcp/text-frame',
} as const;
export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

/** A message that could not be decoded. `messageId` is the offending id when it could be read. */
export class ProtocolError extends BatonError {
  declare readonly code: ProtocolErrorCode;
  readonly messageId: string | undefined;

  constructor(
    code: ProtocolErrorCode,
    message: string,
    options: { cause?: unknown; messageId?: string; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, { cause: options.cause, details: options.details });
    this.messageId = options.messageId;
  }
}
