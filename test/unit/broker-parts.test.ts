import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { createAuthorizer, defaultPolicy } from '../../broker/authz.ts';
import { Inventory } from '../../broker/inventory.ts';
import { parseSessionPath } from '../../broker/paths.ts';
import { Session, SessionRegistry } from '../../broker/sessions.ts';
import { compileGlob, compileGlobList } from '../../lib/glob.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { compileUriPattern } from '../../protocol/uri.ts';

const ctl = { uri: 'pcp://orchestrator/controller', isController: true };
const agent = { uri: 'pcp://web1/agent', isController: false };

function session(cn: string, type = 'agent'): Session {
  return new Session(`pcp://${cn}/${type}`, cn, type, type === 'controller', {} as WebSocket, {} as Socket, '127.0.0.1', 0);
}

describe('glob patterns', () => {
  it('matches * across any characters, ? one, the rest literally', () => {
    assert.ok(compileGlob('*')('anything/at all'));
    assert.ok(compileGlob('ops-*')('ops-1'));
    assert.ok(!compileGlob('ops-*')('xops-1'));
    assert.ok(compileGlob('pcp://*/agent')('pcp://a.b/agent'));
    assert.ok(compileGlob('node?')('node1'));
    assert.ok(!compileGlob('node?')('node12'));
    assert.ok(!compileGlob('a.c')('abc'), 'dots are literal');
    assert.ok(compileGlob('a+(b)')('a+(b)'));
    assert.ok(compileGlobList(['x', 'y*'])('yes'));
    assert.ok(!compileGlobList([])('x'));
  });
});

describe('authorization', () => {
  it('default policy: controllers anything; agents only PXP replies and errors, only to controllers', () => {
    assert.ok(defaultPolicy(ctl, 'pcp://web1/agent', 'http://puppetlabs.com/rpc_blocking_request'));
    assert.ok(defaultPolicy(ctl, 'pcp:///server', 'http://puppetlabs.com/inventory_request'));
    for (const t of ['rpc_blocking_response', 'rpc_non_blocking_response', 'rpc_provisional_response', 'rpc_error_message', 'error_message']) {
      assert.ok(defaultPolicy(agent, ctl.uri, `http://puppetlabs.com/${t}`), t);
      assert.ok(!defaultPolicy(agent, 'pcp://web2/agent', `http://puppetlabs.com/${t}`), t);
    }
    assert.ok(!defaultPolicy(agent, ctl.uri, 'http://puppetlabs.com/rpc_blocking_request'));
    assert.ok(!defaultPolicy(agent, 'pcp:///server', 'http://puppetlabs.com/inventory_request'));
  });

  it('rules: first match wins, missing fields match anything, default deny', () => {
    const authorize = createAuthorizer([
      { sender: 'pcp://web1/*', message_type: '*_request', allow: false },
      { target: 'pcp://*/controller', allow: true },
    ]);
    assert.ok(!authorize(agent, ctl.uri, 'http://puppetlabs.com/rpc_blocking_request'));
    assert.ok(authorize(agent, ctl.uri, 'http://puppetlabs.com/rpc_blocking_response'));
    assert.ok(!authorize(ctl, 'pcp://web1/agent', 'x'));
    assert.ok(!createAuthorizer([])(ctl, 'pcp://web1/agent', 'x'));
    assert.equal(createAuthorizer(undefined), defaultPolicy);
  });
});

describe('session paths', () => {
  it('maps URL paths to protocol versions and client types', () => {
    assert.deepEqual(parseSessionPath('/pcp2/agent'), { kind: 'v2', clientType: 'agent' });
    assert.deepEqual(parseSessionPath('/pcp2/'), { kind: 'v2', clientType: 'agent' });
    assert.deepEqual(parseSessionPath('/pcp2'), { kind: 'v2', clientType: 'agent' });
    assert.deepEqual(parseSessionPath('/pcp/v2.0/controller?x=1'), { kind: 'v2', clientType: 'controller' });
    assert.deepEqual(parseSessionPath('/pcp/v2.0'), { kind: 'v2', clientType: 'agent' });
    for (const p of ['/pcp/', '/pcp', '/pcp/v1.0']) assert.deepEqual(parseSessionPath(p), { kind: 'v1', clientType: undefined }, p);
    assert.deepEqual(parseSessionPath('/pcp/v1.0/agent'), { kind: 'v1', clientType: 'agent' });
    for (const p of ['/', '/pcp3/agent', '/pcp2/a/b', '/pcp/v3.0/agent', '/pcp/v1.0/a/b']) assert.deepEqual(parseSessionPath(p), { kind: 'unknown' }, p);
  });
});

describe('session registry', () => {
  it('replaces an older session and ignores its late removal', () => {
    const reg = new SessionRegistry();
    const older = session('web1');
    const newer = session('web1');
    assert.equal(reg.add(older), undefined);
    assert.equal(reg.add(newer), older);
    assert.ok(older.ended);
    assert.equal(reg.remove(older), false);
    assert.equal(reg.get('pcp://web1/agent'), newer);
    assert.equal(reg.remove(newer), true);
    assert.equal(reg.size, 0);
  });
});

describe('inventory subscriptions', () => {
  function setup() {
    const reg = new SessionRegistry();
    const sent: { to: string; env: EnvelopeV2 }[] = [];
    const inv = new Inventory(reg, (to, env) => sent.push({ to: to.uri, env }), 60_000);
    return { reg, sent, inv };
  }

  it('queries exact URIs without scanning and wildcards by scanning, sorted and unique', () => {
    const { reg, inv } = setup();
    for (const s of [session('b'), session('a'), session('a', 'other')]) reg.add(s);
    const q = (...p: string[]) => inv.query(p.map(compileUriPattern));
    assert.deepEqual(q('pcp://*/agent'), ['pcp://a/agent', 'pcp://b/agent']);
    assert.deepEqual(q('pcp://a/*', 'pcp://a/agent'), ['pcp://a/agent', 'pcp://a/other']);
    assert.deepEqual(q('pcp://zz/agent'), []);
  });

  it('batches matching changes per subscriber until flush, and forgets them on unsubscribe', () => {
    const { sent, inv } = setup();
    const sub = session('orchestrator', 'controller');
    const other = session('watcher', 'controller');
    inv.subscribe(sub, [compileUriPattern('pcp://*/agent')]);
    inv.subscribe(other, [compileUriPattern('pcp://*/agent')]);
    inv.recordChange(session('a'), 1);
    inv.recordChange(session('x', 'other'), 1);
    inv.recordChange(session('a'), -1);
    assert.equal(sent.length, 0, 'nothing before the batch interval');
    inv.unsubscribe(other);
    inv.flush();
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.to, 'pcp://orchestrator/controller');
    assert.deepEqual((sent[0]!.env.data as { changes: unknown }).changes, [
      { client: 'pcp://a/agent', change: 1 },
      { client: 'pcp://a/agent', change: -1 },
    ]);
    inv.flush();
    assert.equal(sent.length, 1, 'an empty batch sends nothing');
    inv.close();
  });
});
