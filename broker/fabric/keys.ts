// The fabric's Redis keys and channels. Every key shares one hash tag, so that the scripts, MULTIs
// and MGETs over the directory and the leases stay within one slot on Redis Cluster; each broker's
// inbox is a sharded channel with its own hash tag, so that inboxes spread over the shards.

export const DEFAULT_FABRIC_PREFIX = 'baton';

export interface FabricKeys {
  /** Hash: session URI -> broker id. */
  readonly sessions: string;
  /** Set: the ids of brokers that joined (and have not been swept). */
  readonly brokers: string;
  /** The prefix of each broker's lease key (the key is the prefix and the broker id). */
  readonly leasePrefix: string;
  /** Sharded channel: inventory changes, fabric-wide. */
  readonly inventory: string;
  /** Sharded channel: the messages for one broker. */
  inbox(broker: string): string;
  lease(broker: string): string;
}

export function fabricKeys(prefix: string = DEFAULT_FABRIC_PREFIX): FabricKeys {
  const p = `${prefix}:{fabric}`;
  const leasePrefix = `${p}:broker:`;
  return {
    sessions: `${p}:sessions`,
    brokers: `${p}:brokers`,
    leasePrefix,
    inventory: `${p}:inventory`,
    inbox: (broker) => `${prefix}:fabric-inbox:{${broker}}`,
    lease: (broker) => `${leasePrefix}${broker}`,
  };
}
