import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { AGENT_HANDLER_FAILED, Dispatcher } from '../../pxp-agent/dispatcher.ts';
import { echoModule } from '../../pxp-agent/modules/echo.ts';
import type { PxpModule } from '../../pxp-agent/modules/types.ts';
import { Spool } from '../../pxp-agent/spool.ts';
import { Transactions } from '../../pxp-agent/transactions.ts';
import { ProtocolError, ProtocolErrorCode } from '../../protocol/errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH, exceedsJsonDepth, exceedsValueDepth, jsonDepth, topLevelString } from '../../protocol/json-depth.ts';
import { decodeV2, type EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { decodePxpRequest, PxpMessageType } from '../../protocol/pxp.ts';
import { MAX_QUERY_DEPTH, parseQuery, QueryError } from '../../orchestrator/query/index.ts';

const nest = (n: number, open = '[', close = ']', inner = '') => open.repeat(n) + inner + close.repeat(n);

/** Both forms of the same text: a JS string and its UTF-8 bytes. */
function both(text: string): (string | Buffer)[] {
  return [text, Buffer.from(text, 'utf8')];
}

describe('JSON nesting depth, before parsing', () => {
  it('counts arrays and objects, a scalar being depth 0', () => {
    for (const [text, depth] of [
      ['1', 0],
      ['"x"', 0],
      ['[]', 1],
      ['{}', 1],
      ['{"a":[1,{"b":[]}]}', 4],
      ['[[],[[]],[]]', 3],
      ['', 0],
    ] as const) {
      for (const t of both(text)) assert.equal(jsonDepth(t), depth, `${text} as ${typeof t}`);
    }
  });

  it('ignores brackets inside strings', () => {
    for (const t of both('{"k":"[[[[{{{{","v":["]]]]}}}}"]}')) assert.equal(jsonDepth(t), 2);
    for (const t of both(`["${'['.repeat(10_000)}"]`)) assert.equal(exceedsJsonDepth(t, 1), false);
  });

  it('honours escaped quotes and escaped backslashes', () => {
    // "a\"[[[" is one string; "b\\" ends at its second quote, so the [ after it counts.
    for (const t of both('["a\\"[[[", "b\\\\", [[]]]')) assert.equal(jsonDepth(t), 3);
    for (const t of both('["\\\\\\"[[[[[["]')) assert.equal(jsonDepth(t), 1);
    for (const t of both('{"\\u0022[[[": 1}')) assert.equal(jsonDepth(t), 1);
  });

  it('counts multi-byte characters as text, in bytes as in strings', () => {
    const text = '{"é[":"日本[[","x":[["🎉"]]}';
    for (const t of both(text)) assert.equal(jsonDepth(t), 3);
  });

  it('says exactly-at-limit is allowed and one more is not', () => {
    for (const max of [1, 2, DEFAULT_MAX_MESSAGE_DEPTH]) {
      for (const t of both(nest(max))) assert.equal(exceedsJsonDepth(t, max), false, `depth ${max}`);
      for (const t of both(nest(max + 1))) assert.equal(exceedsJsonDepth(t, max), true, `depth ${max + 1}`);
      for (const t of both(nest(max, '{"a":', '}', '1'))) assert.equal(exceedsJsonDepth(t, max), false);
      for (const t of both(nest(max + 1, '{"a":', '}', '1'))) assert.equal(exceedsJsonDepth(t, max), true);
    }
  });

  it('finds deep arrays and objects of 100,000 levels, and stops at the first excess level', () => {
    for (const t of both(nest(100_000))) assert.equal(exceedsJsonDepth(t, 64), true);
    for (const t of both(nest(100_000, '{"a":', '}', '1'))) assert.equal(exceedsJsonDepth(t, 64), true);
    assert.equal(jsonDepth(nest(100_000), 64), 65);
  });

  it('scans truncated and malformed text without failing (the parser rejects it later)', () => {
    for (const text of ['[[[', ']]]]', '["unterminated', '{"a":"\\', '}{', '"\\"']) {
      for (const t of both(text)) assert.doesNotThrow(() => jsonDepth(t));
    }
    assert.equal(jsonDepth(']]][['), 2);
    assert.equal(jsonDepth('["abc'), 1);
  });

  it('is fast on a big frame: 8 MB of strings and brackets in well under a second', () => {
    const chunk = '{"k":"some text with [brackets] and \\"quotes\\"","n":[1,2,3]},';
    const text = `[${chunk.repeat(Math.ceil((8 * 1024 * 1024) / chunk.length))}{}]`;
    const started = performance.now();
    assert.equal(jsonDepth(text), 3);
    assert.equal(jsonDepth(Buffer.from(text)), 3);
    assert.ok(performance.now() - started < 1_000);
  });
});

describe('top-level string fields read without parsing', () => {
  it('reads the id of the top-level object only', () => {
    assert.equal(topLevelString('{"data":{"id":"inner"},"id":"outer"}', 'id'), 'outer');
    assert.equal(topLevelString(`{"data":${nest(10_000)},"id" : "x-1"}`, 'id'), 'x-1');
    assert.equal(topLevelString('{"data":{"id":"inner"}}', 'id'), undefined);
    assert.equal(topLevelString('{"x":"id","y":1}', 'id'), undefined, 'a value spelled like the key is not the key');
  });

  it('decodes escapes, refuses values that are too long, not strings or unterminated', () => {
    assert.equal(topLevelString('{"id":"a\\"b\\u0041"}', 'id'), 'a"bA');
    assert.equal(topLevelString(`{"id":"${'x'.repeat(300)}"}`, 'id', 256), undefined);
    assert.equal(topLevelString('{"id":42}', 'id'), undefined);
    assert.equal(topLevelString('{"id":"abc', 'id'), undefined);
  });
});

describe('depth of values already in memory', () => {
  it('walks without recursion, at any depth', () => {
    let deep: unknown = [];
    for (let i = 0; i < 200_000; i++) deep = [deep];
    assert.equal(exceedsValueDepth(deep, 64), true);
    assert.equal(exceedsValueDepth(JSON.parse(nest(64)), 64), false);
    assert.equal(exceedsValueDepth(JSON.parse(nest(65)), 64), true);
    assert.equal(exceedsValueDepth({ a: { b: [1, { c: 'x' }] } }, 4), false);
    assert.equal(exceedsValueDepth({ a: { b: [1, { c: {} }] } }, 4), true);
    assert.equal(exceedsValueDepth('scalar', 0), false);
  });

  it('takes a cycle for too deep', () => {
    const a: unknown[] = [];
    a.push(a);
    assert.equal(exceedsValueDepth(a, 64), true);
  });
});

describe('decoders bound depth before they parse', () => {
  it('decodeV2 refuses a deep envelope with pcp/too-deep naming the limit, the id and the sender', () => {
    for (const data of [nest(5_000), nest(100_000, '{"a":', '}', '1')]) {
      const text = `{"id":"m-1","message_type":"x","sender":"pcp://node1/agent","data":${data}}`;
      let err: unknown;
      try {
        decodeV2(text);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ProtocolError);
      assert.equal(err.code, ProtocolErrorCode.tooDeep);
      assert.equal(err.messageId, 'm-1');
      assert.equal(err.details?.sender, 'pcp://node1/agent');
      assert.match(err.message, /deeper than 64 levels/);
    }
  });

  it('decodeV2 takes a message exactly at the limit, envelope included, and honours a lower limit', () => {
    const text = (d: number) => `{"id":"m","message_type":"x","data":${nest(d - 1)}}`;
    assert.doesNotThrow(() => decodeV2(text(DEFAULT_MAX_MESSAGE_DEPTH)));
    assert.throws(() => decodeV2(text(DEFAULT_MAX_MESSAGE_DEPTH + 1)), (e: ProtocolError) => e.code === ProtocolErrorCode.tooDeep);
    assert.throws(() => decodeV2(text(5), 4), (e: ProtocolError) => e.code === ProtocolErrorCode.tooDeep && /deeper than 4 levels/.test(e.message));
  });

  it('decodePxpRequest refuses deep params built in memory', () => {
    let params: unknown = {};
    for (let i = 0; i < 5_000; i++) params = { p: params };
    const env = { id: 'r', message_type: PxpMessageType.blockingRequest, sender: 'pcp://c/controller', data: { transaction_id: 't', module: 'echo', action: 'echo', params } };
    assert.throws(() => decodePxpRequest(env), (e: ProtocolError) => e.code === ProtocolErrorCode.tooDeep && e.messageId === 'r');
  });

  it('query ASTs 5,000 deep, as text or as arrays, are query errors naming the limit', () => {
    const text = `["from","nodes",${nest(5_000, '["not",', ']', '["=","certname","a"]')}]`;
    for (const input of [text, JSON.parse(text) as unknown[], `["from","nodes",${nest(30_000)}]`]) {
      assert.throws(() => parseQuery(input), (e: unknown) => e instanceof QueryError && new RegExp(`deeper than ${MAX_QUERY_DEPTH} levels`).test(e.message) && JSON.stringify(e.details).length < 200);
    }
    assert.throws(() => parseQuery(`nodes { ${'('.repeat(5_000)}certname = "a"${')'.repeat(5_000)} }`), QueryError);
  });
});

describe('the agent dispatcher contains what goes wrong with one request', () => {
  const setup = (modules: PxpModule[]) => {
    const sent: EnvelopeV2[] = [];
    const spool = new Spool(mkdtempSync(join(tmpdir(), 'baton-dispatch-')));
    const transactions = new Transactions(spool, pino({ level: 'silent' }));
    const dispatcher = new Dispatcher({ modules, transactions, send: (e) => (sent.push(e), true), maxConcurrentActions: 1, log: pino({ level: 'silent' }) });
    return { sent, dispatcher };
  };
  const request = (module: string, params: unknown, id = 'r1'): EnvelopeV2 => ({
    id, message_type: PxpMessageType.blockingRequest, sender: 'pcp://c/controller', data: { transaction_id: `t-${id}`, module, action: 'go', params },
  });

  it('answers a module that throws with an rpc_error_message naming agent/handler-failed, and goes on', async () => {
    const broken: PxpModule = { name: 'broken', actions: { go: { kind: 'instant', validate: Object.assign(() => { throw new RangeError('Maximum call stack size exceeded'); }, { errors: null }) as never, run: () => ({}) } } };
    const { sent, dispatcher } = setup([broken, echoModule]);
    await dispatcher.handle(request('broken', {}));
    assert.equal(sent[0]?.message_type, PxpMessageType.errorMessage);
    assert.match((sent[0]!.data as { description: string }).description, new RegExp(AGENT_HANDLER_FAILED));
    await dispatcher.handle({ ...request('echo', { argument: 'ok' }, 'r2'), data: { transaction_id: 't-r2', module: 'echo', action: 'echo', params: { argument: 'ok' } } });
    assert.deepEqual((sent[1]!.data as { results: unknown }).results, { outcome: 'ok' });
  });

  it('answers params deeper than the limit with a PCP error, and results too deep to deliver with an rpc error', async () => {
    const deepResults: PxpModule = { name: 'deep', actions: { go: { kind: 'instant', validate: Object.assign(() => true, { errors: null }) as never, run: () => JSON.parse(nest(100)) as unknown } } };
    const { sent, dispatcher } = setup([deepResults]);
    let params: unknown = {};
    for (let i = 0; i < 5_000; i++) params = { p: params };
    await dispatcher.handle(request('deep', params, 'r3'));
    assert.equal(sent[0]?.message_type, 'http://puppetlabs.com/error_message');
    assert.match(String(sent[0]!.data), /deeper than 64 levels/);
    await dispatcher.handle(request('deep', {}, 'r4'));
    assert.equal(sent[1]?.message_type, PxpMessageType.errorMessage);
    assert.match((sent[1]!.data as { description: string }).description, /results nest deeper than max-message-depth/);
  });
});
