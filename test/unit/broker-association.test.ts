// The broker's pure PCP v1 decisions: association of a v1 connection (accept, each refusal, drop of
// a message before association) and the bounded book of v2 → v1 PXP requests awaiting replies.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AssociationRefusal, decideAssociation, type AssociationInput } from '../../broker/association.ts';
import { PendingReplies } from '../../broker/router-v1.ts';
import { compileGlobList } from '../../lib/glob.ts';
import { BrokerMessageType } from '../../protocol/message-types.ts';
import type { EnvelopeV1 } from '../../protocol/pcp-v1.ts';
import { BROKER_URI } from '../../protocol/uri.ts';

const isControllerCn = compileGlobList(['orchestrator', 'ctl-*']);

function request(sender: string, extra: Partial<EnvelopeV1> = {}): EnvelopeV1 {
  return { id: 'a-1', message_type: BrokerMessageType.associateRequest, expires: '2030-01-01T00:00:00.000Z', targets: [BROKER_URI], sender, ...extra };
}

function decide(sender: string, commonName: string, opts: { pathType?: string; extra?: Partial<EnvelopeV1> } = {}) {
  const input: AssociationInput = { envelope: request(sender, opts.extra), commonName, pathType: opts.pathType, isControllerCn };
  return decideAssociation(input);
}

function refusal(decision: ReturnType<typeof decide>): string {
  assert.equal(decision.kind, 'refuse', JSON.stringify(decision));
  return decision.kind === 'refuse' ? decision.reason : '';
}

describe('PCP v1 association', () => {
  it('accepts an agent whose sender matches its certificate, with or without a type in the path', () => {
    assert.deepEqual(decide('pcp://web01/agent', 'web01'), { kind: 'accept', uri: 'pcp://web01/agent', clientType: 'agent', isController: false });
    assert.deepEqual(decide('pcp://web01/agent', 'web01', { pathType: 'agent' }), { kind: 'accept', uri: 'pcp://web01/agent', clientType: 'agent', isController: false });
    assert.equal(decide('pcp://web01/my.type-2', 'web01').kind, 'accept');
  });

  it('accepts a controller only for a CN in controller-cns', () => {
    assert.deepEqual(decide('pcp://orchestrator/controller', 'orchestrator'), { kind: 'accept', uri: 'pcp://orchestrator/controller', clientType: 'controller', isController: true });
    assert.equal(decide('pcp://ctl-7/controller', 'ctl-7', { pathType: 'controller' }).kind, 'accept');
    assert.equal(refusal(decide('pcp://web01/controller', 'web01')), AssociationRefusal.notAController);
    // A controller CN may also connect as another type, which is then not a controller.
    assert.deepEqual(decide('pcp://orchestrator/agent', 'orchestrator'), { kind: 'accept', uri: 'pcp://orchestrator/agent', clientType: 'agent', isController: false });
  });

  it('refuses a sender whose common name is not the certificate\'s', () => {
    assert.equal(refusal(decide('pcp://mallory/agent', 'web01')), AssociationRefusal.senderMismatch);
    assert.equal(refusal(decide('pcp://web01.example.com/agent', 'web01')), AssociationRefusal.senderMismatch);
    assert.equal(refusal(decide('pcp://orchestrator/controller', 'web01')), AssociationRefusal.senderMismatch);
  });

  it('refuses a sender that is not a pcp://<cn>/<type> URI as a mismatch', () => {
    for (const sender of ['web01/agent', 'pcp://web01', 'pcp://web01/', 'pcp://web01/a/b', 'http://web01/agent']) {
      assert.equal(refusal(decide(sender, 'web01')), AssociationRefusal.senderMismatch, sender);
    }
  });

  it('refuses an invalid client type', () => {
    for (const type of ['bad type', 'a*', 'x'.repeat(65), 'ü']) {
      assert.equal(refusal(decide(`pcp://web01/${type}`, 'web01')), AssociationRefusal.badClientType, type);
    }
  });

  it('refuses the type reserved for brokers', () => {
    assert.equal(refusal(decide('pcp://web01/server', 'web01')), AssociationRefusal.reservedType);
  });

  it('refuses a type other than the one the path names', () => {
    assert.equal(refusal(decide('pcp://web01/agent', 'web01', { pathType: 'controller' })), AssociationRefusal.pathTypeMismatch);
    assert.equal(refusal(decide('pcp://orchestrator/controller', 'orchestrator', { pathType: 'agent' })), AssociationRefusal.pathTypeMismatch);
  });

  it('refuses an associate_request not addressed to the broker alone', () => {
    for (const targets of [[], ['pcp://web02/agent'], [BROKER_URI, BROKER_URI], [BROKER_URI, 'pcp://web02/agent'], ['pcp://*/server']]) {
      assert.equal(refusal(decide('pcp://web01/agent', 'web01', { extra: { targets } })), AssociationRefusal.notToBroker, JSON.stringify(targets));
    }
  });

  it('drops any other message before association, without refusing the connection', () => {
    for (const message_type of [BrokerMessageType.inventoryRequest, 'http://puppetlabs.com/rpc_blocking_request', BrokerMessageType.associateResponse]) {
      const decision = decide('pcp://web01/agent', 'web01', { extra: { message_type } });
      assert.equal(decision.kind, 'drop', message_type);
      assert.ok(decision.kind === 'drop' && decision.description.includes(BrokerMessageType.associateRequest));
    }
    // A spoofed message before association is dropped too, not refused: the message type comes first.
    assert.equal(decide('pcp://mallory/agent', 'web01', { extra: { message_type: 'http://example.com/x' } }).kind, 'drop');
  });

  it('describes every refusal for the associate_response', () => {
    const refused = [
      decide('pcp://mallory/agent', 'web01'),
      decide('pcp://web01/bad type', 'web01'),
      decide('pcp://web01/server', 'web01'),
      decide('pcp://web01/agent', 'web01', { pathType: 'x' }),
      decide('pcp://web01/controller', 'web01'),
      decide('pcp://web01/agent', 'web01', { extra: { targets: [] } }),
    ];
    const reasons = refused.map((d) => (d.kind === 'refuse' && d.description.length > 0 ? d.reason : 'none'));
    assert.deepEqual(new Set(reasons), new Set(Object.values(AssociationRefusal)));
  });
});

describe('PendingReplies (v2 requests to v1 clients awaiting replies)', () => {
  it('gives a reply the request it answers, by v1 URI and transaction id', () => {
    const book = new PendingReplies(10);
    book.remember('pcp://a/agent', 't1', 'req-1');
    book.remember('pcp://b/agent', 't1', 'req-2');
    assert.equal(book.take('pcp://a/agent', 't1', true), 'req-1');
    assert.equal(book.take('pcp://b/agent', 't1', true), 'req-2');
    assert.equal(book.take('pcp://c/agent', 't1', true), undefined);
    assert.equal(book.take('pcp://a/agent', 't2', true), undefined);
  });

  it('keeps the entry for provisional replies and forgets it at the final one', () => {
    const book = new PendingReplies(10);
    book.remember('pcp://a/agent', 't1', 'req-1');
    assert.equal(book.take('pcp://a/agent', 't1', false), 'req-1');
    assert.equal(book.take('pcp://a/agent', 't1', false), 'req-1');
    assert.equal(book.size, 1);
    assert.equal(book.take('pcp://a/agent', 't1', true), 'req-1');
    assert.equal(book.size, 0);
    assert.equal(book.take('pcp://a/agent', 't1', true), undefined);
    assert.equal(book.take('pcp://a/agent', 't1', false), undefined);
  });

  it('does not confuse keys that only join the same way', () => {
    const book = new PendingReplies(10);
    book.remember('pcp://a/agent', 't1', 'req-1');
    assert.equal(book.take('pcp://a/agent ', 't1', true), undefined);
    assert.equal(book.take('pcp://a/agent', ' t1', true), undefined);
  });

  it('a request sent again with the same transaction id answers to the newest request', () => {
    const book = new PendingReplies(10);
    book.remember('pcp://a/agent', 't1', 'req-1');
    book.remember('pcp://a/agent', 't1', 'req-2');
    assert.equal(book.size, 1);
    assert.equal(book.take('pcp://a/agent', 't1', true), 'req-2');
  });

  it('is bounded: past its size the oldest entries go first, a re-booked one counts as new', () => {
    const book = new PendingReplies(3);
    for (let i = 0; i < 3; i++) book.remember('pcp://a/agent', `t${i}`, `req-${i}`);
    book.remember('pcp://a/agent', 't0', 'req-0b'); // t0 is now the newest
    book.remember('pcp://a/agent', 't3', 'req-3'); // t1 goes
    assert.equal(book.size, 3);
    assert.equal(book.take('pcp://a/agent', 't1', false), undefined);
    assert.equal(book.take('pcp://a/agent', 't0', false), 'req-0b');
    assert.equal(book.take('pcp://a/agent', 't2', false), 'req-2');
    assert.equal(book.take('pcp://a/agent', 't3', false), 'req-3');
    for (let i = 0; i < 10_000; i++) book.remember('pcp://b/agent', `x${i}`, `r${i}`);
    assert.equal(book.size, 3);
    assert.equal(book.take('pcp://b/agent', 'x9999', true), 'r9999');
    assert.equal(book.take('pcp://b/agent', 'x9996', true), undefined);
  });
});
