// A broker's membership of the fabric: several brokers (processes, hosts) sharing one Redis act as
// one. Each registers with a lease (renewed; a broker whose lease lapses is gone and its sessions
// leave the directory, swept by any other); a session directory maps each URI to its broker; a
// message for a URI on another broker goes to that broker's channel (sharded pub/sub: SPUBLISH /
// SSUBSCRIBE), msgpackr-encoded (wire.ts). Identity, sender checks and authorization happen where
// the sender is connected; the receiving broker only delivers. Every Redis command has a bound.
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import { projectPath } from '../../lib/paths.ts';
import { fabricKeys, type FabricKeys } from './keys.ts';
import { decodeFabric, encodeFabric, FabricMessageKind, MAX_BATCH_ITEMS, type FabricDelivery, type FabricMessage } from './wire.ts';

/** The envelopes of this tick for one broker, and who waits to hear they went. */
interface Outbox {
  items: FabricDelivery[];
  /** The envelopes' length so far (UTF-16 units, at most their UTF-8 bytes). */
  size: number;
  waiters: ((why: string | null) => void)[];
}

/** A broker's lease lasts this long unless renewed; renewals come every FABRIC_RENEW_MS. */
export const DEFAULT_FABRIC_LEASE_MS = 10_000;
export const DEFAULT_FABRIC_RENEW_MS = 3_000;
/** Bound on each Redis command of the fabric (a message waits at most this for its route). */
export const DEFAULT_FABRIC_REDIS_TIMEOUT_MS = 2_000;
/** Directory entries read per HSCAN step when sweeping a gone broker's sessions. */
const SWEEP_SCAN_COUNT = 1_000;
/** A batch for one broker is sent once its envelopes reach this size (one larger envelope goes alone). */
export const FABRIC_BATCH_MAX_BYTES = 1024 * 1024;
/** A fabric message's own fields, beyond its envelopes (URIs, broker ids, msgpack framing). */
const FABRIC_MESSAGE_OVERHEAD_BYTES = 64 * 1024;
/** Where URIs are, as last learnt (lookups and inventory notices); forgotten whole beyond this size. */
export const MAX_CACHED_LOCATIONS = 500_000;

export interface FabricOptions {
  redisUrl: string;
  brokerId: string;
  prefix?: string;
  leaseMs?: number;
  renewMs?: number;
  redisTimeoutMs?: number;
  /** The largest envelope a session may send (the broker's max-message-size): bounds what is decoded. */
  maxEnvelopeBytes: number;
  log: Logger;
}

/** What the fabric needs of its broker. */
export interface FabricHost {
  /** Delivers a v2 envelope's text to the local session `target`; false when there is none. */
  deliverLocal(target: string, envText: string): boolean;
  /** A message a local session sent to another broker's target could not be delivered there. */
  undeliverable(sender: string, target: string, id: string, why: string): void;
  /** A newer session for `uri` opened on another broker: end the local one as replaced. */
  replacedElsewhere(uri: string): void;
  /** A session opened (1) or closed (-1) on another broker (for inventory subscribers). */
  remoteChange(uri: string, change: 1 | -1): void;
  /** The URIs of this broker's sessions (registered again after Redis lost them). */
  localUris(): Iterable<string>;
  /** A fabric message that was not one (dropped). */
  malformed(): void;
}

interface FabricScripts {
  fabricClaim(dir: string, uri: string, broker: string): Promise<string>;
  fabricRelease(dir: string, uri: string, broker: string): Promise<number>;
  fabricLookup(dir: string, uri: string, leasePrefix: string): Promise<[string, number] | []>;
}

export class Fabric {
  brokerId: string;
  private readonly cmd: Redis & FabricScripts;
  private readonly sub: Redis;
  private readonly keys: FabricKeys;
  private readonly dirKey: string;
  private readonly brokersKey: string;
  private readonly inventoryChannel: string;
  private readonly leaseMs: number;
  /** The largest fabric message decoded: one batch at its bound plus one envelope at the broker's. */
  private readonly maxMessageBytes: number;
  private timer: NodeJS.Timeout | null = null;
  /** URI -> the broker it was last known on: no Redis lookup per message. */
  private readonly where = new Map<string, string>();
  private readonly outboxes = new Map<string, Outbox>();
  private flushScheduled = false;
  /** Directory writes under way (stop waits for them: a broker that stops leaves no entry behind). */
  private readonly writes = new Set<Promise<unknown>>();
  private started = false;
  private stopped = false;

  constructor(private readonly o: FabricOptions, private readonly host: FabricHost) {
    this.brokerId = o.brokerId;
    this.keys = fabricKeys(o.prefix);
    this.dirKey = this.keys.sessions;
    this.brokersKey = this.keys.brokers;
    this.inventoryChannel = this.keys.inventory;
    this.leaseMs = o.leaseMs ?? DEFAULT_FABRIC_LEASE_MS;
    // UTF-8 takes up to 3 bytes per UTF-16 unit of the batch's envelopes.
    this.maxMessageBytes = 3 * FABRIC_BATCH_MAX_BYTES + 3 * o.maxEnvelopeBytes + FABRIC_MESSAGE_OVERHEAD_BYTES;
    const timeout = o.redisTimeoutMs ?? DEFAULT_FABRIC_REDIS_TIMEOUT_MS;
    this.cmd = new Redis(o.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: timeout, enableOfflineQueue: false, lazyConnect: true }) as Redis & FabricScripts;
    // The subscriber has no command timeout: it waits for messages (ioredis resubscribes on reconnect).
    this.sub = new Redis(o.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    const lua = (name: string) => readFileSync(projectPath('broker', 'fabric', 'lua', name), 'utf8');
    this.cmd.defineCommand('fabricClaim', { numberOfKeys: 1, lua: lua('fabric-claim-1.lua') });
    this.cmd.defineCommand('fabricRelease', { numberOfKeys: 1, lua: lua('fabric-release-1.lua') });
    this.cmd.defineCommand('fabricLookup', { numberOfKeys: 1, lua: lua('fabric-lookup-1.lua') });
    for (const r of [this.cmd, this.sub]) r.on('error', (err: Error) => o.log.debug({ err: err.message }, 'fabric redis connection error'));
  }

  /** Names this broker (before start), when the id depends on the port it got. */
  setBrokerId(id: string): void {
    if (this.started) throw new Error('the fabric broker id is fixed once the broker joined');
    this.brokerId = id;
  }

  private channelOf(broker: string): string {
    return this.keys.inbox(broker);
  }

  /** Joins: the lease, the inbox and inventory channels, the renewals and sweeps. */
  async start(): Promise<void> {
    await Promise.all([this.cmd.connect(), this.sub.connect()]);
    this.sub.on('smessageBuffer', (_channel: Buffer, bytes: Buffer) => this.onMessage(bytes));
    await this.subscribe();
    await this.renew();
    // After Redis lost its data (a restart without persistence), the lease and this broker's
    // directory entries are written again.
    this.cmd.on('ready', () => {
      if (this.started && !this.stopped) void this.reregister();
    });
    this.started = true;
    this.timer = setInterval(() => void this.tick(), this.o.renewMs ?? DEFAULT_FABRIC_RENEW_MS);
    this.timer.unref();
    this.o.log.info({ broker_id: this.brokerId }, 'joined the fabric');
  }

  /** One PING on the command connection (bounded by the fabric's command timeout): the health probe. */
  async ping(): Promise<void> {
    const answer = await this.cmd.ping();
    if (answer !== 'PONG') throw new Error(`Redis answered PING with ${answer}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.writes]);
    try {
      await this.cmd.multi().del(this.keys.lease(this.brokerId)).srem(this.brokersKey, this.brokerId).exec();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'could not leave the fabric cleanly; the lease lapses');
    }
    this.sub.disconnect();
    this.cmd.disconnect();
  }

  /** A local session opened: the URI is this broker's now (an older session elsewhere is ended). */
  opened(uri: string): Promise<void> {
    return this.track(this.claim(uri));
  }

  closed(uri: string): Promise<void> {
    return this.track(this.release(uri));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.writes.add(p);
    const done = () => this.writes.delete(p);
    p.then(done, done);
    return p;
  }

  private async claim(uri: string): Promise<void> {
    const old = await this.cmd.fabricClaim(this.dirKey, uri, this.brokerId);
    if (old !== '' && old !== this.brokerId) await this.publish(this.channelOf(old), { k: FabricMessageKind.replaced, from: this.brokerId, uri });
    // Also after a move: the other brokers learn where the URI is now (for subscribers, a repeat).
    if (old !== this.brokerId) await this.publish(this.inventoryChannel, { k: FabricMessageKind.inventory, from: this.brokerId, uri, change: 1 });
  }

  /** A local session closed (not replaced by one elsewhere): its entry goes if it is still this broker's. */
  private async release(uri: string): Promise<void> {
    if ((await this.cmd.fabricRelease(this.dirKey, uri, this.brokerId)) === 1) {
      await this.publish(this.inventoryChannel, { k: FabricMessageKind.inventory, from: this.brokerId, uri, change: -1 });
    }
  }

  /**
   * Sends a v2 envelope's text to the broker of `target`. Resolves null once it is on its way, or
   * with why it is not (for the sender's error_message). The envelopes of one tick for one broker
   * go in one message.
   */
  async forward(target: string, envText: string): Promise<string | null> {
    let broker = this.where.get(target);
    if (broker === undefined) {
      const found = await this.cmd.fabricLookup(this.dirKey, target, this.keys.leasePrefix);
      if (found.length === 0) return `target '${target}' is not connected to any broker of the fabric`;
      const [b, alive] = found;
      if (b === this.brokerId) return `target '${target}' is not connected`;
      if (alive !== 1) return `target '${target}' is not connected: its broker ${b} is gone`;
      broker = b;
      this.learn(target, broker);
    } else if (broker === this.brokerId) {
      this.where.delete(target);
      return `target '${target}' is not connected`;
    }
    return new Promise<string | null>((resolve) => {
      let box = this.outboxes.get(broker);
      if (!box) this.outboxes.set(broker, (box = { items: [], size: 0, waiters: [] }));
      box.items.push({ target, env: envText });
      box.size += envText.length;
      box.waiters.push(resolve);
      if (box.items.length >= MAX_BATCH_ITEMS || box.size >= FABRIC_BATCH_MAX_BYTES) this.flushOne(broker, box);
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const [broker, box] of this.outboxes) this.flushOne(broker, box);
  };

  private flushOne(broker: string, box: Outbox): void {
    this.outboxes.delete(broker);
    const m: FabricMessage = box.items.length === 1
      ? { k: FabricMessageKind.deliver, from: this.brokerId, target: box.items[0]!.target, env: box.items[0]!.env }
      : { k: FabricMessageKind.batch, from: this.brokerId, items: box.items };
    const settle = (why: string | null) => {
      for (const w of box.waiters) w(why);
    };
    this.cmd.spublish(this.channelOf(broker), encodeFabric(m)).then(
      (receivers) => {
        if (receivers !== 0) return settle(null);
        // Nobody listens on its channel: that broker is gone (its lease may not have lapsed yet).
        this.forgetBroker(broker);
        settle(`target '${box.items[0]!.target}' is not connected: its broker ${broker} is not reachable`);
      },
      (err: Error) => settle(`the fabric could not pass the message on (${err.message})`),
    );
  }

  private learn(uri: string, broker: string): void {
    if (this.where.size >= MAX_CACHED_LOCATIONS) this.where.clear();
    this.where.set(uri, broker);
  }

  private forgetBroker(broker: string): void {
    for (const [uri, b] of this.where) if (b === broker) this.where.delete(uri);
  }

  /** The URIs connected to other brokers whose lease holds. */
  async remoteUris(): Promise<string[]> {
    const all = await this.cmd.hgetall(this.dirKey);
    const brokers = [...new Set(Object.values(all))].filter((b) => b !== this.brokerId);
    if (brokers.length === 0) return [];
    const leases = await this.cmd.mget(...brokers.map((b) => this.keys.lease(b)));
    const alive = new Set(brokers.filter((_b, i) => leases[i] !== null));
    return Object.entries(all).filter(([, b]) => alive.has(b)).map(([uri]) => uri);
  }

  private async publish(channel: string, m: FabricMessage): Promise<void> {
    await this.cmd.spublish(channel, encodeFabric(m));
  }

  private onMessage(bytes: Buffer): void {
    const m = decodeFabric(bytes, this.maxMessageBytes);
    if (m === null) {
      this.host.malformed();
      return;
    }
    if (m.from === this.brokerId) return; // our own inventory notices
    try {
      switch (m.k) {
        case 'd':
          if (!this.host.deliverLocal(m.target, m.env)) this.bounce(m.from, m.target, m.env);
          break;
        case 'b':
          for (const item of m.items) if (!this.host.deliverLocal(item.target, item.env)) this.bounce(m.from, item.target, item.env);
          break;
        case 'u':
          this.where.delete(m.target);
          this.host.undeliverable(m.sender, m.target, m.id, `target '${m.target}' is not connected (it left broker ${m.from})`);
          break;
        case 'r':
          this.host.replacedElsewhere(m.uri);
          break;
        case 'i':
          if (m.change === 1) this.learn(m.uri, m.from);
          else this.where.delete(m.uri);
          this.host.remoteChange(m.uri, m.change);
          break;
      }
    } catch (err) {
      this.host.malformed();
      this.o.log.warn({ err: (err as Error).message, kind: m.k }, 'a fabric message could not be handled; it was dropped');
    }
  }

  /** Tells the sender's broker that the envelope found no session here. */
  private bounce(from: string, target: string, env: string): void {
    let sender: unknown;
    let id: unknown;
    try {
      ({ sender, id } = JSON.parse(env) as { sender?: unknown; id?: unknown });
    } catch {
      return this.host.malformed();
    }
    if (typeof sender !== 'string' || typeof id !== 'string') return this.host.malformed();
    void this.publish(this.channelOf(from), { k: FabricMessageKind.undeliverable, from: this.brokerId, sender, target, id })
      .catch((err: Error) => this.o.log.debug({ err: err.message }, 'could not bounce an undeliverable fabric message'));
  }

  private async subscribe(): Promise<void> {
    await this.sub.ssubscribe(this.channelOf(this.brokerId));
    await this.sub.ssubscribe(this.inventoryChannel);
  }

  /** Resolves once the subscriber connection is back and subscribed (messages sent before are lost). */
  private async resubscribed(): Promise<void> {
    if (this.sub.status !== 'ready') {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the fabric subscriber did not reconnect within ${this.leaseMs} ms`)), this.leaseMs);
        this.sub.once('ready', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await this.subscribe(); // again: idempotent, and sure to be in place before we say we are back
  }

  private async renew(): Promise<void> {
    await this.cmd.multi().set(this.keys.lease(this.brokerId), String(Date.now()), 'PX', this.leaseMs).sadd(this.brokersKey, this.brokerId).exec();
  }

  private async reregister(): Promise<void> {
    try {
      await this.resubscribed();
      await this.renew();
      const uris = [...this.host.localUris()];
      for (let i = 0; i < uris.length; i += SWEEP_SCAN_COUNT) {
        const m = this.cmd.multi();
        for (const uri of uris.slice(i, i + SWEEP_SCAN_COUNT)) m.hset(this.dirKey, uri, this.brokerId);
        await m.exec();
      }
      this.o.log.info({ broker_id: this.brokerId, sessions: uris.length }, 'registered again in the fabric (Redis came back)');
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'could not register again in the fabric; the next renewal tries');
    }
  }

  private async tick(): Promise<void> {
    try {
      const before = await this.cmd.exists(this.keys.lease(this.brokerId));
      await this.renew();
      if (before === 0) await this.reregister(); // our lease had lapsed (Redis stalled or lost it)
      await this.sweep();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'fabric lease renewal failed; it is tried again');
    }
  }

  /** Brokers whose lease lapsed: their directory entries go, and inventory subscribers hear it. */
  private async sweep(): Promise<void> {
    const members = await this.cmd.smembers(this.brokersKey);
    const others = members.filter((b) => b !== this.brokerId);
    if (others.length === 0) return;
    const leases = await this.cmd.mget(...others.map((b) => this.keys.lease(b)));
    const gone = new Set(others.filter((_b, i) => leases[i] === null));
    if (gone.size === 0) return;
    let cursor = '0';
    do {
      const [next, flat] = await this.cmd.hscan(this.dirKey, cursor, 'COUNT', SWEEP_SCAN_COUNT);
      cursor = next;
      for (let i = 0; i < flat.length; i += 2) {
        const uri = flat[i]!;
        const broker = flat[i + 1]!;
        if (!gone.has(broker)) continue;
        if ((await this.cmd.fabricRelease(this.dirKey, uri, broker)) !== 1) continue;
        this.where.delete(uri);
        this.host.remoteChange(uri, -1);
        await this.publish(this.inventoryChannel, { k: FabricMessageKind.inventory, from: this.brokerId, uri, change: -1 });
      }
    } while (cursor !== '0');
    for (const b of gone) await this.cmd.srem(this.brokersKey, b);
    this.o.log.info({ brokers: [...gone] }, 'brokers gone from the fabric: their sessions left the directory');
  }
}
