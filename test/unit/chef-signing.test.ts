// Chef request signing: requests signed by Chef's own library (Ruby's mixlib-authentication,
// through test/helpers/chef-sign.rb), checked by verifyChefRequest. Skipped without Ruby's library.
import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ChefAuthError,
  ChefAuthErrorCode,
  DEFAULT_CHEF_CLOCK_SKEW_S,
  isChefSigned,
  verifyChefRequest,
  type ChefSignVersion,
} from '../../orchestrator/chef/signing.ts';
import { BatonError } from '../../protocol/errors.ts';
import { asReceived, chefSigningMissing, signChefRequests, writeRsaKeyPair, type ChefSignInput } from '../helpers/chef-sign.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';

const missing = skipUnlessInstalled(chefSigningMissing());
const VERSIONS: readonly ChefSignVersion[] = ['1.0', '1.1', '1.3'];
const JOBS = '/organizations/alpha/pushy/jobs';
const BODY = JSON.stringify({ command: 'echo hello', nodes: ['a1', 'a2'], quorum: 2 });
const NOW_MS = Date.parse('2024-05-06T07:08:09Z');
const at = (offsetMin: number) => new Date(NOW_MS + offsetMin * 60_000).toISOString();

type Spec = Omit<ChefSignInput, 'key_path' | 'userid'> & { key?: 'alice' | 'mallory'; userid?: string };

/** Every request the tests use, signed by mixlib-authentication in one Ruby run. */
const SPECS: Record<string, Spec> = {};
for (const v of VERSIONS) {
  SPECS[`get ${v}`] = { version: v, method: 'GET', path: JOBS, body: '' };
  SPECS[`post ${v}`] = { version: v, method: 'POST', path: JOBS, body: BODY };
  SPECS[`slashes ${v}`] = { version: v, method: 'GET', path: '//organizations//alpha///pushy/jobs/', body: '' };
  SPECS[`api 2 ${v}`] = { version: v, method: 'GET', path: JOBS, body: '', server_api_version: '2' };
  SPECS[`past 14 ${v}`] = { version: v, method: 'GET', path: JOBS, body: '', timestamp: at(-14) };
  SPECS[`future 14 ${v}`] = { version: v, method: 'GET', path: JOBS, body: '', timestamp: at(14) };
}
SPECS['slash only'] = { version: '1.3', method: 'GET', path: '/', body: '' };
SPECS['mallory key'] = { version: '1.3', method: 'POST', path: JOBS, body: BODY, key: 'mallory' };
SPECS['mallory key 1.0'] = { version: '1.0', method: 'POST', path: JOBS, body: BODY, key: 'mallory' };
SPECS.mallory = { version: '1.3', method: 'POST', path: JOBS, body: BODY, key: 'mallory', userid: 'mallory' };
SPECS['past 16'] = { version: '1.3', method: 'GET', path: JOBS, body: '', timestamp: at(-16) };
SPECS['future 16'] = { version: '1.3', method: 'GET', path: JOBS, body: '', timestamp: at(16) };
SPECS['api 3'] = { version: '1.3', method: 'GET', path: JOBS, body: '', server_api_version: '3' };
// Ruby canonicalises this to 2024-05-06T07:08:09Z (its X-Ops-Timestamp); the tests send it unchanged.
SPECS['offset time'] = { version: '1.3', method: 'GET', path: JOBS, body: '', timestamp: '2024-05-06T09:08:09.875+02:00' };

describe('Chef request signing: mixlib-authentication signs, verifyChefRequest checks', { skip: missing ?? false }, () => {
  let dir: string;
  const keys: Record<string, KeyObject> = {};
  const signed = new Map<string, { spec: Spec; headers: Record<string, string> }>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-chef-signing-'));
    const paths = { alice: writeRsaKeyPair(dir, 'alice'), mallory: writeRsaKeyPair(dir, 'mallory') };
    keys.alice = createPublicKey(readFileSync(paths.alice.publicKey));
    const names = Object.keys(SPECS);
    const inputs = names.map((n): ChefSignInput => {
      const { key = 'alice', userid = 'alice', ...rest } = SPECS[n]!;
      return { timestamp: at(0), ...rest, key_path: paths[key].privateKey, userid };
    });
    const out = await signChefRequests(inputs);
    names.forEach((n, i) => signed.set(n, { spec: SPECS[n]!, headers: asReceived(out[i]!) }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Verifies request `name` as signed, with `change` applied to what the server receives. */
  function check(name: string, change: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string | undefined>; nowMs?: number } = {}) {
    const s = signed.get(name);
    assert.ok(s, `no signed request ${name}`);
    const headers: Record<string, string> = { ...s.headers, host: 'orchestrator.example.com:8143' };
    for (const [k, v] of Object.entries(change.headers ?? {})) {
      if (v === undefined) delete headers[k];
      else headers[k] = v;
    }
    return verifyChefRequest(
      { method: change.method ?? s.spec.method, path: change.path ?? s.spec.path, headers, body: change.body ?? s.spec.body },
      { nowMs: change.nowMs ?? NOW_MS, skewS: DEFAULT_CHEF_CLOCK_SKEW_S, publicKeyFor: (u) => keys[u] ?? null },
    );
  }
  function refused(what: () => unknown, code: ChefAuthErrorCode, names: RegExp): ChefAuthError {
    let caught: unknown;
    try {
      what();
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof ChefAuthError, `expected a ChefAuthError ${code}, got ${String(caught)}`);
    assert.ok(caught instanceof BatonError);
    assert.equal(caught.code, code, caught.message);
    assert.match(caught.message, names);
    return caught;
  }
  const headerOf = (name: string, h: string) => signed.get(name)!.headers[h]!;

  it('verifies versions 1.0, 1.1 and 1.3: a GET without a body and a POST with a JSON body', () => {
    for (const v of VERSIONS) {
      assert.deepEqual(check(`get ${v}`), { userid: 'alice', version: v });
      assert.deepEqual(check(`post ${v}`), { userid: 'alice', version: v });
      assert.deepEqual(check(`post ${v}`, { body: Buffer.from(BODY) }), { userid: 'alice', version: v }, 'a Buffer body');
    }
  });

  it('canonicalises the path as Chef does: repeated slashes collapse, a trailing slash goes, "/" stays', () => {
    for (const v of VERSIONS) {
      assert.equal(check(`slashes ${v}`).version, v);
      assert.equal(check(`slashes ${v}`, { path: JOBS }).version, v, 'the canonical path verifies too');
      assert.equal(check(`get ${v}`, { path: `${JOBS}/` }).version, v);
      assert.equal(check(`get ${v}`, { path: `${JOBS}?limit=5` }).version, v, 'a query string is not signed');
    }
    assert.equal(check('slash only').version, '1.3');
    refused(() => check('slash only', { path: '//x' }), ChefAuthErrorCode.badSignature, /signature/);
  });

  it('covers X-Ops-Server-API-Version with version 1.3 only (absent means 0)', () => {
    assert.equal(check('api 2 1.3').version, '1.3');
    refused(() => check('api 2 1.3', { headers: { 'x-ops-server-api-version': '1' } }), ChefAuthErrorCode.badSignature, /X-Ops-Server-API-Version changed/);
    refused(() => check('api 2 1.3', { headers: { 'x-ops-server-api-version': undefined } }), ChefAuthErrorCode.badSignature, /alice/);
    assert.equal(check('get 1.3', { headers: { 'x-ops-server-api-version': '0' } }).version, '1.3');
    for (const v of ['1.0', '1.1'] as const) assert.equal(check(`api 2 ${v}`, { headers: { 'x-ops-server-api-version': '0' } }).version, v);
  });

  it('refuses a signature made with another key, naming the client', () => {
    refused(() => check('mallory key'), ChefAuthErrorCode.badSignature, /does not verify with the public key of client "alice" \(signing version 1\.3\)/);
    refused(() => check('mallory key 1.0'), ChefAuthErrorCode.badSignature, /client "alice" \(signing version 1\.0\)/);
  });

  it('refuses a client it has no key for, naming it', () => {
    const e = refused(() => check('mallory'), ChefAuthErrorCode.unknownClient, /no client "mallory" \(X-Ops-Userid\)/);
    assert.deepEqual(e.details, { userid: 'mallory' });
  });

  it('refuses a body changed after signing: it does not match X-Ops-Content-Hash', () => {
    for (const v of VERSIONS) {
      const algorithm = v === '1.3' ? 'SHA-256' : 'SHA-1';
      refused(() => check(`post ${v}`, { body: BODY.replace('a2', 'a3') }), ChefAuthErrorCode.contentHashMismatch, new RegExp(`body does not match X-Ops-Content-Hash: the body's ${algorithm}`));
      refused(() => check(`get ${v}`, { body: '{}' }), ChefAuthErrorCode.contentHashMismatch, /X-Ops-Content-Hash/);
    }
  });

  it('refuses a request whose path or method changed after signing', () => {
    for (const v of VERSIONS) {
      refused(() => check(`post ${v}`, { path: `${JOBS}/1` }), ChefAuthErrorCode.badSignature, /method, path/);
      refused(() => check(`post ${v}`, { path: JOBS.replace('alpha', 'beta') }), ChefAuthErrorCode.badSignature, /signature/);
      refused(() => check(`post ${v}`, { method: 'PUT' }), ChefAuthErrorCode.badSignature, /signature/);
      refused(() => check(`get ${v}`, { method: 'DELETE' }), ChefAuthErrorCode.badSignature, /signature/);
      assert.equal(check(`get ${v}`, { method: 'get' }).version, v, 'the method is compared in upper case');
    }
  });

  it('refuses a timestamp 16 min behind or ahead with a 15 min window, and accepts 14 min either way', () => {
    const past = refused(() => check('past 16'), ChefAuthErrorCode.clockSkew, /is 960 s \(16 min\) behind the server's clock .*at most 900 s either way/);
    assert.deepEqual(past.details, { offset_s: 960, allowed_s: 900 });
    const future = refused(() => check('future 16'), ChefAuthErrorCode.clockSkew, /is 960 s \(16 min\) ahead of the server's clock/);
    assert.deepEqual(future.details, { offset_s: -960, allowed_s: 900 });
    for (const v of VERSIONS) {
      assert.equal(check(`past 14 ${v}`).version, v);
      assert.equal(check(`future 14 ${v}`).version, v);
    }
    // The same request, against a server clock 16 min on: the window is checked both ways.
    refused(() => check('get 1.0', { nowMs: NOW_MS + 16 * 60_000 }), ChefAuthErrorCode.clockSkew, /behind/);
    refused(() => check('get 1.1', { nowMs: NOW_MS - 16 * 60_000 }), ChefAuthErrorCode.clockSkew, /ahead of/);
  });

  it("reads X-Ops-Timestamp as Ruby's Time.parse(...).utc.iso8601 does, and refuses what is no time", () => {
    assert.equal(headerOf('offset time', 'x-ops-timestamp'), '2024-05-06T07:08:09Z', 'mixlib-authentication sends the canonical time');
    for (const sent of ['2024-05-06T09:08:09.875+02:00', '2024-05-06T04:38:09-0230', '2024-05-06T07:08:09.999Z', '2024-05-06T07:08:09', '2024-05-06 07:08:09Z']) {
      assert.equal(check('offset time', { headers: { 'x-ops-timestamp': sent } }).version, '1.3', sent);
    }
    refused(() => check('offset time', { headers: { 'x-ops-timestamp': '2024-05-06T07:08:10Z' } }), ChefAuthErrorCode.badSignature, /timestamp/);
    for (const bad of ['yesterday', '2024-05-06', '2024-13-01T00:00:00Z', '2024-05-06T25:00:00Z', '1715000000']) {
      refused(() => check('get 1.3', { headers: { 'x-ops-timestamp': bad } }), ChefAuthErrorCode.badTimestamp, new RegExp(`X-Ops-Timestamp "${bad}" is not an ISO 8601 time`));
    }
  });

  it('names each missing required header, and all of them when several are missing', () => {
    const required = ['X-Ops-Sign', 'X-Ops-Userid', 'X-Ops-Timestamp', 'X-Ops-Content-Hash', 'X-Ops-Authorization-1'];
    for (const v of VERSIONS) {
      for (const h of required) {
        const e = refused(() => check(`post ${v}`, { headers: { [h.toLowerCase()]: undefined } }), ChefAuthErrorCode.missingHeaders, new RegExp(`lacks the header ${h}$`));
        assert.deepEqual(e.details, { headers: [h] });
        refused(() => check(`post ${v}`, { headers: { [h.toLowerCase()]: '' } }), ChefAuthErrorCode.missingHeaders, new RegExp(h));
      }
    }
    const e = refused(() => check('get 1.3', { headers: { 'x-ops-timestamp': undefined, 'x-ops-content-hash': undefined } }), ChefAuthErrorCode.missingHeaders, /lacks the headers X-Ops-Timestamp, X-Ops-Content-Hash/);
    assert.deepEqual(e.details, { headers: ['X-Ops-Timestamp', 'X-Ops-Content-Hash'] });
  });

  it('refuses a tampered, truncated or lengthened signature', () => {
    for (const v of VERSIONS) {
      const line = headerOf(`post ${v}`, 'x-ops-authorization-2');
      const tampered = `${line.slice(0, 10)}${line[10] === 'A' ? 'B' : 'A'}${line.slice(11)}`;
      refused(() => check(`post ${v}`, { headers: { 'x-ops-authorization-2': tampered } }), ChefAuthErrorCode.badSignature, /X-Ops-Authorization-1\.\.6/);
      refused(() => check(`post ${v}`, { headers: { 'x-ops-authorization-6': undefined } }), ChefAuthErrorCode.badSignature, /X-Ops-Authorization-1\.\.5/);
      refused(() => check(`post ${v}`, { headers: { 'x-ops-authorization-6': `QUJD${headerOf(`post ${v}`, 'x-ops-authorization-6')}` } }), ChefAuthErrorCode.badSignature, /signature/);
      // Base64 ends at its padding (here '=='), for mixlib-authentication too: a line after it adds no byte.
      assert.equal(check(`post ${v}`, { headers: { 'x-ops-authorization-7': 'QUJD' } }).version, v);
      refused(() => check(`post ${v}`, { headers: { 'x-ops-authorization-1': '!!!!' } }), ChefAuthErrorCode.badSignature, /signature/);
    }
  });

  it('refuses signing versions other than 1.0, 1.1 and 1.3, and an algorithm not of its version', () => {
    for (const sign of ['algorithm=sha1;version=1.2;', 'algorithm=sha256;version=1.4', 'algorithm=sha1', 'version=', 'garbage']) {
      refused(() => check('get 1.0', { headers: { 'x-ops-sign': sign } }), ChefAuthErrorCode.unsupportedVersion, /X-Ops-Sign ".*" names (no version|version ".*"); supported signing versions are 1\.0, 1\.1, 1\.3/);
    }
    refused(() => check('get 1.0', { headers: { 'x-ops-sign': 'algorithm=sha256;version=1.0;' } }), ChefAuthErrorCode.algorithmMismatch, /signing version 1\.0 uses algorithm sha1, not "sha256"/);
    refused(() => check('get 1.1', { headers: { 'x-ops-sign': 'algorithm=md5;version=1.1' } }), ChefAuthErrorCode.algorithmMismatch, /version 1\.1 uses algorithm sha1, not "md5"/);
    refused(() => check('get 1.3', { headers: { 'x-ops-sign': 'algorithm=sha1;version=1.3;' } }), ChefAuthErrorCode.algorithmMismatch, /version 1\.3 uses algorithm sha256, not "sha1"/);
    refused(() => check('get 1.3', { headers: { 'x-ops-sign': 'version=1.3' } }), ChefAuthErrorCode.algorithmMismatch, /not "sha1"/);
    // A request signed as 1.3 and sent as 1.1 (or the reverse) does not verify.
    refused(() => check('get 1.3', { headers: { 'x-ops-sign': 'algorithm=sha1;version=1.1' } }), ChefAuthErrorCode.contentHashMismatch, /SHA-1/);
  });

  it('accepts X-Ops-Sign with spaces, with or without the trailing ";", fields in either order, and 1.0 without an algorithm', () => {
    const spellings: [string, string][] = [
      ['get 1.0', 'algorithm=sha1;version=1.0'],
      ['get 1.0', 'version=1.0'],
      ['get 1.0', ' version = 1.0 ; '],
      ['get 1.1', 'algorithm=sha1; version=1.1; '],
      ['get 1.1', 'version=1.1;algorithm=sha1;'],
      ['get 1.3', 'algorithm=sha256;version=1.3'],
      ['get 1.3', ' algorithm = sha256 ;version=1.3;;'],
    ];
    for (const [name, sign] of spellings) assert.equal(check(name, { headers: { 'x-ops-sign': sign } }).version, signed.get(name)!.spec.version, sign);
  });

  it('refuses an X-Ops-Server-API-Version other than 0, 1 and 2', () => {
    refused(() => check('api 3'), ChefAuthErrorCode.unsupportedApiVersion, /X-Ops-Server-API-Version "3" is not supported; supported versions are 0, 1, 2/);
    for (const v of VERSIONS) refused(() => check(`get ${v}`, { headers: { 'x-ops-server-api-version': 'latest' } }), ChefAuthErrorCode.unsupportedApiVersion, /"latest"/);
  });

  it('checks in order: headers, X-Ops-Sign, API version, timestamp, client, content hash, signature', () => {
    const wrong = {
      sign: { 'x-ops-sign': 'algorithm=sha1;version=9' },
      api: { 'x-ops-server-api-version': '7' },
      time: { 'x-ops-timestamp': at(-30) },
      client: { 'x-ops-userid': 'nobody' },
    };
    refused(() => check('post 1.3', { headers: { ...wrong.sign, ...wrong.api, 'x-ops-content-hash': undefined } }), ChefAuthErrorCode.missingHeaders, /X-Ops-Content-Hash/);
    refused(() => check('post 1.3', { headers: { ...wrong.sign, ...wrong.api, ...wrong.time } }), ChefAuthErrorCode.unsupportedVersion, /"9"/);
    refused(() => check('post 1.3', { headers: { ...wrong.api, ...wrong.time, ...wrong.client } }), ChefAuthErrorCode.unsupportedApiVersion, /"7"/);
    refused(() => check('post 1.3', { headers: { ...wrong.time, ...wrong.client }, body: '{}' }), ChefAuthErrorCode.clockSkew, /30 min/);
    refused(() => check('post 1.3', { headers: wrong.client, body: '{}' }), ChefAuthErrorCode.unknownClient, /"nobody"/);
    refused(() => check('mallory key', { body: '{}' }), ChefAuthErrorCode.contentHashMismatch, /X-Ops-Content-Hash/);
  });

  it('tells signed requests from others by X-Ops-Sign, X-Ops-Userid or X-Ops-Authorization-1', () => {
    assert.equal(isChefSigned(signed.get('get 1.3')!.headers), true);
    for (const h of ['x-ops-sign', 'x-ops-userid', 'x-ops-authorization-1']) assert.equal(isChefSigned({ [h]: 'x' }), true, h);
    assert.equal(isChefSigned({ 'x-authentication': 'token', 'x-ops-timestamp': at(0), host: 'h' }), false);
    assert.equal(isChefSigned({}), false);
  });
});

if (missing) console.log(`# skipped: ${missing}`);
