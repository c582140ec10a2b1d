// Delivery of one node run's request: a node that is away at dispatch, or a request lost in flight
// (the broker restarted, the agent restarted before it spooled the request), is waited for within
// `node-reconnect-grace` and sent again under the same transaction id. At most once still holds:
// the agent de-duplicates by transaction id, and a run it did start is never sent again (its
// status is running or ended, not unknown).
import type { Logger } from '../../lib/log.ts';
import type { InventoryTracker } from '../pcp/inventory.ts';
import type { PxpAction, PxpRunner, RunOutcome } from '../pcp/pxp-runner.ts';

/** While a node is away, the request is tried again at least this often (inventory news may lag). */
export const RESEND_INTERVAL_MS = 2_000;

export interface DeliveryOptions {
  runner: PxpRunner;
  inventory: InventoryTracker;
  log: Logger;
  graceMs: number;
}

/** A run's end as delivery sees it; `lost` never leaves this module. */
export type DeliveredOutcome = Exclude<RunOutcome, { kind: 'lost' }>;

export class Delivery {
  constructor(private readonly opts: DeliveryOptions) {}

  /** True once the node is connected (now or within the grace), false when the grace ran out. */
  async waitConnected(node: string, graceMs = this.opts.graceMs): Promise<boolean> {
    const { inventory } = this.opts;
    const until = Date.now() + graceMs;
    for (;;) {
      if (inventory.isConnected(node)) return true;
      const left = until - Date.now();
      if (left <= 0) return false;
      await inventory.nextUp(node, left);
    }
  }

  /**
   * Sends the request. When the node (or our own session) is away, waits for it within the grace
   * and sends the same transaction again. Resolves null once the agent accepted it (provisional),
   * or with why it did not; `not-connected` only when the grace ran out.
   */
  async send(node: string, txid: string, action: PxpAction): Promise<DeliveredOutcome | null> {
    const { runner, inventory, log, graceMs } = this.opts;
    const since = Date.now();
    for (let attempt = 0; ; attempt++) {
      const o = await runner.start(node, txid, action);
      if (o === null || o.kind !== 'not-connected') return o as DeliveredOutcome | null; // start() never answers `lost`
      const left = graceMs - (Date.now() - since);
      if (left <= 0) return o;
      if (attempt === 0) log.info({ node, transaction_id: txid, grace_ms: graceMs }, 'node not reachable; waiting for it to send the run again');
      await inventory.nextUp(node, Math.min(left, RESEND_INTERVAL_MS));
    }
  }

  /**
   * The run's outcome by `deadlineMs`. A transaction the agent has no record of never reached it:
   * it is sent again (within the grace since the agent first said so), never failed for it.
   */
  async outcome(node: string, txid: string, action: PxpAction, deadlineMs: number, signal?: AbortSignal): Promise<DeliveredOutcome> {
    const { runner, log, graceMs } = this.opts;
    let lostSinceMs: number | null = null;
    for (;;) {
      const o = await runner.outcome(node, txid, deadlineMs, signal);
      if (o.kind !== 'lost') return o;
      lostSinceMs ??= Date.now();
      if (Date.now() - lostSinceMs > graceMs || Date.now() >= deadlineMs || signal?.aborted) {
        const resent = Date.now() - lostSinceMs > graceMs;
        return {
          kind: 'agent-error',
          description: resent
            ? `the agent on ${node} still has no record of transaction ${txid} after sending it again for ${Math.round(graceMs / 1000)} s`
            : `the agent on ${node} has no record of transaction ${txid} at the run's deadline: the request never reached it`,
        };
      }
      log.info({ node, transaction_id: txid }, 'the agent has no record of the run (lost in flight); sending it again');
      const sent = await this.send(node, txid, action);
      if (sent !== null) return sent;
      lostSinceMs = null; // accepted now
    }
  }
}
