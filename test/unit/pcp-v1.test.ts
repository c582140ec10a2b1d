// PCP v1 codec and v1 <-> v2 translation, fed bytes: round trips, the chunk layout, truncated,
// split, oversize and hostile frames, envelope schema, depth limits, debug hops, expiry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError, ProtocolErrorCode } from '../../protocol/errors.ts';
import { BrokerMessageType } from '../../protocol/message-types.ts';
import { ChunkType, decodeV1, encodeV1, expiresIn, isExpired, v1JsonData, withHops, type EnvelopeV1, type MessageV1 } from '../../protocol/pcp-v1.ts';
import { errorMessageV1 } from '../../protocol/pcp-v1-broker.ts';
import { v1ToV2, v1ToV2Text, v2ToV1 } from '../../protocol/pcp-translate.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { BROKER_URI } from '../../protocol/uri.ts';
import { Rng } from '../helpers/fuzz.ts';

const FRAME_CODES: readonly string[] = [ProtocolErrorCode.malformedChunks, ProtocolErrorCode.badVersion];
const ALL_CODES: readonly string[] = Object.values(ProtocolErrorCode);

function envelope(extra: Partial<EnvelopeV1> = {}): EnvelopeV1 {
  return {
    id: 'm-1',
    message_type: 'http://puppetlabs.com/rpc_blocking_request',
    expires: '2030-01-01T00:00:00.000Z',
    targets: ['pcp://web01/agent'],
    sender: 'pcp://ctl/controller',
    ...extra,
  };
}

/** One chunk as bytes: descriptor, signed big-endian size (the content's length unless given), content. */
function chunk(descriptor: number, content: Buffer | string, size?: number): Buffer {
  const body = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const head = Buffer.alloc(5);
  head[0] = descriptor;
  head.writeInt32BE(size ?? body.length, 1);
  return Buffer.concat([head, body]);
}

function frame(...chunks: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([1]), ...chunks]);
}

const envChunk = (env: unknown = envelope()) => chunk(ChunkType.envelope, JSON.stringify(env));

/** The ProtocolError `fn` throws (fails when it throws something else or nothing). */
function protocolError(fn: () => unknown, label = ''): ProtocolError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `${label}: expected a ProtocolError, got ${String(err)}`);
    return err;
  }
  assert.fail(`${label}: expected a ProtocolError, nothing was thrown`);
}

const codeOf = (fn: () => unknown, label = '') => protocolError(fn, label).code;

describe('PCP v1 codec: round trips and layout', () => {
  it('encodes and decodes an envelope alone', () => {
    const env = envelope({ destination_report: true });
    const msg = decodeV1(encodeV1({ envelope: env }));
    assert.deepEqual(msg.envelope, env);
    assert.equal(msg.data, undefined);
    assert.deepEqual(msg.debug, []);
  });

  it('encodes and decodes data and several debug chunks, in order, byte for byte', () => {
    const env = envelope({ 'in-reply-to': 'req-9' });
    const data = JSON.stringify({ transaction_id: 't1', params: { argument: 'x' } });
    const debug = [JSON.stringify({ hops: [{ server: 'pcp://b1/server', time: '2030-01-01T00:00:00Z' }] }), Buffer.from('not json'), ''];
    const bytes = encodeV1({ envelope: env, data: Buffer.from(data), debug });
    const msg = decodeV1(bytes);
    assert.deepEqual(msg.envelope, env);
    assert.equal(msg.data?.toString('utf8'), data);
    assert.deepEqual(msg.debug.map((d) => d.toString('utf8')), [debug[0], 'not json', '']);
    // Re-encoding what was decoded gives the same bytes.
    assert.deepEqual(encodeV1({ envelope: msg.envelope, data: msg.data, debug: msg.debug }), bytes);
  });

  it('keeps an empty data chunk apart from no data chunk', () => {
    const msg = decodeV1(encodeV1({ envelope: envelope(), data: '' }));
    assert.ok(msg.data !== undefined);
    assert.equal(msg.data.length, 0);
  });

  it('sizes chunks in bytes, not characters, for multi-byte UTF-8', () => {
    const text = 'Grüße, 東京, 🎉 — ü';
    const env = envelope({ message_type: `http://example.com/${text}` });
    const data = JSON.stringify({ text });
    const debug = [JSON.stringify({ note: text })];
    const bytes = encodeV1({ envelope: env, data, debug });
    const envBytes = Buffer.byteLength(JSON.stringify(env));
    assert.ok(envBytes > JSON.stringify(env).length, 'the test text has multi-byte characters');
    assert.equal(bytes.readInt32BE(2), envBytes);
    assert.equal(bytes.length, 1 + 5 + envBytes + 5 + Buffer.byteLength(data) + 5 + Buffer.byteLength(debug[0]!));
    const msg = decodeV1(bytes);
    assert.deepEqual(msg.envelope, env);
    assert.deepEqual(JSON.parse(msg.data!.toString('utf8')), { text });
    assert.equal(msg.debug[0]!.toString('utf8'), debug[0]);
  });

  it('writes version 1, then descriptor and a big-endian size before each content', () => {
    const env = envelope();
    const envText = JSON.stringify(env);
    const bytes = encodeV1({ envelope: env, data: 'ab', debug: ['c'] });
    const n = Buffer.byteLength(envText);
    assert.equal(bytes[0], 1);
    assert.equal(bytes[1], ChunkType.envelope);
    assert.deepEqual([...bytes.subarray(2, 6)], [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
    assert.equal(bytes.subarray(6, 6 + n).toString('utf8'), envText);
    const rest = bytes.subarray(6 + n);
    assert.deepEqual([...rest], [ChunkType.data, 0, 0, 0, 2, 0x61, 0x62, ChunkType.debug, 0, 0, 0, 1, 0x63]);
  });

  it('reads the size as signed: a set top bit is a negative size, refused', () => {
    const body = Buffer.from(JSON.stringify(envelope()));
    const head = Buffer.from([1, ChunkType.envelope, 0, 0, 0, 0]);
    head.writeUInt32BE(0x80000000 + body.length, 2); // unsigned: "2 GiB and more"; signed: negative
    const f = Buffer.concat([head, body]);
    const err = protocolError(() => decodeV1(f));
    assert.equal(err.code, ProtocolErrorCode.malformedChunks);
    assert.match(err.message, /negative/);
  });

  it('ignores the high 4 bits of every descriptor', () => {
    const f = frame(chunk(0xf0 | ChunkType.envelope, JSON.stringify(envelope())), chunk(0x50 | ChunkType.data, '{"a":1}'), chunk(0x80 | ChunkType.debug, '{}'));
    const msg = decodeV1(f);
    assert.equal(msg.envelope.id, 'm-1');
    assert.equal(msg.data?.toString(), '{"a":1}');
    assert.deepEqual(msg.debug.map(String), ['{}']);
  });
});

describe('PCP v1 codec: truncated and split frames', () => {
  const full = encodeV1({ envelope: envelope(), data: JSON.stringify({ ü: '東京' }), debug: ['{"hops":[]}', 'x'] });
  // Offsets at which a prefix is itself a whole frame: after the envelope, the data, each debug chunk.
  const boundaries = new Set<number>();
  for (let offset = 1; offset < full.length; ) {
    offset += 5 + full.readInt32BE(offset + 1);
    boundaries.add(offset);
  }

  it('refuses every prefix that ends inside a chunk with malformed-chunks or bad-version, nothing else', () => {
    for (let n = 0; n < full.length; n++) {
      if (boundaries.has(n)) continue;
      const code = codeOf(() => decodeV1(full.subarray(0, n)), `prefix of ${n} bytes`);
      assert.ok(FRAME_CODES.includes(code), `prefix of ${n} bytes: ${code}`);
      assert.equal(code, n === 0 ? ProtocolErrorCode.badVersion : ProtocolErrorCode.malformedChunks, `prefix of ${n} bytes`);
    }
  });

  it('reads a prefix ending at a chunk boundary as the frame with fewer chunks (v1 has no frame length)', () => {
    // The WebSocket frame delimits a v1 message; the chunk layout alone cannot tell a frame cut
    // after a whole chunk from one that had no more chunks.
    const sizes = [...boundaries].filter((n) => n < full.length).map((n) => {
      const msg = decodeV1(full.subarray(0, n));
      return (msg.data ? 1 : 0) + msg.debug.length;
    });
    assert.deepEqual(sizes, [0, 1, 2]);
  });

  it('refuses every part of a frame split in two with a ProtocolError, never anything else', () => {
    for (let n = 1; n < full.length; n++) {
      if (!boundaries.has(n)) codeOf(() => decodeV1(full.subarray(0, n)), `head of ${n} bytes`);
      const code = codeOf(() => decodeV1(full.subarray(n)), `tail from byte ${n}`);
      assert.ok(ALL_CODES.includes(code), `tail from byte ${n}: ${code}`);
    }
  });
});

describe('PCP v1 codec: malformed frames', () => {
  const env = () => envChunk();
  const cases: [string, Buffer, string][] = [
    ['an empty frame', Buffer.alloc(0), ProtocolErrorCode.badVersion],
    ['version 0', Buffer.concat([Buffer.from([0]), env()]), ProtocolErrorCode.badVersion],
    ['version 2', Buffer.concat([Buffer.from([2]), env()]), ProtocolErrorCode.badVersion],
    ['a JSON text (a v2 message on the v1 endpoint)', Buffer.from(JSON.stringify(envelope())), ProtocolErrorCode.badVersion],
    ['the version byte alone', Buffer.from([1]), ProtocolErrorCode.malformedChunks],
    ['a declared size over what is left', frame(chunk(ChunkType.envelope, JSON.stringify(envelope()), 10_000)), ProtocolErrorCode.malformedChunks],
    ['a declared size of 2^31 - 1', frame(chunk(ChunkType.envelope, '{}', 0x7fffffff)), ProtocolErrorCode.malformedChunks],
    ['an oversize data chunk', frame(env(), chunk(ChunkType.data, '{}', 3)), ProtocolErrorCode.malformedChunks],
    ['a size of -1', frame(chunk(ChunkType.envelope, '{}', -1)), ProtocolErrorCode.malformedChunks],
    ['a negative debug size', frame(env(), chunk(ChunkType.debug, '', -5)), ProtocolErrorCode.malformedChunks],
    ['a chunk header cut short', Buffer.concat([frame(env()), Buffer.from([ChunkType.data, 0, 0])]), ProtocolErrorCode.malformedChunks],
    ['two envelopes', frame(env(), env()), ProtocolErrorCode.malformedChunks],
    ['two data chunks', frame(env(), chunk(ChunkType.data, '1'), chunk(ChunkType.data, '2')), ProtocolErrorCode.malformedChunks],
    ['data after a debug chunk', frame(env(), chunk(ChunkType.debug, '{}'), chunk(ChunkType.data, '1')), ProtocolErrorCode.malformedChunks],
    ['no envelope (data only)', frame(chunk(ChunkType.data, '1')), ProtocolErrorCode.malformedChunks],
    ['the envelope after the data', frame(chunk(ChunkType.data, '1'), env()), ProtocolErrorCode.malformedChunks],
    ['chunk type 0', frame(env(), chunk(0, 'x')), ProtocolErrorCode.malformedChunks],
    ['chunk type 4', frame(env(), chunk(4, 'x')), ProtocolErrorCode.malformedChunks],
    ['chunk type 15 (high bits set too)', frame(env(), chunk(0xff, 'x')), ProtocolErrorCode.malformedChunks],
    ['an envelope that is not JSON', frame(chunk(ChunkType.envelope, '{"id":')), ProtocolErrorCode.invalidJson],
    ['an envelope that is not UTF-8 JSON', frame(chunk(ChunkType.envelope, Buffer.from([0xff, 0xfe, 0x7b]))), ProtocolErrorCode.invalidJson],
  ];
  for (const [name, bytes, code] of cases) {
    it(`refuses ${name} with ${code}`, () => {
      assert.equal(codeOf(() => decodeV1(bytes), name), code);
    });
  }

  it('names the version it got', () => {
    assert.deepEqual(protocolError(() => decodeV1(Buffer.from([7, 1, 0, 0, 0, 2, 0x7b, 0x7d]))).details, { version: 7 });
  });

  it('only ever throws ProtocolError on random bytes, random chunk layouts and mutated frames (seeded)', () => {
    const rng = new Rng(0x5eed1);
    const valid = encodeV1({ envelope: envelope(), data: '{"transaction_id":"t","x":[1,2,{"y":"ü"}]}', debug: ['{"hops":[]}'] });
    const inputs: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const kind = i % 4;
      if (kind === 0) inputs.push(rng.bytes(rng.int(64)));
      else if (kind === 1) {
        const b = rng.bytes(1 + rng.int(64));
        b[0] = 1; // past the version check
        inputs.push(b);
      } else if (kind === 2) {
        // Plausible chunk headers with random types, sizes and contents.
        const parts: Buffer[] = [Buffer.from([1])];
        for (let c = rng.int(4); c >= 0; c--) {
          const content = rng.int(3) === 0 ? Buffer.from(JSON.stringify(envelope()).slice(0, rng.int(200))) : rng.bytes(rng.int(20));
          parts.push(chunk(rng.int(256), content, rng.int(4) === 0 ? rng.int(0x100000000) - 0x80000000 : content.length));
        }
        inputs.push(Buffer.concat(parts));
      } else {
        const b = Buffer.from(valid);
        for (let m = 1 + rng.int(4); m > 0; m--) b[rng.int(b.length)] = rng.int(256);
        inputs.push(rng.int(5) === 0 ? b.subarray(0, rng.int(b.length)) : b);
      }
    }
    let decoded = 0;
    for (const [i, bytes] of inputs.entries()) {
      try {
        const msg = decodeV1(bytes);
        decoded++;
        // Whatever decodes is a valid message: it encodes back and decodes the same.
        assert.deepEqual(decodeV1(encodeV1({ envelope: msg.envelope, data: msg.data, debug: msg.debug })), msg);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, `input ${i} (${bytes.toString('hex')}): ${String(err)}`);
        assert.ok(ALL_CODES.includes(err.code), `input ${i}: code ${err.code}`);
      }
    }
    assert.ok(decoded > 0 && decoded < inputs.length, `some mutated frames still decode, most inputs do not (${decoded})`);
  });
});

describe('PCP v1 codec: the envelope', () => {
  const decodeEnv = (value: unknown) => decodeV1(frame(envChunk(value)));

  it('requires id, message_type, expires, targets and sender', () => {
    for (const key of ['id', 'message_type', 'expires', 'targets', 'sender'] as const) {
      const env: Record<string, unknown> = { ...envelope() };
      delete env[key];
      const err = protocolError(() => decodeEnv(env), key);
      assert.equal(err.code, ProtocolErrorCode.invalidEnvelope, key);
      if (key !== 'id') assert.equal(err.messageId, 'm-1', `${key}: the error names the message`);
    }
  });

  it('refuses unknown keys, including v2 ones', () => {
    for (const extra of [{ target: 'pcp://a/agent' }, { data: {} }, { in_reply_to: 'x' }, { foo: 1 }]) {
      assert.equal(codeOf(() => decodeEnv({ ...envelope(), ...extra })), ProtocolErrorCode.invalidEnvelope, JSON.stringify(extra));
    }
  });

  it('accepts the optional destination_report and in-reply-to', () => {
    const env = envelope({ destination_report: false, 'in-reply-to': 'r1' });
    assert.deepEqual(decodeEnv(env).envelope, env);
  });

  it('refuses an expires that is not a time', () => {
    for (const expires of ['', 'tomorrow', '2030-13-45T99:00:00Z', 42, null]) {
      const err = protocolError(() => decodeEnv({ ...envelope(), expires }), String(expires));
      assert.equal(err.code, ProtocolErrorCode.invalidEnvelope, String(expires));
      assert.equal(err.messageId, 'm-1');
    }
  });

  it('refuses targets and senders that are not pcp://<cn>/<type> URIs', () => {
    for (const targets of [['http://a/agent'], ['pcp://a/b/c'], ['pcp://a/'], ['pcp://a'], 'pcp://a/agent', [42]]) {
      assert.equal(codeOf(() => decodeEnv({ ...envelope(), targets })), ProtocolErrorCode.invalidEnvelope, JSON.stringify(targets));
    }
    assert.equal(codeOf(() => decodeEnv({ ...envelope(), sender: 'web01/agent' })), ProtocolErrorCode.invalidEnvelope);
    // Empty targets, several and wildcard targets are well formed (routing decides about them).
    assert.deepEqual(decodeEnv({ ...envelope(), targets: [] }).envelope.targets, []);
    assert.deepEqual(decodeEnv({ ...envelope(), targets: ['pcp://*/agent', BROKER_URI] }).envelope.targets, ['pcp://*/agent', BROKER_URI]);
  });

  it('refuses an envelope that is not an object, and an id that is too long is not echoed', () => {
    for (const value of [[], 'x', 1, null]) assert.equal(codeOf(() => decodeEnv(value)), ProtocolErrorCode.invalidEnvelope, JSON.stringify(value));
    const err = protocolError(() => decodeEnv({ ...envelope({ id: 'i'.repeat(300) }) }));
    assert.equal(err.code, ProtocolErrorCode.invalidEnvelope);
    assert.equal(err.messageId, undefined);
  });

  it('refuses an envelope deeper than max-message-depth before parsing it, naming its id and sender', () => {
    const deep = `{"id":"deep-1","sender":"pcp://ctl/controller","x":${'['.repeat(70)}${']'.repeat(70)}}`;
    const err = protocolError(() => decodeV1(frame(chunk(ChunkType.envelope, deep))));
    assert.equal(err.code, ProtocolErrorCode.tooDeep);
    assert.equal(err.messageId, 'deep-1');
    assert.deepEqual(err.details, { max_depth: 64, sender: 'pcp://ctl/controller' });
    // The limit is the caller's: depth 3 passes with 3 (and then fails the schema), not with 2.
    const three = frame(envChunk({ ...envelope(), x: [[1]] }));
    assert.equal(codeOf(() => decodeV1(three, 3)), ProtocolErrorCode.invalidEnvelope);
    assert.equal(codeOf(() => decodeV1(three, 2)), ProtocolErrorCode.tooDeep);
  });
});

describe('PCP v1 codec: reading the data chunk', () => {
  const withData = (data: string | undefined): MessageV1 => decodeV1(encodeV1({ envelope: envelope(), ...(data === undefined ? {} : { data }) }));

  it('reads JSON data, and nothing when there is no data chunk', () => {
    assert.deepEqual(v1JsonData(withData('{"a":[1,"ü"]}')), { a: [1, 'ü'] });
    assert.equal(v1JsonData(withData(undefined)), undefined);
  });

  it('refuses data that is not JSON with invalid-data, naming the message', () => {
    for (const data of ['', '{', 'nope', '{"a":1}x']) {
      const err = protocolError(() => v1JsonData(withData(data)), data);
      assert.equal(err.code, ProtocolErrorCode.invalidData, data);
      assert.equal(err.messageId, 'm-1');
    }
  });

  it('counts the envelope level: data may nest max-message-depth - 1 levels', () => {
    assert.deepEqual(v1JsonData(withData('[[[1]]]'), 4), [[[1]]]);
    const err = protocolError(() => v1JsonData(withData('[[[[1]]]]'), 4));
    assert.equal(err.code, ProtocolErrorCode.tooDeep);
    assert.equal(err.messageId, 'm-1');
    assert.equal(codeOf(() => v1JsonData(withData(`${'['.repeat(64)}${']'.repeat(64)}`))), ProtocolErrorCode.tooDeep);
  });
});

describe('PCP v1 debug hops', () => {
  const hop = { server: 'pcp://broker/server', stage: 'accepted', time: '2030-01-01T00:00:00.000Z' };
  const earlier = { server: 'pcp://other/server', time: '2029-12-31T23:59:59.000Z' };

  it('appends to the first debug chunk when it is a debug document, keeping the others and its other keys', () => {
    const first = Buffer.from(JSON.stringify({ hops: [earlier], note: 'kept' }));
    const second = Buffer.from('second');
    const out = withHops([first, second], [hop]);
    assert.equal(out.length, 2);
    assert.deepEqual(JSON.parse(String(out[0])), { hops: [earlier, hop], note: 'kept' });
    assert.equal(String(out[1]), 'second');
  });

  it('prepends a chunk of its own when there is none, or the first is not a valid debug document', () => {
    assert.deepEqual(withHops([], [hop]).map((d) => JSON.parse(String(d))), [{ hops: [hop] }]);
    for (const first of ['not json', '{"hops":"no"}', '{"other":1}', '[1]', '{"hops":[{"server":1}]}', `{"hops":[${'['.repeat(10)}${']'.repeat(10)}]}`]) {
      const out = withHops([Buffer.from(first)], [hop]);
      assert.equal(out.length, 2, first);
      assert.deepEqual(JSON.parse(String(out[0])), { hops: [hop] }, first);
      assert.equal(String(out[1]), first, `${first}: kept as it was`);
    }
  });

  it('gives pxp-agent a frame whose first debug chunk lists every hop', () => {
    const msg = decodeV1(encodeV1({ envelope: envelope(), debug: withHops([], [earlier]) }));
    const again = decodeV1(encodeV1({ envelope: msg.envelope, debug: withHops(msg.debug, [hop]) }));
    assert.deepEqual(JSON.parse(again.debug[0]!.toString()), { hops: [earlier, hop] });
  });
});

describe('PCP v1 expiry', () => {
  it('expiresIn is an ISO time ttl after now', () => {
    assert.equal(expiresIn(1500, Date.UTC(2030, 0, 1)), '2030-01-01T00:00:01.500Z');
    assert.ok(Math.abs(Date.parse(expiresIn(60_000)) - Date.now() - 60_000) < 5_000);
  });

  it('isExpired is strictly after expires, and reads offsets', () => {
    const at = Date.UTC(2030, 0, 1);
    const env = envelope({ expires: '2030-01-01T00:00:00.000Z' });
    assert.equal(isExpired(env, at - 1), false);
    assert.equal(isExpired(env, at), false);
    assert.equal(isExpired(env, at + 1), true);
    assert.equal(isExpired(envelope({ expires: '2030-01-01T01:00:00+01:00' }), at + 1), true);
    assert.equal(isExpired(envelope({ expires: expiresIn(10_000, at) }), at + 9_999), false);
  });
});

describe('PCP v1 <-> v2 translation', () => {
  it('v1 → v2: one target per copy, data as a value, no expires or targets', () => {
    const env = envelope({ targets: ['pcp://a/agent', 'pcp://b/agent'], destination_report: true });
    assert.deepEqual(v1ToV2(env, 'pcp://b/agent', { x: 1 }), {
      id: 'm-1',
      message_type: env.message_type,
      target: 'pcp://b/agent',
      sender: 'pcp://ctl/controller',
      data: { x: 1 },
    });
    assert.equal('data' in v1ToV2(env, 'pcp://b/agent', undefined), false);
  });

  it('v1 → v2 as text (the data text passed through) is the same message as v1ToV2 encoded', () => {
    const text = '{"a": [1, 2, {"b": "\\u00e9\\n"}], "c": null}';
    const data = { value: JSON.parse(text) as unknown, text };
    const cases: [EnvelopeV1, { value: unknown; text: string } | undefined, string | undefined][] = [
      [envelope(), data, undefined],
      [envelope(), undefined, 'req-1'],
      [envelope({ 'in-reply-to': 'own' }), data, 'req-1'],
      [envelope({ message_type: BrokerMessageType.errorMessage }), { value: { id: 'bad-1', description: 'no' }, text: '{"id":"bad-1","description":"no"}' }, undefined],
    ];
    for (const [env, d, replyTo] of cases) {
      assert.deepEqual(JSON.parse(v1ToV2Text(env, 'pcp://b/agent', d, replyTo)), JSON.parse(JSON.stringify(v1ToV2(env, 'pcp://b/agent', d?.value, replyTo))));
    }
  });

  it('v1 → v2: in_reply_to from in-reply-to, else from what the broker knows', () => {
    assert.equal(v1ToV2(envelope(), 'pcp://a/agent', {}, 'req-1').in_reply_to, 'req-1');
    assert.equal(v1ToV2(envelope({ 'in-reply-to': 'own' }), 'pcp://a/agent', {}, 'req-1').in_reply_to, 'own');
    assert.equal('in_reply_to' in v1ToV2(envelope(), 'pcp://a/agent', {}), false);
  });

  it('v1 → v2: an error_message {id, description} becomes the description with in_reply_to', () => {
    const err = envelope({ message_type: BrokerMessageType.errorMessage });
    assert.deepEqual(v1ToV2(err, 'pcp://ctl/controller', { id: 'bad-1', description: 'no' }), {
      id: 'm-1',
      message_type: BrokerMessageType.errorMessage,
      target: 'pcp://ctl/controller',
      sender: 'pcp://ctl/controller',
      data: 'no',
      in_reply_to: 'bad-1',
    });
    const noId = v1ToV2(err, 'pcp://x/agent', { description: 'why' });
    assert.equal(noId.data, 'why');
    assert.equal('in_reply_to' in noId, false);
    // Data that is not v1 error data goes as it is.
    assert.deepEqual(v1ToV2(err, 'pcp://x/agent', { reason: 1 }).data, { reason: 1 });
  });

  it('v2 → v1: target → targets, the broker-set expires, data as a JSON chunk, in_reply_to → in-reply-to', () => {
    const env: EnvelopeV2 = { id: 'r1', message_type: 'http://puppetlabs.com/rpc_blocking_request', target: 'pcp://a/agent', sender: 'pcp://c/controller', in_reply_to: 'q', data: { transaction_id: 't' } };
    const out = v2ToV1(env, '2030-01-01T00:00:00.000Z', ['{"hops":[]}']);
    assert.deepEqual(out.envelope, {
      id: 'r1',
      message_type: env.message_type,
      expires: '2030-01-01T00:00:00.000Z',
      targets: ['pcp://a/agent'],
      sender: 'pcp://c/controller',
      'in-reply-to': 'q',
    });
    assert.equal(out.data, '{"transaction_id":"t"}');
    assert.deepEqual(out.debug, ['{"hops":[]}']);
    const msg = decodeV1(encodeV1(out));
    assert.deepEqual(msg.envelope, out.envelope);
    assert.deepEqual(v1JsonData(msg), { transaction_id: 't' });
  });

  it('v2 → v1: no target means no targets, no sender means the broker, no data means no data chunk', () => {
    const out = v2ToV1({ id: 'x', message_type: 'http://example.com/t' }, '2030-01-01T00:00:00.000Z');
    assert.deepEqual(out.envelope, { id: 'x', message_type: 'http://example.com/t', expires: '2030-01-01T00:00:00.000Z', targets: [], sender: BROKER_URI });
    assert.equal(out.data, undefined);
    assert.equal(out.debug, undefined);
  });

  it('v2 → v1: an error_message description with in_reply_to becomes {id, description}', () => {
    const base = { id: 'e1', message_type: BrokerMessageType.errorMessage, target: 'pcp://a/agent', sender: BROKER_URI };
    assert.deepEqual(JSON.parse(String(v2ToV1({ ...base, data: 'bad', in_reply_to: 'm9' }, 'x').data)), { description: 'bad', id: 'm9' });
    assert.deepEqual(JSON.parse(String(v2ToV1({ ...base, data: 'bad' }, 'x').data)), { description: 'bad' });
    assert.deepEqual(JSON.parse(String(v2ToV1({ ...base, data: { why: 1 } }, 'x').data)), { description: '{"why":1}' });
  });

  it('v2 → v1: an error_message without data has an empty description', () => {
    const out = v2ToV1({ id: 'e1', message_type: BrokerMessageType.errorMessage, target: 'pcp://a/agent', sender: BROKER_URI }, 'x');
    assert.deepEqual(JSON.parse(String(out.data)), { description: '' });
  });

  it('v2 → v1 → v2 keeps an error_message as it was', () => {
    const v2: EnvelopeV2 = { id: 'e1', message_type: BrokerMessageType.errorMessage, target: 'pcp://a/agent', sender: BROKER_URI, data: 'bad', in_reply_to: 'm9' };
    const v1 = decodeV1(encodeV1(v2ToV1(v2, expiresIn(1000))));
    assert.deepEqual(v1ToV2(v1.envelope, 'pcp://a/agent', v1JsonData(v1)), v2);
    // The broker's own v1 error_message reads the same way.
    const own = decodeV1(encodeV1(errorMessageV1('pcp://a/agent', 'nope', 'm7')));
    const asV2 = v1ToV2(own.envelope, 'pcp://a/agent', v1JsonData(own));
    assert.equal(asV2.data, 'nope');
    assert.equal(asV2.in_reply_to, 'm7');
  });
});
