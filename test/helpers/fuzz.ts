// Hostile input for real processes, shared by test/integration/fuzz.test.ts and bench/chaos/fuzz.ts:
// PCP frames to a broker, PXP requests to an agent, HTTP bodies and query strings to the
// orchestrator's three faces. Deterministic: everything comes from a seeded PRNG.
import { Agent as HttpsAgent, request } from 'node:https';
import { WebSocket } from 'ws';
import type { Identity } from './pcp-client.ts';

// ── a seeded PRNG ───────────────────────────────────────────────────────────────────────────────

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** mulberry32: [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** Valid UTF-8 text of random code points (no lone surrogates). */
  text(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) {
      const r = this.int(4);
      const cp = r === 0 ? 0x20 + this.int(95) : r === 1 ? this.int(0x80) : r === 2 ? 0x80 + this.int(0xd700) : 0x10000 + this.int(0xfffff);
      s += String.fromCodePoint(cp);
    }
    return s;
  }
}

/** Nesting texts are built once per shape (they are big, and the fuzzers ask for the same ones often). */
const nestCache = new Map<string, string>();
const nest = (n: number, open = '[', close = ']', inner = '') => {
  const key = `${n}|${open}|${close}|${inner}`;
  let text = nestCache.get(key);
  if (text === undefined) {
    text = open.repeat(n) + inner + close.repeat(n);
    if (n >= 1_000) nestCache.set(key, text);
  }
  return text;
};
/** A JSON array of `n` copies of a literal, as text. */
const bigArray = (n: number, literal: string) => `[${`${literal},`.repeat(n - 1)}${literal}]`;
const deepObject = (n: number) => nest(n, '{"a":', '}', '1');
/** Deep nesting levels of the hostile frames and bodies: the crash of issue 12 and far beyond. */
export const HOSTILE_DEPTHS = [5_000, 100_000] as const;

// ── PCP frames ──────────────────────────────────────────────────────────────────────────────────

export interface Frame {
  data: string | Buffer;
  binary?: boolean;
  /** The broker may rightly close the WebSocket for it (invalid UTF-8: 1007, oversize: 1009). */
  mayClose?: boolean;
}

export interface FrameTargets {
  /** A session of the other kind that is connected (routing reaches it). */
  peer: string;
  /** This session's own URI (a correct sender). */
  self: string;
  /** Bytes above the broker's max-message-size. */
  oversizeBytes: number;
}

const REQUEST = 'http://puppetlabs.com/rpc_blocking_request';
const INVENTORY = 'http://puppetlabs.com/inventory_request';
const BROKER = 'pcp:///server';
const BAD_URIS = ['pcp://', 'pcp:///', 'http://a/agent', 'pcp://a/b/c', 'pcp://*/agent', 'pcp://a/*', `pcp://${'x'.repeat(5_000)}/agent`, 'pcp://a\u0000/agent', '', 'pcp://ä/agent'];

/** One hostile PCP v2 frame; frame `i` of a run (kinds rotate, details are random). */
export function hostileFrame(rng: Rng, i: number, t: FrameTargets): Frame {
  const id = `f${i}`;
  const env = (fields: Record<string, unknown>) => JSON.stringify({ id, message_type: REQUEST, target: t.peer, ...fields });
  // 5,000 levels; 100,000 in 3 frames of every 1,000 (they are big).
  const deep = HOSTILE_DEPTHS[i % 1_000 < 20 ? 1 : 0];
  switch (i % 20) {
    case 0: // deep data, arrays or objects
      return { data: `{"id":"${id}","message_type":"${REQUEST}","target":"${rng.pick([t.peer, BROKER])}","data":${rng.int(2) ? nest(deep) : deepObject(deep)}}` };
    case 1: // deep envelope: the frame itself is the nesting
      return { data: rng.int(2) ? nest(deep) : deepObject(deep) };
    case 2: // deep inside something that looks routable, id after the data
      return { data: `{"message_type":"${REQUEST}","data":{"params":${nest(deep, '[{"x":', '}]')}},"target":"${t.peer}","id":"${id}"}` };
    case 3: // huge arrays
      return { data: `{"id":"${id}","message_type":"${REQUEST}","target":"${t.peer}","data":${bigArray(5_000 + rng.int(10_000), String(rng.int(10)))}}` };
    case 4: // inventory queries: too many, bad and huge patterns
      if (rng.int(7) === 0) return { data: `{"id":"${id}","message_type":"${INVENTORY}","target":"${BROKER}","data":{"query":${bigArray(10_001, '"pcp://*/agent"')}}}` };
      return { data: env({ message_type: INVENTORY, target: BROKER, data: rng.pick([{ query: rng.pick(BAD_URIS) }, { query: [rng.pick(BAD_URIS)] }, { query: ['pcp://*/*'], subscribe: 'yes' }, null, [], { query: [], extra: 1 }]) }) };
    case 5: { // truncated JSON
      const whole = env({ data: { a: [1, 2, { b: 'c' }], s: rng.text(20) } });
      return { data: whole.slice(0, rng.int(whole.length)) };
    }
    case 6: // wrong types in the envelope
      return { data: JSON.stringify({ id: rng.pick([5, null, [], {}, true, '', id]), message_type: rng.pick([7, [], null, '', REQUEST]), target: rng.pick([1, {}, [t.peer], null]), sender: rng.pick([2, [], undefined]), in_reply_to: rng.pick([3, {}, '']) }) };
    case 7: // bad URIs as target or sender
      return { data: env(rng.int(2) ? { target: rng.pick(BAD_URIS) } : { sender: rng.pick(BAD_URIS) }) };
    case 8: // __proto__ and constructor keys, in the envelope and in data
      return { data: rng.pick([
        `{"__proto__":{"polluted":1},"id":"${id}","message_type":"${REQUEST}","target":"${t.peer}"}`,
        `{"id":"${id}","message_type":"${REQUEST}","target":"${t.peer}","data":{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"x":1}}}}`,
        `{"id":"${id}","message_type":"${INVENTORY}","target":"${BROKER}","data":{"__proto__":{"query":["pcp://*/*"]}}}`,
        `{"constructor":{"prototype":{"polluted":1}},"id":"${id}","message_type":"x"}`,
      ]) };
    case 9: // very long ids and message types
      return { data: env(rng.int(2) ? { id: 'i'.repeat(257 + rng.int(20_000)) } : { message_type: 'm'.repeat(1_025 + rng.int(10_000)), in_reply_to: 'r'.repeat(300) }) };
    case 10: // random valid UTF-8 text
      return { data: rng.text(1 + rng.int(2_000)) };
    case 11: // random bytes in a binary frame
      return { data: rng.bytes(1 + rng.int(4_000)), binary: true };
    case 12: // not an object at all
      return { data: rng.pick(['null', '0', '"s"', '[]', 'true', '-1e999', '{}', '', ' ', '\u0000', '[1,]', '{"id":}']) };
    case 13: // sender mismatch, wildcard targets, unknown broker message types
      return { data: env(rng.pick([{ sender: 'pcp://someone-else/agent' }, { target: 'pcp://*/agent' }, { target: BROKER, message_type: 'http://puppetlabs.com/nothing' }, { target: BROKER, message_type: 'http://puppetlabs.com/inventory_response', data: { uris: [] } }])) };
    case 14: // escapes, lone surrogates, huge numbers in data (valid JSON, routed)
      return { data: `{"id":"${id}","message_type":"${REQUEST}","target":"${t.peer}","data":{"s":"\\ud800\\udfff\\u0000\\"[{","n":1e308,"m":-0,"big":123456789012345678901234567890}}` };
    case 15: // unknown keys, duplicate keys
      return { data: `{"id":"${id}","id":"${id}x","message_type":"${REQUEST}","target":"${t.peer}","expires":"never","targets":["${t.peer}"]}` };
    case 16: // a deep but allowed message (just under the limit), routed
      return { data: `{"id":"${id}","message_type":"${REQUEST}","target":"${t.peer}","data":${nest(60)}}` };
    case 17: // invalid UTF-8 in a text frame: the broker closes with 1007 (now and then)
      if (i % 500 === 17) return { data: Buffer.concat([Buffer.from(`{"id":"${id}","data":"`), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('"}')]), mayClose: true };
      return { data: env({ data: rng.text(100) }) };
    case 18: // oversize: above max-message-size, closed with 1009 (rarely: it is big)
      if (i % 5_000 === 18) return { data: `{"id":"${id}","data":"${'x'.repeat(t.oversizeBytes)}"}`, mayClose: true };
      return { data: env({ data: { deep: nest(63 - 2) } }) };
    default: // random bytes in a text frame: usually invalid UTF-8, so now and then
      if (i % 1_000 === 19) return { data: rng.bytes(64 + rng.int(512)), mayClose: true };
      return { data: env({ target: t.self }) };
  }
}

/** A raw PCP v2 session that sends exactly what it is given, and reconnects after a close. */
export class RawSession {
  private ws!: WebSocket;
  private waiters = new Map<string, () => void>();
  private syncs = 0;
  received = 0;
  reconnects = 0;

  private constructor(
    private readonly url: string,
    private readonly id: Identity,
  ) {}

  static async open(url: string, id: Identity): Promise<RawSession> {
    const s = new RawSession(url, id);
    await s.connect();
    return s;
  }

  private async connect(): Promise<void> {
    const ws = new WebSocket(this.url, { ...this.id, perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
    ws.on('error', () => {});
    ws.on('message', (data: Buffer) => {
      this.received++;
      // Only the replies to our own markers are read; everything else is counted.
      if (data.length < 2_000 && data.includes('"in_reply_to":"sync-')) {
        const m = /"in_reply_to":"(sync-[^"]+)"/.exec(data.toString());
        if (m) this.waiters.get(m[1]!)?.();
      }
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    this.ws = ws;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(f: Frame): void {
    if (this.open) this.ws.send(f.data, { binary: f.binary === true });
  }

  sendText(text: string): void {
    if (this.open) this.ws.send(text);
  }

  /**
   * Waits until everything sent so far was handled: the reply to a marker (an inventory request,
   * or what `marker` builds) comes back in order. A session the broker closed is reconnected.
   */
  async sync(timeoutMs: number, marker?: (id: string) => string): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!this.open) {
        this.ws.terminate();
        await this.connect();
        this.reconnects++;
      }
      const id = `sync-${++this.syncs}`;
      const replied = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => done(false), timeoutMs);
        const onClose = () => done(false);
        const done = (ok: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(id);
          this.ws.off('close', onClose);
          resolve(ok);
        };
        this.waiters.set(id, () => done(true));
        this.ws.once('close', onClose);
      });
      this.ws.send(marker ? marker(id) : JSON.stringify({ id, message_type: INVENTORY, target: BROKER, data: { query: ['pcp://nobody/agent'] } }));
      if (await replied) return;
      if (this.open) throw new Error(`no answer to ${id} within ${timeoutMs} ms: the peer hangs`);
    }
    throw new Error(`the session to ${this.url} keeps closing`);
  }

  close(): void {
    this.ws?.terminate();
  }
}

export interface BrokerFuzzResult {
  frames: number;
  reconnects: number;
}

/** Sends `frames` hostile frames, alternating over the sessions, syncing every `batch`. */
export async function fuzzBroker(opts: { sessions: { session: RawSession; targets: FrameTargets }[]; frames: number; seed: number; batch?: number; timeoutMs?: number }): Promise<BrokerFuzzResult> {
  const rng = new Rng(opts.seed);
  const batch = opts.batch ?? 200;
  let sent = 0;
  while (sent < opts.frames) {
    for (const { session, targets } of opts.sessions) {
      for (let k = 0; k < batch && sent < opts.frames; k++) {
        const f = hostileFrame(rng, sent++, targets);
        session.send(f);
        if (f.mayClose) await session.sync(opts.timeoutMs ?? 15_000);
      }
      await session.sync(opts.timeoutMs ?? 15_000);
    }
  }
  return { frames: sent, reconnects: opts.sessions.reduce((n, s) => n + s.session.reconnects, 0) };
}

// ── PXP requests to an agent ────────────────────────────────────────────────────────────────────

const NON_BLOCKING = 'http://puppetlabs.com/rpc_non_blocking_request';

/** One hostile PXP request (a valid envelope the broker routes; its data is the attack). */
export function hostilePxp(rng: Rng, i: number, agentUri: string): string {
  const tx = `fz-${i}`;
  const req = (data: unknown, type = REQUEST) => JSON.stringify({ id: `p${i}`, message_type: type, target: agentUri, data });
  switch (i % 16) {
    case 0: return req(rng.pick([null, 1, 'str', [], true, {}]));
    case 1: return req({ transaction_id: rng.pick([5, '', '../../etc/passwd', 'a/b', 'x'.repeat(129), '.hidden', null]), module: 'echo', action: 'echo', params: { argument: 'x' } });
    case 2: return req({ transaction_id: tx, module: rng.pick(['nope', '', 'x'.repeat(129), '__proto__', 'constructor', 'toString']), action: rng.pick(['echo', 'run', '__proto__', 'hasOwnProperty']) });
    case 3: return req({ transaction_id: tx, module: 'echo', action: 'echo', params: rng.pick([[], 'p', 7, { argument: 5 }, { argument: nest(10) }, { argument: 'x', extra: {} }]) });
    case 4: return `{"id":"p${i}","message_type":"${REQUEST}","target":"${agentUri}","data":{"transaction_id":"${tx}","module":"echo","action":"echo","params":{"argument":"x","deep":${nest(58)}}}}`;
    case 5: return `{"id":"p${i}","message_type":"${REQUEST}","target":"${agentUri}","data":{"transaction_id":"${tx}","module":"echo","action":"echo","params":{"__proto__":{"argument":"polluted"},"constructor":{"prototype":{"x":1}}}}}`;
    case 6: return req({ transaction_id: tx, module: 'status', action: 'query', params: rng.pick([{}, { transaction_id: 5 }, { transaction_id: '../x' }, { transaction_id: 'never-seen' }, { transaction_id: tx, more: 1 }]) });
    case 7: return req({ transaction_id: tx, module: 'echo', action: 'echo', notify_outcome: rng.pick(['yes', 1, null]), params: { argument: 'x' } }, NON_BLOCKING);
    case 8: return req({ transaction_id: tx, module: 'task', action: 'run', params: rng.pick([{}, { task: 5 }, { task: 'a::b', input: [], files: 'x' }, { task: 'a::b', input: {}, files: [{ uri: 5 }] }]) });
    case 9: return req({ transaction_id: tx, module: 'command', action: rng.pick(['run', 'commit', 'output', 'abort']), params: rng.pick([{}, { command: 5 }, { command: 'rm -rf /', job: [] }, { job: 'j', node: {} }]) });
    case 10: return req({ transaction_id: tx, module: 'puppet', action: 'run', params: rng.pick([{ flags: 'x' }, { flags: ['--evil'] }, { flags: [5], env: {} }]) });
    case 11: return req({ transaction_id: tx, module: 'echo', action: 'echo', params: { argument: rng.text(500 + rng.int(5_000)) } });
    case 12: return req({ transaction_id: tx, module: 'facts', action: rng.pick(['get', 'nope']), params: rng.pick([{}, { x: 1 }, []]) });
    case 13: return req({ transaction_id: tx, module: 'echo', action: 'echo', params: { argument: 'x' }, extra: new Array(1_000).fill(0) });
    case 14: return req({ transaction_id: 'fz-repeat', module: 'ping', action: 'ping', params: rng.pick([{}, { sender_timestamp: 'x' }]) });
    default: return req({ transaction_id: tx, module: 'echo', action: 'echo', params: { argument: `${'\\u0000'}\u2028\ud800` } });
  }
}

/** A blocking `echo` to the agent whose reply proves it is alive (and that it handled what came before). */
export function echoMarker(agentUri: string, argument = 'alive'): (id: string) => string {
  return (id) => JSON.stringify({ id, message_type: REQUEST, target: agentUri, data: { transaction_id: id, module: 'echo', action: 'echo', params: { argument } } });
}

export async function fuzzAgent(opts: { session: RawSession; agentUri: string; requests: number; seed: number; batch?: number; timeoutMs?: number }): Promise<number> {
  const rng = new Rng(opts.seed);
  const batch = opts.batch ?? 100;
  let sent = 0;
  while (sent < opts.requests) {
    for (let k = 0; k < batch && sent < opts.requests; k++) opts.session.sendText(hostilePxp(rng, sent++, opts.agentUri));
    await opts.session.sync(opts.timeoutMs ?? 20_000, echoMarker(opts.agentUri));
  }
  return sent;
}

// ── HTTP bodies and query strings to the orchestrator ───────────────────────────────────────────

export type Face = 'puppet' | 'chef' | 'nomad';

export interface HostileRequest {
  face: Face;
  method: string;
  path: string;
  body?: string | Buffer;
  contentType?: string | null;
  /** Replaces the token: null sends none. */
  token?: string | null;
}

const DEPLOYMENT_ID = '00000000-0000-4000-8000-000000000000';
/** POST routes with a body that would be valid, and its required string fields. */
const BODY_ROUTES: { face: Face; path: string; method?: string; valid: Record<string, unknown>; required: string[] }[] = [
  { face: 'puppet', path: '/orchestrator/v1/command/task', valid: { environment: 'production', task: 'sample::echo', params: { message: 'x' }, scope: { nodes: ['fuzz-none'] } }, required: ['task'] },
  { face: 'puppet', path: '/orchestrator/v1/command/deploy', valid: { environment: 'production', scope: { query: ['=', 'certname', 'fuzz-none'] } }, required: ['environment'] },
  { face: 'puppet', path: '/orchestrator/v1/command/stop', valid: { job: '999999999' }, required: ['job'] },
  { face: 'puppet', path: '/orchestrator/v1/inventory', valid: { nodes: ['fuzz-none'] }, required: ['nodes'] },
  { face: 'chef', path: '/organizations/fuzz/pushy/jobs', valid: { command: 'chef-client', nodes: ['fuzz-none'] }, required: ['command', 'nodes'] },
  { face: 'nomad', path: '/v1/jobs', method: 'PUT', valid: { Job: { ID: 'fuzz', Name: 'fuzz', TaskGroups: [] } }, required: ['Job'] },
  { face: 'nomad', path: `/v1/deployment/pause/${DEPLOYMENT_ID}`, valid: { Pause: true }, required: ['Pause'] },
];
/** Values of the wrong type for any required field (a job id may be a number: none of these names a job). */
const WRONG = [5, {}, null, true, -1.5, [[]], [5], { $ne: 1 }];

/** Query-string and path attacks (GET): each one is a client error. */
function hostileGet(rng: Rng, deep: number): HostileRequest {
  // URLs stay under Node's 16 KB header limit (beyond it Node answers 431 before any face sees it).
  const qDeep = Math.min(deep, 5_000);
  const notDeep = Math.min(deep, 1_000);
  const kinds: (() => HostileRequest)[] = [
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/inventory?query=${`["from","nodes",${nest(notDeep, '["not",', ']', '["=","certname","a"]')}]`.replaceAll('"', '%22')}` }),
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/inventory?query=${nest(qDeep)}` }),
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/inventory?query=nodes%20%7B${'('.repeat(qDeep)}certname%3D%22a%22${')'.repeat(qDeep)}%7D` }),
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/inventory?query=${encodeURIComponent(rng.pick(['nodes { certname ~ "((" }', 'nodes { x = 1 }', '["and"]', '["=",5,6]', 'nodes {', '[', 'inventory[', `nodes { certname = "${'a'.repeat(3_000)}" and }`]))}` }),
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/inventory?query=${encodeURIComponent(rng.text(200))}` }),
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/jobs?limit=${rng.pick(['-1', 'abc', '1e999', '0x10', ''])}x&order=sideways` }),
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/jobs/${rng.pick(['abc', '-1', '1e5x', '%2e%2e'])}/events?start=${rng.pick(['x', '-5'])}` }),
    () => ({ face: 'puppet', method: 'GET', path: `/orchestrator/v1/jobs/%E0%A4%A` }),
    () => ({ face: 'nomad', method: 'GET', path: `/v1/jobs?index=${rng.pick(['abc', '-1', '1.5', '__proto__'])}` }),
    () => ({ face: 'nomad', method: 'GET', path: `/v1/jobs?index=1&wait=${rng.pick(['forever', '-1s', '1h', '9'.repeat(400)])}` }),
    () => ({ face: 'nomad', method: 'GET', path: `/v1/deployments?prefix=${rng.pick(['zz', 'abc', '%00', 'g'.repeat(100)])}` }),
    () => ({ face: 'nomad', method: 'GET', path: `/v1/deployment/${rng.pick(['short', '..%2F..%2Fx', 'x'.repeat(1_000)])}` }),
    () => ({ face: 'chef', method: 'GET', path: `/organizations/fuzz/pushy/jobs/${rng.pick(['abc', '1x', '%00'])}` }),
    () => ({ face: 'chef', method: 'GET', path: `/organizations/fuzz/pushy/jobs/1/output/n/${rng.pick(['nope', '__proto__'])}` }),
  ];
  return rng.pick(kinds)();
}

/** One hostile HTTP request; request `i` of a run (kinds rotate, details are random). */
export function hostileRequest(rng: Rng, i: number): HostileRequest {
  const route = rng.pick(BODY_ROUTES);
  const base = { face: route.face, method: route.method ?? 'POST', path: route.path };
  const json = (v: unknown) => ({ ...base, body: JSON.stringify(v) });
  const deep = HOSTILE_DEPTHS[i % 50 === 0 ? 1 : 0];
  const field = rng.pick(route.required);
  switch (i % 14) {
    case 0: return { ...base, body: rng.int(2) ? nest(deep) : deepObject(deep) };
    case 1: { // a valid body with one deep member: a query AST, params, a Nomad job spec
      const at = rng.pick(['scope', 'params', 'Job', field]);
      const text = JSON.stringify({ ...route.valid, [at]: '@DEEP@' });
      const inner = at === 'scope' ? `{"query":${nest(deep, '["not",', ']', '["=","certname","a"]')}}` : nest(deep);
      return { ...base, body: text.replace('"@DEEP@"', inner) };
    }
    case 2: {
      const text = JSON.stringify({ ...route.valid, [field]: '@BIG@' });
      return { ...base, body: text.replace('"@BIG@"', bigArray(3_000 + rng.int(9_000), rng.int(2) ? '0' : 'null')) };
    }
    case 3: { const whole = JSON.stringify(route.valid); return { ...base, body: whole.slice(0, rng.int(whole.length)) }; }
    case 4: return json({ ...route.valid, [field]: rng.pick(WRONG.filter((w) => typeof w !== 'number' || field !== 'job')) });
    case 5: return { ...base, body: rng.pick([`{"__proto__":{"admin":true},${JSON.stringify(route.valid).slice(1)}`, `{"constructor":{"prototype":{"admin":true}},${JSON.stringify(route.valid).slice(1)}`]) };
    case 6: return { face: 'puppet', method: 'POST', path: '/orchestrator/v1/command/task', body: JSON.stringify({ environment: rng.pick(['production', 'e'.repeat(20_000)]), task: `${'t'.repeat(5_000 + rng.int(20_000))}::x`, scope: { nodes: ['fuzz-none'] } }) };
    case 7: return { ...base, body: rng.bytes(1 + rng.int(3_000)) };
    case 8: return { face: 'puppet', method: 'POST', path: '/orchestrator/v1/command/task', body: Buffer.concat([Buffer.from('{"task":"'), rng.bytes(8).map((b) => b | 0x80), Buffer.from('","scope":{"nodes":["fuzz-none"]}}')]) };
    case 9: return { ...base, body: JSON.stringify(route.valid), contentType: rng.pick(['text/plain', 'application/xml', 'application/json-patch', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded']) };
    case 10: return { ...base, body: rng.pick(['', ' ', 'null', '[]', '"x"', '0']), contentType: 'application/json' };
    case 11: return { ...base, body: JSON.stringify(route.valid), token: rng.pick([null, 'not-a-token', 'x'.repeat(4_000), '']) };
    default: return hostileGet(rng, deep);
  }
}

/** Whether an answer is a client error in the face's own format. */
export function faceFormatOk(face: Face, status: number, contentType: string, text: string): boolean {
  if (status < 400 || status > 499) return false;
  if (face === 'nomad') return contentType.startsWith('text/plain') && text.length > 0;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return false;
  }
  if (face === 'chef') {
    const e = (json as { error?: unknown }).error;
    return Array.isArray(e) && e.length > 0 && e.every((m) => typeof m === 'string');
  }
  const p = json as { kind?: unknown; msg?: unknown };
  return typeof p.kind === 'string' && p.kind.startsWith('puppetlabs.') && typeof p.msg === 'string';
}

export interface HttpFuzzResult {
  bodies: number;
  five_hundreds: number;
  hangs: number;
  /** Answers that were no 4xx or not in the face's format (a few samples). */
  bad: { status: number; path: string; text: string }[];
  badCount: number;
  statuses: Record<string, number>;
}

/** Sends `count` hostile requests over keep-alive connections, `concurrency` at a time. */
export async function fuzzHttp(opts: { baseUrl: string; ca: Buffer; token: string; count: number; seed: number; concurrency?: number; timeoutMs?: number }): Promise<HttpFuzzResult> {
  const rng = new Rng(opts.seed);
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: opts.concurrency ?? 8, ca: opts.ca });
  const result: HttpFuzzResult = { bodies: 0, five_hundreds: 0, hangs: 0, bad: [], badCount: 0, statuses: {} };
  let next = 0;
  const seen = new Set<string>();
  const one = (r: HostileRequest) =>
    new Promise<void>((resolve) => {
      const headers: Record<string, string> = {};
      const token = r.token === undefined ? opts.token : r.token;
      if (token !== null) headers['x-authentication'] = token;
      if (r.body !== undefined && r.contentType !== null) headers['content-type'] = r.contentType ?? 'application/json';
      const req = request(`${opts.baseUrl}${r.path}`, { method: r.method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString();
          result.statuses[status] = (result.statuses[status] ?? 0) + 1;
          if (status >= 500) result.five_hundreds++;
          if (!faceFormatOk(r.face, status, String(res.headers['content-type'] ?? ''), text)) {
            result.badCount++;
            // One sample per status and route, so that a report shows every kind of failure.
            const kind = `${status} ${r.method} ${r.path.split('?')[0]!.slice(0, 40)}`;
            if (result.bad.length < 20 && !seen.has(kind)) {
              seen.add(kind);
              result.bad.push({ status, path: `${r.method} ${r.path.slice(0, 120)}`, text: text.slice(0, 300) });
            }
          }
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.setTimeout(opts.timeoutMs ?? 15_000, () => {
        result.hangs++;
        req.destroy(new Error('timeout'));
      });
      req.on('error', (err) => {
        if (err.message !== 'timeout') {
          result.badCount++;
          if (result.bad.length < 10) result.bad.push({ status: 0, path: `${r.method} ${r.path.slice(0, 120)}`, text: err.message });
        }
        resolve();
      });
      req.end(r.body);
    });
  const worker = async () => {
    while (next < opts.count) {
      const i = next++;
      await one(hostileRequest(rng, i));
      result.bodies++;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 8 }, worker));
  agent.destroy();
  return result;
}
