// PCP v2 envelope codec: JSON text frames. Pure: strings in, values out.
import { randomUUID } from 'node:crypto';
import type { FromSchema } from 'json-schema-to-ts';
import { envelopeV2Schema } from '../schemas/pcp.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import { compile, describeErrors } from './validate.ts';

export type EnvelopeV2 = FromSchema<typeof envelopeV2Schema>;

const validateEnvelope = compile<EnvelopeV2>(envelopeV2Schema);

/** Decodes one text frame. Throws `ProtocolError` (`pcp/invalid-json`, `pcp/invalid-envelope`). */
export function decodeV2(text: string): EnvelopeV2 {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ProtocolError(ProtocolErrorCode.invalidJson, `message is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (!validateEnvelope(value)) {
    throw new ProtocolError(ProtocolErrorCode.invalidEnvelope, describeErrors(validateEnvelope.errors, 'envelope'), {
      messageId: idOf(value),
    });
  }
  return value;
}

export function encodeV2(envelope: EnvelopeV2): string {
  return JSON.stringify(envelope);
}

export function newMessageId(): string {
  return randomUUID();
}

/** The id of something that looked like an envelope, so that an error can name it in `in_reply_to`. */
function idOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as { id?: unknown }).id;
  return typeof id === 'string' && id.length > 0 && id.length <= 256 ? id : undefined;
}
