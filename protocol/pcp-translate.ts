// Translation between PCP v1 and v2 messages (pcp-specifications 1.0 versioning.md: the two are
// compatible and the broker translates). Pure. The differences: v1 has `targets[]` and
// `expires`, v2 one `target`; v1's `error_message` data is `{id?, description, code?}` where v2 has
// the description as data, the id as `in_reply_to` and the broker's code as the envelope's `code`
// (protocol/broker-errors.ts); v1 has no `in_reply_to` (Baton and pcp-broker carry `in-reply-to`
// where they know it).
import { BrokerMessageType } from './message-types.ts';
import { topLevelValueSpan, type Span } from './json-span.ts';
import { encodeV1, encodeV1Frame, type EnvelopeV1, type OutgoingV1 } from './pcp-v1.ts';
import { isErrorMessageV1Data } from './pcp-v1-broker.ts';
import type { EnvelopeV2 } from './pcp-v2.ts';
import { BROKER_URI } from './uri.ts';

/**
 * A v1 message as the v2 envelope delivered to `target`. `data` is the v1 data chunk already read
 * as JSON (undefined when absent); `inReplyTo` is what the broker knows the message answers.
 */
export function v1ToV2(env: EnvelopeV1, target: string, data: unknown, inReplyTo?: string): EnvelopeV2 {
  const out: EnvelopeV2 = { id: env.id, message_type: env.message_type, target, sender: env.sender };
  let replyTo = env['in-reply-to'] ?? inReplyTo;
  if (env.message_type === BrokerMessageType.errorMessage && isErrorMessageV1Data(data)) {
    out.data = data.description;
    replyTo ??= data.id;
    if (data.code !== undefined) out.code = data.code;
  } else if (data !== undefined) {
    out.data = data;
  }
  if (replyTo !== undefined) out.in_reply_to = replyTo;
  return out;
}

/**
 * `encodeV2(v1ToV2(...))` without re-encoding the data: `data` is the v1 data chunk as read (its
 * value and its text, valid JSON), and the text goes into the v2 envelope as it is. An
 * `error_message` (whose data v2 carries differently) takes the longer way.
 */
export function v1ToV2Text(env: EnvelopeV1, target: string, data: { value: unknown; text: string } | undefined, inReplyTo?: string): string {
  if (env.message_type === BrokerMessageType.errorMessage) return JSON.stringify(v1ToV2(env, target, data?.value, inReplyTo));
  const replyTo = env['in-reply-to'] ?? inReplyTo;
  return (
    `{"id":${JSON.stringify(env.id)},"message_type":${JSON.stringify(env.message_type)},"target":${JSON.stringify(target)},"sender":${JSON.stringify(env.sender)}` +
    (replyTo === undefined ? '' : `,"in_reply_to":${JSON.stringify(replyTo)}`) +
    (data === undefined ? '}' : `,"data":${data.text}}`)
  );
}

/** A v2 envelope as a v1 message expiring at `expires`; data becomes a JSON data chunk. */
export function v2ToV1(env: EnvelopeV2, expires: string, debug?: readonly (Uint8Array | string)[]): OutgoingV1 {
  const envelope: EnvelopeV1 = {
    id: env.id,
    message_type: env.message_type,
    expires,
    targets: env.target === undefined ? [] : [env.target],
    sender: env.sender ?? BROKER_URI,
  };
  if (env.in_reply_to !== undefined) envelope['in-reply-to'] = env.in_reply_to;
  let data: unknown = env.data;
  if (env.message_type === BrokerMessageType.errorMessage) {
    data = {
      description: typeof env.data === 'string' ? env.data : env.data === undefined ? '' : JSON.stringify(env.data),
      ...(env.in_reply_to === undefined ? {} : { id: env.in_reply_to }),
      ...(env.code === undefined ? {} : { code: env.code }),
    };
  }
  const out: OutgoingV1 = { envelope, data: data === undefined ? undefined : JSON.stringify(data) };
  if (debug) out.debug = debug;
  return out;
}

const dataSpan: Span = { start: 0, end: 0 };

/**
 * `encodeV1(v2ToV1(env, expires, debug))` without re-encoding: the envelope is written as JSON
 * text directly, and the data chunk is the `data` value's bytes in `text`, the UTF-8 frame `env`
 * was parsed from (valid UTF-8: ws checks text frames), as it arrived. `env.data` must be as
 * parsed; its other fields may have been set since (the broker fills in `sender`). Without `text`,
 * or when the value cannot be found in it, the data is encoded from `env.data`. An
 * `error_message` (whose data v1 carries differently) takes the longer way.
 */
export function v2ToV1Frame(env: EnvelopeV2, expires: string, debug: readonly (Uint8Array | string)[], text?: Uint8Array): Buffer {
  if (env.message_type === BrokerMessageType.errorMessage) return encodeV1(v2ToV1(env, expires, debug));
  let data: Uint8Array | string | undefined;
  if (env.data !== undefined) {
    data = text !== undefined && topLevelValueSpan(text, 'data', dataSpan) ? text.subarray(dataSpan.start, dataSpan.end) : JSON.stringify(env.data);
  }
  const target = env.target;
  const replyTo = env.in_reply_to;
  const envText =
    `{"id":${JSON.stringify(env.id)},"message_type":${JSON.stringify(env.message_type)},"expires":${JSON.stringify(expires)}` +
    `,"targets":${target === undefined ? '[]' : `[${JSON.stringify(target)}]`},"sender":${JSON.stringify(env.sender ?? BROKER_URI)}` +
    (replyTo === undefined ? '}' : `,"in-reply-to":${JSON.stringify(replyTo)}}`);
  return encodeV1Frame(envText, data, debug);
}
