// The fabric's messages between brokers, as they travel over Redis sharded pub/sub: msgpackr,
// decoded into checked shapes. Pure: a message that is not one of these decodes to null (the
// receiver drops and counts it; it never throws).
import { Packr } from 'msgpackr';

export const FabricMessageKind = {
  /** A PCP v2 envelope (its JSON text) for a session on the receiving broker. */
  deliver: 'd',
  /** The receiving broker had no session for a delivered envelope's target. */
  undeliverable: 'u',
  /** A newer session for `uri` opened on broker `by`: the receiver ends its own. */
  replaced: 'r',
  /** A session opened (1) or closed (-1) somewhere in the fabric (the inventory channel). */
  inventory: 'i',
  /** Several `deliver`s for one broker, sent together (those of one tick). */
  batch: 'b',
} as const;

/** One envelope of a batch: its target and its v2 text. */
export interface FabricDelivery {
  target: string;
  env: string;
}

export type FabricMessage =
  | { k: 'd'; from: string; target: string; env: string }
  | { k: 'u'; from: string; sender: string; target: string; id: string }
  | { k: 'r'; from: string; uri: string }
  | { k: 'i'; from: string; uri: string; change: 1 | -1 }
  | { k: 'b'; from: string; items: FabricDelivery[] };

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeFabric(m: FabricMessage): Buffer {
  return packr.pack(m);
}

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD_CHARS;
/** Longest URI or broker id accepted in a fabric message (an envelope text has no such bound). */
const MAX_FIELD_CHARS = 2048;
/** Most envelopes in one batch (the sender flushes long before). */
export const MAX_BATCH_ITEMS = 10_000;

function deliveries(v: unknown): FabricDelivery[] | null {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_BATCH_ITEMS) return null;
  for (const item of v) {
    if (typeof item !== 'object' || item === null) return null;
    const i = item as Record<string, unknown>;
    if (!str(i.target) || typeof i.env !== 'string' || i.env.length === 0) return null;
  }
  return v as FabricDelivery[];
}

/** The message, or null when the bytes (at most `maxBytes` of them) are not one the fabric sends. */
export function decodeFabric(bytes: Buffer, maxBytes: number): FabricMessage | null {
  if (bytes.length > maxBytes) return null;
  let m: unknown;
  try {
    m = packr.unpack(bytes);
  } catch {
    return null;
  }
  if (typeof m !== 'object' || m === null) return null;
  const o = m as Record<string, unknown>;
  if (!str(o.from)) return null;
  switch (o.k) {
    case FabricMessageKind.deliver:
      return str(o.target) && typeof o.env === 'string' && o.env.length > 0 ? { k: 'd', from: o.from, target: o.target, env: o.env } : null;
    case FabricMessageKind.undeliverable:
      return str(o.sender) && str(o.target) && str(o.id) ? { k: 'u', from: o.from, sender: o.sender, target: o.target, id: o.id } : null;
    case FabricMessageKind.replaced:
      return str(o.uri) ? { k: 'r', from: o.from, uri: o.uri } : null;
    case FabricMessageKind.batch: {
      const items = deliveries(o.items);
      return items ? { k: 'b', from: o.from, items: items.map((i) => ({ target: i.target, env: i.env })) } : null;
    }
    case FabricMessageKind.inventory:
      return str(o.uri) && (o.change === 1 || o.change === -1) ? { k: 'i', from: o.from, uri: o.uri, change: o.change } : null;
    default:
      return null;
  }
}
