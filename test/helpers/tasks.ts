// Helpers for driving `task run` through a test controller.
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import type { EnvelopeV2 } from '../../protocol/pcp-v2.ts';
import { pxpRequest } from '../../protocol/pxp.ts';

export interface TaskResults {
  exitcode: number;
  stdout: string;
  stderr: string;
  timed_out?: boolean;
}

export interface TaskRun {
  transactionId: string;
  provisional: EnvelopeV2;
  outcome: Promise<EnvelopeV2>;
}

let seq = 0;
export function newTransactionId(prefix = 'tx'): string {
  return `${prefix}-${process.pid}-${Date.now()}-${++seq}`;
}

/** Sends a non-blocking `task run` and waits for the provisional response. */
export async function runTask(
  ctl: PcpClient,
  target: string,
  params: Record<string, unknown>,
  opts: { transactionId?: string; outcomeTimeoutMs?: number; allowRefusal?: boolean } = {},
): Promise<TaskRun> {
  const transactionId = opts.transactionId ?? newTransactionId('task');
  const outcome = ctl.expectTransaction(transactionId, opts.outcomeTimeoutMs ?? 30_000);
  const provisional = await ctl.request(pxpRequest(target, { transaction_id: transactionId, module: 'task', action: 'run', params, notify_outcome: true }, false));
  if (provisional.message_type !== 'http://puppetlabs.com/rpc_provisional_response' && !opts.allowRefusal) {
    throw new Error(`task run was refused at once: ${JSON.stringify(provisional.data)}`);
  }
  return { transactionId, provisional, outcome };
}

export function resultsOf(env: EnvelopeV2): TaskResults {
  if (env.message_type !== 'http://puppetlabs.com/rpc_non_blocking_response') {
    throw new Error(`expected a non-blocking response, got ${env.message_type}: ${JSON.stringify(env.data)}`);
  }
  return (env.data as { results: TaskResults }).results;
}

export function errorOf(env: EnvelopeV2): string {
  if (env.message_type !== 'http://puppetlabs.com/rpc_error_message') {
    throw new Error(`expected rpc_error_message, got ${env.message_type}: ${JSON.stringify(env.data)}`);
  }
  return (env.data as { description: string }).description;
}

export async function statusQuery(ctl: PcpClient, target: string, transactionId: string): Promise<Record<string, unknown>> {
  const res = await ctl.request(pxpRequest(target, { transaction_id: newTransactionId('status'), module: 'status', action: 'query', params: { transaction_id: transactionId } }, true));
  return (res.data as { results: Record<string, unknown> }).results;
}
