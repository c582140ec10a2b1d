// The fabric's messages between brokers: what is sent decodes to the same; anything else to null.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { decodeFabric, encodeFabric, type FabricMessage } from '../../broker/fabric/wire.ts';

const MAX_BYTES = 64 * 1024;

describe('fabric wire', () => {
  it('decodes what it encodes, for every kind', () => {
    const all: FabricMessage[] = [
      { k: 'd', from: 'b1', target: 'pcp://web1/agent', env: '{"id":"x","message_type":"m","sender":"pcp://o/controller"}' },
      { k: 'u', from: 'b2', sender: 'pcp://o/controller', target: 'pcp://web1/agent', id: 'x' },
      { k: 'r', from: 'b1', uri: 'pcp://web1/agent' },
      { k: 'i', from: 'b1', uri: 'pcp://web1/agent', change: -1 },
      { k: 'b', from: 'b1', items: [{ target: 'pcp://web1/agent', env: '{"id":"1"}' }, { target: 'pcp://web2/agent', env: '{"id":"2"}' }] },
    ];
    for (const m of all) assert.deepEqual(decodeFabric(encodeFabric(m), MAX_BYTES), m);
  });

  it('gives null for bytes that are not a fabric message, never throws', () => {
    const pack = (v: unknown) => new Packr({ useRecords: false }).pack(v);
    const cases: Buffer[] = [
      Buffer.from('not msgpack'), Buffer.from([0xc1]), Buffer.alloc(0), pack(null), pack(42), pack('d'), pack([1, 2]),
      pack({ k: 'd', target: 'pcp://a/agent', env: '{}' }), // no sender broker
      pack({ k: 'd', from: 'b', target: 'pcp://a/agent', env: '' }),
      pack({ k: 'd', from: 'b', target: 7, env: '{}' }),
      pack({ k: 'i', from: 'b', uri: 'pcp://a/agent', change: 2 }),
      pack({ k: 'u', from: 'b', sender: 'pcp://o/controller', target: 'pcp://a/agent' }),
      pack({ k: 'r', from: 'b', uri: 'x'.repeat(5000) }),
      pack({ k: 'z', from: 'b' }),
      pack({ k: 'b', from: 'b', items: [] }),
      pack({ k: 'b', from: 'b', items: [{ target: 'pcp://a/agent' }] }),
      pack({ k: 'b', from: 'b', items: 'x' }),
    ];
    for (const c of cases) assert.equal(decodeFabric(c, MAX_BYTES), null, c.toString('hex'));
  });

  it('gives null for a message over the size bound, unread', () => {
    const m: FabricMessage = { k: 'd', from: 'b1', target: 'pcp://web1/agent', env: 'x'.repeat(MAX_BYTES) };
    const bytes = encodeFabric(m);
    assert.ok(bytes.length > MAX_BYTES);
    assert.equal(decodeFabric(bytes, MAX_BYTES), null);
    assert.deepEqual(decodeFabric(bytes, bytes.length), m);
  });
});
