// PCP v2 envelope codec: JSON text frames. Pure: strings in, values out.
import { randomUUID } from 'node:crypto';
import type { FromSchema } from 'json-schema-to-ts';
import { envelopeV2Schema } from '../schemas/pcp.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH, exceedsJsonDepth, topLevelString } from './json-depth.ts';
import { compile, describeErrors } from './validate.ts';

export type EnvelopeV2 = FromSchema<typeof envelopeV2Schema>;

const validateEnvelope = compile<EnvelopeV2>(envelopeV2Schema);

/** Longest `id` (and `in_reply_to`) an envelope may have (envelopeV2Schema). */
const MAX_ID_CHARS = 256;
/** Longest `sender`/`target` URI (envelopeV2Schema). */
const MAX_URI_CHARS = 1024;

/**
 * Decodes one text frame. Throws `ProtocolError` (`pcp/too-deep`, `pcp/invalid-json`,
 * `pcp/invalid-envelope`). Nesting deeper than `maxDepth` (envelope and data together) is refused
 * before the text is parsed; the error then carries the frame's `id` and, in `details.sender`, its
 * sender, when they can be read without parsing.
 */
export function decodeV2(text: string, maxDepth: number = DEFAULT_MAX_MESSAGE_DEPTH): EnvelopeV2 {
  if (exceedsJsonDepth(text, maxDepth)) {
    const sender = topLevelString(text, 'sender', MAX_URI_CHARS);
    throw new ProtocolError(
      ProtocolErrorCode.tooDeep,
      `message nests arrays or objects deeper than ${maxDepth} levels (max-message-depth ${maxDepth}); it was not read`,
      { messageId: validId(topLevelString(text, 'id', MAX_ID_CHARS)), details: { max_depth: maxDepth, ...(sender ? { sender } : {}) } },
    );
  }
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
  return validId((value as { id?: unknown }).id);
}

function validId(id: unknown): string | undefined {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_CHARS ? id : undefined;
}
