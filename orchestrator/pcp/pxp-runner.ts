// Drives one node run over PXP: the non-blocking request, then its outcome by the non-blocking
// response or, when that is missed, by `status query`. Speaks only PXP, so Puppet's pxp-agent
// and Baton's agent are driven alike.
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { ClientErrorCode, PcpClientError } from '../../protocol/client/broker-uri.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { pxpRequest, PxpMessageType } from '../../protocol/pxp.ts';
import { newMessageId } from '../../protocol/pcp-v2.ts';
import type { AgentTaskResults } from '../engine/results.ts';

/** How often a run whose outcome has not arrived is checked with `status query`. */
export const STATUS_POLL_INTERVAL_MS = 5_000;
export const REQUEST_TIMEOUT_MS = 30_000;

export type RunOutcome =
  | { kind: 'results'; results: AgentTaskResults }
  | { kind: 'agent-error'; description: string }
  | { kind: 'not-connected' }
  /** The agent has no record of the transaction: the request never reached it (lost in flight). */
  | { kind: 'lost' }
  | { kind: 'timeout' };

export interface PxpAction {
  module: string;
  action: string;
  params: Record<string, unknown>;
}

export function agentUri(node: string): string {
  return `pcp://${node}/agent`;
}

export class PxpRunner {
  constructor(
    private readonly client: PcpClient,
    private readonly pollIntervalMs = STATUS_POLL_INTERVAL_MS,
  ) {}

  /** Sends the request; resolves once the agent accepted it (provisional) or with why it did not. */
  async start(node: string, transactionId: string, action: PxpAction): Promise<RunOutcome | null> {
    let reply: EnvelopeV2;
    try {
      reply = await this.client.request(pxpRequest(agentUri(node), { transaction_id: transactionId, ...action, notify_outcome: true }, false), REQUEST_TIMEOUT_MS);
    } catch (err) {
      // Classified here, once: the broker's error text is the only word it gives of an absent target.
      if (err instanceof PcpClientError && err.code === ClientErrorCode.errorMessage && /not connected/.test(err.message)) return { kind: 'not-connected' };
      // Our own session was down (the request never left) or went down before the reply: sending
      // the same transaction again once connected is safe, since the agent de-duplicates by id.
      if (err instanceof PcpClientError && err.code === ClientErrorCode.notConnected) return { kind: 'not-connected' };
      if (err instanceof PcpClientError && err.code === ClientErrorCode.unauthorized) return { kind: 'agent-error', description: 'the broker refused the request (unauthorized)' };
      return null; // lost on the way (broker gone, timeout): the wait below finds out by status query
    }
    if (reply.message_type === PxpMessageType.errorMessage) return { kind: 'agent-error', description: String((reply.data as { description?: unknown }).description) };
    if (reply.message_type === PxpMessageType.nonBlockingResponse) return { kind: 'results', results: (reply.data as { results: AgentTaskResults }).results };
    return null; // provisional: running
  }

  /**
   * The agent's view of a transaction: null when it cannot be asked (not connected), 'unknown'
   * when it never saw it, 'running', or the results.
   */
  async status(node: string, transactionId: string): Promise<null | 'unknown' | 'running' | RunOutcome> {
    let reply: EnvelopeV2;
    try {
      reply = await this.client.request(
        pxpRequest(agentUri(node), { transaction_id: `status-${newMessageId()}`, module: 'status', action: 'query', params: { transaction_id: transactionId } }, true),
        REQUEST_TIMEOUT_MS,
      );
    } catch {
      return null;
    }
    if (reply.message_type !== PxpMessageType.blockingResponse) return null;
    const r = (reply.data as { results: { status: string; stdout?: string; stderr?: string; exitcode?: number; timed_out?: boolean } }).results;
    if (r.status === 'unknown') return 'unknown';
    if (r.status === 'running') return 'running';
    if (r.exitcode === undefined && r.status === 'failure') return { kind: 'agent-error', description: r.stderr?.trim() || 'the action failed on the agent' };
    return { kind: 'results', results: { exitcode: r.exitcode ?? null, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.timed_out ? { timed_out: true } : {}) } };
  }

  /** Asks the agent to stop a running action (Baton's agent; others refuse, and the run finishes). */
  async stop(node: string, transactionId: string): Promise<boolean> {
    try {
      const reply = await this.client.request(
        pxpRequest(agentUri(node), { transaction_id: `stop-${newMessageId()}`, module: 'status', action: 'stop', params: { transaction_id: transactionId } }, true),
        REQUEST_TIMEOUT_MS,
      );
      return reply.message_type === PxpMessageType.blockingResponse && (reply.data as { results: { stopped?: boolean } }).results.stopped === true;
    } catch {
      return false;
    }
  }

  /** Live output of a command run from byte offsets (Baton's agent); null when it cannot be asked. */
  async commandOutput(node: string, transactionId: string, offsets: { stdout: number; stderr: number }): Promise<{ status: string; stdout: Buffer; stderr: Buffer; stdout_offset: number; stderr_offset: number } | null> {
    try {
      const reply = await this.client.request(
        pxpRequest(agentUri(node), { transaction_id: `output-${newMessageId()}`, module: 'command', action: 'output', params: { transaction_id: transactionId, stdout_offset: offsets.stdout, stderr_offset: offsets.stderr } }, true),
        REQUEST_TIMEOUT_MS,
      );
      if (reply.message_type !== PxpMessageType.blockingResponse) return null;
      const r = (reply.data as { results: { status: string; stdout: string; stderr: string; stdout_offset: number; stderr_offset: number } }).results;
      return { status: r.status, stdout: Buffer.from(r.stdout, 'base64'), stderr: Buffer.from(r.stderr, 'base64'), stdout_offset: r.stdout_offset, stderr_offset: r.stderr_offset };
    } catch {
      return null;
    }
  }

  /**
   * Waits for the outcome until `deadlineMs` (epoch ms) or `signal`, checking by status query now
   * and then; `lost` when the agent answers that it never saw the transaction.
   */
  async outcome(node: string, transactionId: string, deadlineMs: number, signal?: AbortSignal): Promise<RunOutcome> {
    for (;;) {
      const left = deadlineMs - Date.now();
      if (left <= 0 || signal?.aborted) return { kind: 'timeout' };
      try {
        const env = await this.client.expectTransaction(transactionId, Math.min(left, this.pollIntervalMs));
        if (env.message_type === PxpMessageType.errorMessage) return { kind: 'agent-error', description: String((env.data as { description?: unknown }).description) };
        return { kind: 'results', results: (env.data as { results: AgentTaskResults }).results };
      } catch (err) {
        if (err instanceof PcpClientError && err.code === ClientErrorCode.stopped) throw err;
      }
      const st = await this.status(node, transactionId);
      if (st !== null && st !== 'running' && st !== 'unknown') return st;
      if (st === 'unknown') return { kind: 'lost' };
    }
  }
}
