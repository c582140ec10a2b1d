// PCP v1 message codec (pcp-specifications 1.0, message.md): binary frames of
//   version (1 byte, = 1) | envelope chunk | [data chunk] | [debug chunk] ...
// each chunk `descriptor (1 byte; low 4 bits: 1 envelope, 2 data, 3 debug) | size (4 bytes,
// signed big-endian) | content`. Pure: bytes in, values out. The data chunk is kept as bytes so
// that a broker can forward it unchanged; `v1JsonData` reads it when it must.
import type { FromSchema } from 'json-schema-to-ts';
import { debugChunkSchema, envelopeV1Schema } from '../schemas/pcp.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH, exceedsJsonDepth, topLevelString } from './json-depth.ts';
import { compile, describeErrors } from './validate.ts';

export type EnvelopeV1 = FromSchema<typeof envelopeV1Schema>;

export const PCP_V1_VERSION = 1;

export const ChunkType = { envelope: 1, data: 2, debug: 3 } as const;

/** Bytes of a chunk's descriptor and size fields. */
const CHUNK_HEADER_BYTES = 5;
const MAX_ID_CHARS = 256;
/** A date and time as ISO 8601 writes it (`2026-12-02T03:04:05.678Z`); the zone may be left out. */
const ISO_8601_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$/;

export interface MessageV1 {
  envelope: EnvelopeV1;
  /** The data chunk's content, as sent. */
  data: Buffer | undefined;
  /** Debug chunks' contents, in order. */
  debug: Buffer[];
  /** `envelope.expires` in epoch ms, read once. */
  expiresAtMs: number;
}

/** What `encodeV1` takes: data and debug contents as bytes or (JSON) text. */
export interface OutgoingV1 {
  envelope: EnvelopeV1;
  data?: Uint8Array | string | undefined;
  debug?: readonly (Uint8Array | string)[];
}

export interface Hop {
  server: string;
  stage?: string;
  time: string;
}

const validateEnvelope = compile<EnvelopeV1>(envelopeV1Schema);
const validateDebug = compile<{ hops: Hop[] }>(debugChunkSchema);

function malformed(message: string, messageId?: string): ProtocolError {
  return new ProtocolError(ProtocolErrorCode.malformedChunks, message, messageId === undefined ? {} : { messageId });
}

/**
 * Decodes one binary frame. Throws `ProtocolError`: `pcp/bad-version` (first byte is not 1),
 * `pcp/malformed-chunks` (truncated, negative or overlong sizes, unknown chunk types, no or two
 * envelopes, two data chunks), `pcp/too-deep`, `pcp/invalid-json` or `pcp/invalid-envelope`.
 * The error carries the envelope's `id` (and, in `details.sender`, its sender) when they could
 * be read.
 */
export function decodeV1(frame: Buffer, maxDepth: number = DEFAULT_MAX_MESSAGE_DEPTH): MessageV1 {
  if (frame.length === 0) throw new ProtocolError(ProtocolErrorCode.badVersion, 'empty message: a PCP v1 message starts with its version byte (1)');
  if (frame[0] !== PCP_V1_VERSION) {
    throw new ProtocolError(ProtocolErrorCode.badVersion, `message version ${frame[0]} is not 1; this endpoint speaks PCP v1 (PCP v2 is at /pcp2/)`, {
      details: { version: frame[0] },
    });
  }
  let envStart = -1;
  let envEnd = -1;
  let data: Buffer | undefined;
  const debug: Buffer[] = [];
  let offset = 1;
  let index = 0;
  while (offset < frame.length) {
    if (frame.length - offset < CHUNK_HEADER_BYTES) {
      throw malformed(`chunk ${index} is truncated: its header needs ${CHUNK_HEADER_BYTES} bytes, ${frame.length - offset} left`);
    }
    const type = frame[offset]! & 0x0f;
    const size = frame.readInt32BE(offset + 1);
    if (size < 0) throw malformed(`chunk ${index} has a negative size (${size})`);
    const start = offset + CHUNK_HEADER_BYTES;
    if (size > frame.length - start) throw malformed(`chunk ${index} is truncated: it declares ${size} bytes, ${frame.length - start} left`);
    if (type === ChunkType.envelope) {
      if (envStart >= 0) throw malformed('the message has two envelope chunks; it must have exactly one');
      if (index !== 0) throw malformed('the envelope must be the first chunk');
      envStart = start;
      envEnd = start + size;
    } else if (type === ChunkType.data) {
      if (data !== undefined) throw malformed('the message has two data chunks; it may have at most one');
      if (debug.length > 0) throw malformed('the data chunk must come before the debug chunks');
      data = frame.subarray(start, start + size);
    } else if (type === ChunkType.debug) {
      debug.push(frame.subarray(start, start + size));
    } else {
      throw malformed(`chunk ${index} has the unknown type ${type} (1 envelope, 2 data, 3 debug)`);
    }
    offset = start + size;
    index++;
  }
  if (envStart < 0) throw malformed('the message has no envelope chunk');
  // The envelope is read as text straight from the frame (no view of it is kept).
  const env = decodeEnvelope(frame.toString('utf8', envStart, envEnd), maxDepth);
  return { envelope: env, data, debug, expiresAtMs: lastExpiresMs };
}

/** The last `expires` read and its epoch ms: a busy broker reads the same few times over and over. */
let lastExpires = '';
let lastExpiresMs = Number.NaN;

/** Decodes the envelope's text; `lastExpiresMs` is then its `expires` in epoch ms. */
function decodeEnvelope(text: string, maxDepth: number): EnvelopeV1 {
  if (exceedsJsonDepth(text, maxDepth)) {
    const sender = topLevelString(text, 'sender', 1024);
    throw new ProtocolError(ProtocolErrorCode.tooDeep, `envelope nests arrays or objects deeper than ${maxDepth} levels (max-message-depth ${maxDepth}); it was not read`, {
      messageId: validId(topLevelString(text, 'id', MAX_ID_CHARS)),
      details: { max_depth: maxDepth, ...(sender ? { sender } : {}) },
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ProtocolError(ProtocolErrorCode.invalidJson, `envelope chunk is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (!validateEnvelope(value)) {
    const id = typeof value === 'object' && value !== null ? validId((value as { id?: unknown }).id) : undefined;
    throw new ProtocolError(ProtocolErrorCode.invalidEnvelope, describeErrors(validateEnvelope.errors, 'envelope'), { messageId: id });
  }
  const expires = value.expires;
  if (expires !== lastExpires) {
    const ms = ISO_8601_RE.test(expires) ? Date.parse(expires) : Number.NaN;
    if (Number.isNaN(ms)) {
      throw new ProtocolError(ProtocolErrorCode.invalidEnvelope, `envelope.expires '${expires}' is not an ISO 8601 time`, { messageId: value.id });
    }
    lastExpires = expires;
    lastExpiresMs = ms;
  }
  return value;
}

/** A data chunk read as JSON: its value, and its text (which a translation can pass on as it is). */
export interface V1Data {
  value: unknown;
  text: string;
}

/**
 * The data chunk read as JSON (undefined when there is none). Throws `pcp/too-deep` when it nests
 * deeper than `maxDepth` less the envelope's level, `pcp/invalid-data` when it is not JSON.
 */
export function v1JsonData(msg: MessageV1, maxDepth: number = DEFAULT_MAX_MESSAGE_DEPTH): unknown {
  return readV1Data(msg, maxDepth)?.value;
}

/** `v1JsonData` with the text it parsed: valid JSON, so it may be embedded in a v2 envelope unchanged. */
export function readV1Data(msg: MessageV1, maxDepth: number = DEFAULT_MAX_MESSAGE_DEPTH): V1Data | undefined {
  const bytes = msg.data;
  if (bytes === undefined) return undefined;
  if (exceedsJsonDepth(bytes, maxDepth - 1)) {
    throw new ProtocolError(ProtocolErrorCode.tooDeep, `data nests deeper than ${maxDepth} levels with its envelope (max-message-depth ${maxDepth}); it was not read`, {
      messageId: msg.envelope.id,
      details: { max_depth: maxDepth },
    });
  }
  const text = bytes.toString('utf8');
  try {
    return { value: JSON.parse(text), text };
  } catch (cause) {
    throw new ProtocolError(ProtocolErrorCode.invalidData, `data chunk is not valid JSON: ${(cause as Error).message}`, { cause, messageId: msg.envelope.id });
  }
}

/** Encodes a message: one allocation for the whole frame. */
export function encodeV1(msg: OutgoingV1): Buffer {
  return encodeV1Frame(JSON.stringify(msg.envelope), msg.data, msg.debug);
}

/**
 * `encodeV1` of an envelope already written as JSON text (`envText`, which must be a valid v1
 * envelope: what a translation builds without an object in between). One allocation.
 */
export function encodeV1Frame(envText: string, data: Uint8Array | string | undefined, debug: readonly (Uint8Array | string)[] = []): Buffer {
  const envBytes = Buffer.byteLength(envText);
  const dataBytes = data === undefined ? -1 : typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  let total = 1 + CHUNK_HEADER_BYTES + envBytes + (dataBytes >= 0 ? CHUNK_HEADER_BYTES + dataBytes : 0);
  for (const d of debug) total += CHUNK_HEADER_BYTES + (typeof d === 'string' ? Buffer.byteLength(d) : d.length);
  const out = Buffer.allocUnsafe(total);
  out[0] = PCP_V1_VERSION;
  let offset = writeChunk(out, 1, ChunkType.envelope, envText, envBytes);
  if (data !== undefined) offset = writeChunk(out, offset, ChunkType.data, data, dataBytes);
  for (const d of debug) offset = writeChunk(out, offset, ChunkType.debug, d, typeof d === 'string' ? Buffer.byteLength(d) : d.length);
  return out;
}

/**
 * `frame` (a message that decoded) with one debug chunk appended, copied once, when its chunks are
 * plain (each descriptor exactly its type) and it has no debug chunk; undefined otherwise (then
 * the message is encoded afresh). What a broker forwards from v1 to v1: envelope and data as sent.
 */
export function withDebugChunk(frame: Buffer, debug: string): Buffer | undefined {
  let offset = 1;
  let index = 0;
  while (offset < frame.length) {
    if (frame.length - offset < CHUNK_HEADER_BYTES) return undefined;
    const type = frame[offset]!;
    if (type !== (index === 0 ? ChunkType.envelope : ChunkType.data) || index > 1) return undefined;
    const size = frame.readInt32BE(offset + 1);
    if (size < 0 || size > frame.length - offset - CHUNK_HEADER_BYTES) return undefined;
    offset += CHUNK_HEADER_BYTES + size;
    index++;
  }
  if (index === 0) return undefined;
  const size = Buffer.byteLength(debug);
  const out = Buffer.allocUnsafe(frame.length + CHUNK_HEADER_BYTES + size);
  frame.copy(out, 0);
  writeChunk(out, frame.length, ChunkType.debug, debug, size);
  return out;
}

function writeChunk(out: Buffer, offset: number, type: number, content: Uint8Array | string, size: number): number {
  out[offset] = type;
  out.writeInt32BE(size, offset + 1);
  const start = offset + CHUNK_HEADER_BYTES;
  if (typeof content === 'string') out.write(content, start, size, 'utf8');
  else out.set(content, start);
  return start + size;
}

/**
 * ISO 8601 text of a time in ms, remembered for the last millisecond asked: a broker formats
 * the same few times for every message of a busy millisecond. One per use (now, expiry).
 */
export class IsoClock {
  private ms = Number.NaN;
  private text = '';

  at(ms: number): string {
    if (ms !== this.ms) {
      this.ms = ms;
      this.text = new Date(ms).toISOString();
    }
    return this.text;
  }
}

const expiryClock = new IsoClock();

/** The `expires` of a message sent now with a time to live. */
export function expiresIn(ttlMs: number, nowMs: number = Date.now()): string {
  return expiryClock.at(nowMs + ttlMs);
}

/** The text of a debug chunk holding one hop (what a broker adds to a message without debug chunks). */
export function hopChunk(serverUriJson: string, stage: string, time: string): string {
  return `{"hops":[{"server":${serverUriJson},"stage":"${stage}","time":"${time}"}]}`;
}

export function isExpired(envelope: EnvelopeV1, nowMs: number = Date.now()): boolean {
  return Date.parse(envelope.expires) < nowMs;
}

/**
 * Debug chunks with `hops` appended to the first one's (as pxp-agent's `ping` reads the first);
 * when there is none, or the first is not a valid debug document, a new first chunk holds them.
 */
export function withHops(debug: readonly Buffer[], hops: readonly Hop[]): (Buffer | string)[] {
  const first = debug[0];
  if (first !== undefined && !exceedsJsonDepth(first, 8)) {
    try {
      const doc = JSON.parse(first.toString('utf8')) as unknown;
      if (validateDebug(doc)) {
        doc.hops.push(...hops);
        return [JSON.stringify(doc), ...debug.slice(1)];
      }
    } catch {
      // not JSON: kept as it is, after a chunk of our own
    }
  }
  return [JSON.stringify({ hops }), ...debug];
}

function validId(id: unknown): string | undefined {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_CHARS ? id : undefined;
}
