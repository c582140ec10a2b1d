import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringEnd, topLevelValueSpan, type Span } from '../../protocol/json-span.ts';
import { v2ToV1, v2ToV1Frame } from '../../protocol/pcp-translate.ts';
import { decodeV1, encodeV1 } from '../../protocol/pcp-v1.ts';
import { decodeV2, type EnvelopeV2 } from '../../protocol/pcp-v2.ts';

/** The text of `key`'s value in `text` as the scanner finds it, or undefined. */
function valueText(text: string, key = 'data'): string | undefined {
  const bytes = Buffer.from(text, 'utf8');
  const span: Span = { start: -1, end: -1 };
  return topLevelValueSpan(bytes, key, span) ? bytes.toString('utf8', span.start, span.end) : undefined;
}

describe('the span of a top-level value in JSON text', () => {
  it('finds the value wherever the key is, of every kind', () => {
    for (const value of ['1', '-0.5e+3', 'true', 'false', 'null', '"x"', '""', '{}', '[]', '{"a":[1,{"b":"}"}]}', '[[],[{}],"]"]']) {
      assert.equal(valueText(`{"data":${value}}`), value);
      assert.equal(valueText(`{"id":"1","data":${value},"target":"pcp://a/b"}`), value);
      assert.equal(valueText(`{"id":"1","message_type":"m","data":${value}}`), value);
    }
  });

  it('honours escapes in strings, backslash runs included', () => {
    for (const value of ['"a\\"b"', '"\\\\"', '"\\\\\\""', '"\\u0022"', '{"k\\"":"v\\\\"}', '["\\"]", "\\\\\\\\"]']) {
      assert.equal(valueText(`{"x":"\\"data\\":1","data":${value},"y":"}"}`), value, value);
    }
  });

  it('is exact for long strings, whose quotes are searched natively', () => {
    for (const run of [0, 1, 2, 3, 4, 31, 32, 33]) {
      for (const pad of [0, 1, 28, 29, 30, 31, 32, 33, 100]) {
        const s = JSON.stringify('a'.repeat(pad) + '\\'.repeat(run) + '"' + 'z'.repeat(pad) + '\\'.repeat(run));
        assert.equal(valueText(`{"a":${s},"data":${s},"b":${s}}`), s);
        assert.equal(stringEnd(Buffer.from(s), 0), Buffer.byteLength(s) - 1);
      }
    }
  });

  it('takes JSON whitespace anywhere between tokens', () => {
    assert.equal(valueText(' \n{ "id" : "1" ,\r\n\t"data"\t:\n [ 1 , { "a" : 2 } ]  , "z":true }\n '), '[ 1 , { "a" : 2 } ]');
    assert.equal(valueText('{"data" : 12 }'), '12');
  });

  it('counts bytes of multi-byte UTF-8 characters', () => {
    const text = '{"id":"é€😀","data":{"s":"ünï😀"},"t":"€"}';
    const bytes = Buffer.from(text, 'utf8');
    const span: Span = { start: 0, end: 0 };
    assert.ok(topLevelValueSpan(bytes, 'data', span));
    assert.equal(span.start, Buffer.byteLength('{"id":"é€😀","data":'));
    assert.equal(bytes.toString('utf8', span.start, span.end), '{"s":"ünï😀"}');
  });

  it('gives the last value of a key written twice, as JSON.parse keeps it', () => {
    assert.equal(valueText('{"data":1,"id":"x","data":[2]}'), '[2]');
  });

  it('does not look inside nested values or strings for the key', () => {
    assert.equal(valueText('{"a":{"data":1},"b":["data",{"data":2}],"c":"\\"data\\":3"}'), undefined);
  });

  it('answers not found rather than guess', () => {
    for (const text of ['', ' ', '[]', '[{"data":1}]', '"data"', '{}', '{"data"}', '{"data":}', '{"data":1', '{"data":1,}', '{"data":"x}', '{"data":1} x', '{"d\\u0061ta":1}', '{"x\\n":1,"data":2}', '{data:1}', '{"data":[1}']) {
      assert.equal(valueText(text), undefined, text);
    }
  });

  it('agrees with JSON.parse on random documents', () => {
    const rand = seeded(0x5eed);
    for (let n = 0; n < 3000; n++) {
      const doc = randomDocument(rand);
      const found = valueText(doc.text);
      assert.equal(found, doc.dataText, doc.text);
      const parsed = JSON.parse(doc.text) as Record<string, unknown>;
      if (found !== undefined) assert.equal(JSON.stringify(JSON.parse(found)), JSON.stringify(parsed.data), doc.text);
      else assert.ok(!Object.hasOwn(parsed, 'data') || doc.escapedKey, doc.text);
    }
  });
});

describe('a v2 message as a v1 frame, data as it arrived', () => {
  const expires = '2026-12-03T10:00:00.000Z';
  const hop = '{"hops":[{"server":"pcp://broker/server","stage":"accepted","time":"2026-12-03T09:59:00.000Z"}]}';

  function both(text: string, sender?: string): { fast: ReturnType<typeof decodeV1>; slow: ReturnType<typeof decodeV1> } {
    const env = decodeV2(text);
    if (sender !== undefined) env.sender = sender;
    const slow = decodeV1(encodeV1(v2ToV1(env, expires, [hop])));
    const fast = decodeV1(v2ToV1Frame(env, expires, [hop], Buffer.from(text, 'utf8')));
    return { fast, slow };
  }

  it('has the envelope and debug of the encoded translation, and data equal to it', () => {
    const texts = [
      '{"id":"1","message_type":"http://puppetlabs.com/rpc_non_blocking_request","target":"pcp://a/agent","sender":"pcp://c/controller","data":{"transaction_id":"t","params":{"s":"\\"é😀\\u2028"}}}',
      '{"data" : [ 1, 2.50, 1e2 ] , "id":"2","message_type":"m","target":"pcp://a/agent","in_reply_to":"x\\"y"}',
      '{"id":"3","message_type":"m","target":"pcp://a/agent","data":null}',
      '{"id":"4","message_type":"m","target":"pcp://a/agent"}',
      '{"id":"5","message_type":"m","data":"only"}',
    ];
    for (const text of texts) {
      for (const sender of [undefined, 'pcp://c/controller']) {
        const { fast, slow } = both(text, sender);
        assert.deepEqual(fast.envelope, slow.envelope, text);
        assert.deepEqual(fast.debug, slow.debug);
        assert.equal(fast.data === undefined, slow.data === undefined);
        if (fast.data !== undefined) assert.deepEqual(JSON.parse(fast.data.toString('utf8')), JSON.parse(slow.data!.toString('utf8')));
      }
    }
  });

  it('passes the data bytes on unchanged', () => {
    const data = '{ "n" : 1.50, "s":"\\u00e9" }';
    const { fast } = both(`{"id":"1","message_type":"m","target":"pcp://a/agent","data":${data}}`);
    assert.equal(fast.data!.toString('utf8'), data);
  });

  it('encodes the data when it has no text or cannot find it there', () => {
    const text = '{"id":"1","message_type":"m","target":"pcp://a/agent","d\\u0061ta":{"a":1}}';
    const env = decodeV2(text);
    for (const frame of [v2ToV1Frame(env, expires, [], Buffer.from(text)), v2ToV1Frame(env, expires, [])]) {
      assert.equal(decodeV1(frame).data!.toString('utf8'), '{"a":1}');
    }
  });

  it('translates an error_message as v2ToV1 does', () => {
    const env: EnvelopeV2 = { id: '1', message_type: 'http://puppetlabs.com/error_message', target: 'pcp://a/agent', in_reply_to: 'r', data: 'no' };
    const text = JSON.stringify(env);
    assert.deepEqual(v2ToV1Frame(env, expires, [hop], Buffer.from(text)), encodeV1(v2ToV1(env, expires, [hop])));
  });
});

// ---- random JSON, written in the many ways JSON allows ----

type Rand = () => number;

function seeded(seed: number): Rand {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const CHARS = ['a', 'z', ' ', '"', '\\', '/', '{', '}', '[', ']', ',', ':', '\n', '\t', '\u0000', '\u001f', 'é', '€', '😀', '\u2028', 'data'];
const WS = ['', '', '', ' ', '\n', '\t', '\r\n', '  '];

function randomString(rand: Rand): string {
  const long = rand() < 0.1;
  const n = long ? 20 + Math.floor(rand() * 80) : Math.floor(rand() * 6);
  let s = '';
  for (let i = 0; i < n; i++) s += long && rand() < 0.7 ? 'x' : pick(rand, CHARS);
  return s;
}

/** A string literal: JSON.stringify's, or with some characters as \uXXXX or \/. */
function writeString(rand: Rand, s: string): string {
  if (rand() < 0.5) return JSON.stringify(s);
  let out = '"';
  for (const ch of s) {
    const code = ch.charCodeAt(0);
    if (ch === '/' && rand() < 0.5) out += '\\/';
    else if (ch.length === 1 && (code < 0x20 || ch === '"' || ch === '\\' || rand() < 0.2)) {
      const hex = code.toString(16).padStart(4, '0');
      out += '\\u' + (rand() < 0.5 ? hex : hex.toUpperCase());
    }
    else out += JSON.stringify(ch).slice(1, -1);
  }
  return out + '"';
}

function randomNumber(rand: Rand): string {
  return pick(rand, ['0', '-0', '7', '-12', '3.25', '1e5', '1E-3', '-2.5e+10', '123456789012345678901234567890', '0.000001']);
}

/** A random value's text, written with random whitespace. */
function writeValue(rand: Rand, depth: number): string {
  const r = rand();
  const ws = () => pick(rand, WS);
  if (depth > 4 || r < 0.4) {
    const k = Math.floor(rand() * 5);
    return k === 0 ? writeString(rand, randomString(rand)) : k === 1 ? randomNumber(rand) : pick(rand, ['true', 'false', 'null', writeString(rand, '')]);
  }
  const n = Math.floor(rand() * 4);
  const items: string[] = [];
  if (r < 0.7) {
    for (let i = 0; i < n; i++) items.push(ws() + writeValue(rand, depth + 1) + ws());
    return '[' + (n === 0 ? ws() : items.join(',')) + ']';
  }
  for (let i = 0; i < n; i++) items.push(ws() + writeString(rand, rand() < 0.2 ? 'data' : randomString(rand)) + ws() + ':' + ws() + writeValue(rand, depth + 1) + ws());
  return '{' + (n === 0 ? ws() : items.join(',')) + '}';
}

interface RandomDocument {
  text: string;
  /** The text of the last top-level `data` value, as written; undefined when there is none or the scanner may not see it. */
  dataText: string | undefined;
  /** Whether a top-level key was written with an escape (the scanner then says not found). */
  escapedKey: boolean;
}

function randomDocument(rand: Rand): RandomDocument {
  const ws = () => pick(rand, WS);
  const members: string[] = [];
  let dataText: string | undefined;
  let escapedKey = false;
  const n = Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) {
    const isData = rand() < 0.4;
    const name = isData ? 'data' : pick(rand, ['id', 'message_type', 'target', 'sender', 'x"y', 'dat', 'datas', 'é', '']);
    const key = rand() < 0.05 ? writeString(rand, name) : JSON.stringify(name);
    if (key.includes('\\')) escapedKey = true;
    const value = writeValue(rand, 1);
    if (isData && key === '"data"') dataText = value;
    else if (JSON.parse(key) === 'data') dataText = undefined; // a later, escaped "data" would win
    members.push(ws() + key + ws() + ':' + ws() + value + ws());
  }
  const text = ws() + '{' + (n === 0 ? ws() : members.join(',')) + '}' + ws();
  return { text, dataText: escapedKey ? undefined : dataText, escapedKey };
}
