import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProtocolError, ProtocolErrorCode } from '../../protocol/errors.ts';
import { decodeInventoryRequest, inventoryResponse, inventoryUpdate, isInventoryResponseData, isInventoryUpdateData } from '../../protocol/inventory.ts';
import { errorMessage, unauthorized } from '../../protocol/pcp-error.ts';
import { decodeV2, encodeV2 } from '../../protocol/pcp-v2.ts';
import { clientTypeOf, compileUriPattern, formatUri, hasWildcard, isValidCommonName, matchesUriPattern, parseUri } from '../../protocol/uri.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError);
    return err.code;
  }
  return undefined;
}

describe('PCP URIs', () => {
  it('parses and formats pcp://cn/type', () => {
    assert.deepEqual(parseUri('pcp://web01.example.com/agent'), { commonName: 'web01.example.com', clientType: 'agent' });
    assert.deepEqual(parseUri('pcp:///server'), { commonName: '', clientType: 'server' });
    assert.equal(formatUri('a', 'b'), 'pcp://a/b');
    assert.equal(clientTypeOf('pcp://a/controller'), 'controller');
  });

  it('rejects URIs without the pcp scheme, a type, or with extra segments', () => {
    for (const bad of ['http://a/agent', 'pcp://a', 'pcp://a/', 'pcp://a/b/c']) {
      assert.equal(codeOf(() => parseUri(bad)), ProtocolErrorCode.invalidUri, bad);
    }
  });

  it('matches wildcards that replace the whole CN or the whole type, and nothing else', () => {
    const anyAgent = compileUriPattern('pcp://*/agent');
    assert.ok(matchesUriPattern(anyAgent, 'web1', 'agent'));
    assert.ok(!matchesUriPattern(anyAgent, 'web1', 'controller'));
    const web1 = compileUriPattern('pcp://web1/*');
    assert.ok(matchesUriPattern(web1, 'web1', 'x'));
    assert.ok(!matchesUriPattern(web1, 'web10', 'x'));
    assert.equal(codeOf(() => compileUriPattern('pcp://web*/agent')), ProtocolErrorCode.invalidUri);
    assert.ok(hasWildcard('pcp://*/agent'));
    assert.ok(!hasWildcard('pcp://a/agent'));
  });

  it('accepts only common names that can stand in a URI', () => {
    assert.ok(isValidCommonName('web-01.example.com'));
    for (const bad of ['', 'a/b', 'a*', 'a b', 'x\u0000', 'y'.repeat(256)]) assert.ok(!isValidCommonName(bad), bad);
  });
});

describe('PCP v2 envelope codec', () => {
  const ok = { id: 'a1', message_type: 'http://puppetlabs.com/x', target: 'pcp://n/agent', sender: 'pcp://c/controller', in_reply_to: 'z', data: { k: [1] } };

  it('round-trips a full envelope', () => {
    assert.deepEqual(decodeV2(encodeV2(ok)), ok);
  });

  it('names what is wrong: JSON, shape, keys, URIs', () => {
    const cases: [string, string, RegExp][] = [
      ['{"id":', ProtocolErrorCode.invalidJson, /not valid JSON/],
      ['', ProtocolErrorCode.invalidJson, /not valid JSON/],
      ['"text"', ProtocolErrorCode.invalidEnvelope, /envelope must be object/],
      ['null', ProtocolErrorCode.invalidEnvelope, /envelope must be object/],
      ['{"message_type":"x"}', ProtocolErrorCode.invalidEnvelope, /required property 'id'/],
      ['{"id":"","message_type":"x"}', ProtocolErrorCode.invalidEnvelope, /envelope\.id must NOT have fewer than 1 characters/],
      ['{"id":"a","message_type":"x","targets":["pcp://a/b"]}', ProtocolErrorCode.invalidEnvelope, /unknown key 'targets'/],
      ['{"id":"a","message_type":"x","sender":"pcp://a/b/c"}', ProtocolErrorCode.invalidEnvelope, /envelope\.sender must match/],
      ['{"id":7,"message_type":"x"}', ProtocolErrorCode.invalidEnvelope, /envelope\.id must be string/],
    ];
    for (const [text, code, msg] of cases) {
      try {
        decodeV2(text);
        assert.fail(`decoded ${text}`);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, text);
        assert.equal(err.code, code, text);
        assert.match(err.message, msg, text);
      }
    }
  });

  it('keeps the offending id so that errors can name it', () => {
    try {
      decodeV2('{"id":"abc","message_type":"x","extra":1}');
      assert.fail('decoded');
    } catch (err) {
      assert.equal((err as ProtocolError).messageId, 'abc');
    }
  });

  it('survives truncated and hostile frames', () => {
    const full = encodeV2(ok);
    for (let cut = 0; cut < full.length; cut++) {
      assert.throws(() => decodeV2(full.slice(0, cut)), ProtocolError);
    }
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    assert.throws(() => decodeV2(deep), ProtocolError);
    assert.throws(() => decodeV2(`{"id":"a","message_type":"x","data":${deep}`), ProtocolError);
    assert.throws(() => decodeV2('{"id":"a","message_type":"x","__proto__":{"admin":true}}'), /unknown key '__proto__'/);
    assert.equal(({} as { admin?: boolean }).admin, undefined);
    assert.throws(() => decodeV2(`{"id":"${'i'.repeat(300)}","message_type":"x"}`), ProtocolError);
  });

  it('canonicalises duplicate keys on re-encoding, so receivers see what the broker checked', () => {
    const env = decodeV2('{"id":"a","message_type":"x","sender":"pcp://evil/controller","sender":"pcp://me/agent"}');
    assert.equal(env.sender, 'pcp://me/agent');
    assert.equal(encodeV2(env).match(/"sender"/g)?.length, 1);
  });
});

describe('PCP error and inventory messages', () => {
  it('builds error_message with a string description and unauthorized without data', () => {
    const e = errorMessage('pcp://a/agent', 'boom', 'm1');
    assert.equal(e.message_type, 'http://puppetlabs.com/error_message');
    assert.equal(e.data, 'boom');
    assert.equal(e.in_reply_to, 'm1');
    assert.equal(errorMessage('pcp://a/agent', 'boom').in_reply_to, undefined);
    const u = unauthorized('pcp://a/agent', 'm2');
    assert.equal(u.data, undefined);
    assert.equal(u.in_reply_to, 'm2');
  });

  it('decodes inventory requests and builds valid responses and updates', () => {
    const q = decodeInventoryRequest({ id: 'r', message_type: 'x', data: { query: ['pcp://*/agent'], subscribe: true } });
    assert.equal(q.subscribe, true);
    assert.equal(q.patterns[0]?.clientType, 'agent');
    assert.equal(decodeInventoryRequest({ id: 'r', message_type: 'x', data: { query: [] } }).subscribe, false);
    assert.ok(isInventoryResponseData(inventoryResponse('pcp://c/controller', 'r', ['pcp://a/agent']).data));
    assert.ok(isInventoryUpdateData(inventoryUpdate('pcp://c/controller', [{ client: 'pcp://a/agent', change: -1 }]).data));
    assert.ok(!isInventoryUpdateData({ changes: [{ client: 'pcp://a/agent', change: 0 }] }));
    assert.throws(() => decodeInventoryRequest({ id: 'r', message_type: 'x', data: { query: ['nope'] } }), /must match/);
  });
});
