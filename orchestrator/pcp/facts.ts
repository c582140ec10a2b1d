// What the orchestrator knows of each node for queries and classification: its facts, as its
// agent last reported them (`facts get`), kept in Redis and asked for again when they are older
// than `facts-ttl` or than the node's current connection. Redis failing here is answered as any
// Redis trouble (503 service-unavailable), never as puppetdb-error. With `puppetdb` configured,
// puppetdb/nodes.ts takes this one's place.
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/log.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { newMessageId } from '../../protocol/pcp-v2.ts';
import { pxpRequest, PxpMessageType } from '../../protocol/pxp.ts';
import type { Keys } from '../engine/keys.ts';
import type { NodeFacts } from '../query/index.ts';
import type { InventoryTracker } from './inventory.ts';
import { agentUri } from './pxp-runner.ts';

export const FACTS_REQUEST_TIMEOUT_MS = 60_000;
/** How long a request that needs facts waits for them; slower nodes are judged by the facts kept. */
export const FACTS_REFRESH_DEADLINE_MS = 15_000;
/** Facts requests in flight at once. */
export const FACTS_FETCH_PARALLELISM = 64;

interface CachedFacts {
  facts: Record<string, unknown>;
  fetched_ms: number;
}

export class FactsStore {
  /** Facts requests in flight, shared by every request that needs them. */
  private readonly inflight = new Map<string, Promise<Record<string, unknown> | null>>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly client: PcpClient,
    private readonly inventory: InventoryTracker,
    private readonly ttlS: number,
    private readonly log: Logger,
  ) {}

  /**
   * Every node known (connected now, or with stored facts); with `facts`, fresh facts of the
   * connected ones. With `environments`, only the environment is wanted: an agent's environment
   * is its configuration's, fixed for the life of its connection, so facts fetched during the
   * node's current connection are fresh enough whatever their age (no facts-ttl wait).
   */
  async nodes(opts: { facts: boolean; environments?: boolean }): Promise<NodeFacts[]> {
    // A Redis failure goes on as it is: the faces answer it 503 (service unavailable), like every other.
    const cached: Record<string, string> = opts.facts ? await this.redis.hgetall(this.keys.facts()) : {};
    const byNode = new Map<string, CachedFacts>();
    for (const [name, raw] of Object.entries(cached)) byNode.set(name, JSON.parse(raw) as CachedFacts);
    if (opts.facts) await this.refresh(byNode, opts.environments === true);
    const names = new Set([...this.inventory.all().map((n) => n.name), ...byNode.keys()]);
    return [...names].sort().map((certname) => {
      const facts = byNode.get(certname)?.facts ?? {};
      return { certname, environment: typeof facts.environment === 'string' ? facts.environment : null, connected: this.inventory.isConnected(certname), facts };
    });
  }

  /**
   * Asks connected nodes whose facts are missing or stale, a bounded number at a time, for at most
   * FACTS_REFRESH_DEADLINE_MS: a node that has not answered by then keeps the facts it had.
   */
  private async refresh(byNode: Map<string, CachedFacts>, connectionLong: boolean): Promise<void> {
    const now = Date.now();
    const stale = this.inventory.connectedNodes().filter((n) => {
      const c = byNode.get(n);
      const since = Date.parse(this.inventory.get(n).timestamp ?? '') || 0;
      return !c || c.fetched_ms < since || (!connectionLong && now - c.fetched_ms > this.ttlS * 1000);
    });
    if (stale.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, FACTS_REFRESH_DEADLINE_MS)));
    const work = (async () => {
      for (let i = 0; i < stale.length; i += FACTS_FETCH_PARALLELISM) {
        await Promise.all(stale.slice(i, i + FACTS_FETCH_PARALLELISM).map(async (node) => {
          const facts = await this.shared(node);
          if (facts) byNode.set(node, { facts, fetched_ms: Date.now() });
        }));
      }
    })();
    try {
      await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
    this.log.info({ nodes: stale.length }, 'facts refreshed');
  }

  /** One facts request per node at a time; its answer is kept in Redis. */
  private shared(node: string): Promise<Record<string, unknown> | null> {
    let p = this.inflight.get(node);
    if (!p) {
      p = this.fetch(node).then(async (facts) => {
        if (facts) await this.redis.hset(this.keys.facts(), node, JSON.stringify({ facts, fetched_ms: Date.now() })).catch((err: Error) => this.log.warn({ node, err: err.message }, 'could not keep facts'));
        return facts;
      }).finally(() => this.inflight.delete(node));
      this.inflight.set(node, p);
    }
    return p;
  }

  private async fetch(node: string): Promise<Record<string, unknown> | null> {
    try {
      const reply = await this.client.request(
        pxpRequest(agentUri(node), { transaction_id: `facts-${newMessageId()}`, module: 'facts', action: 'get', params: {} }, true),
        FACTS_REQUEST_TIMEOUT_MS,
      );
      const results = (reply.data as { results?: unknown }).results;
      if (reply.message_type !== PxpMessageType.blockingResponse || typeof results !== 'object' || results === null) {
        this.log.warn({ node, message_type: reply.message_type }, 'the agent did not return facts');
        return null;
      }
      return results as Record<string, unknown>;
    } catch (err) {
      this.log.warn({ node, err: (err as Error).message }, 'could not get the facts of a node');
      return null;
    }
  }
}
