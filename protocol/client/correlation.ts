// The PCP client's correlation of received messages with what waits for them: a `request()`'s
// reply by message id (`in_reply_to`, or a v1 `ttl_expired` naming the id), a PXP request's reply
// by its target and transaction id (Puppet's pxp-agent sets no `in_reply_to`, and PCP v1 has
// none), and the end of a PXP transaction (`expectTransaction()`). No I/O; one timer per wait.
import type { Logger } from 'pino';
import { BrokerMessageType } from '../message-types.ts';
import type { EnvelopeV2 } from '../pcp-v2.ts';
import { isPxpRequest, PXP_REPLY_TYPES, PxpMessageType } from '../pxp.ts';
import { ClientErrorCode, PcpClientError, replyError } from './broker-uri.ts';
import { stringField } from './wire.ts';

interface Waiter {
  resolve: (env: EnvelopeV2) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** A PXP request's target and transaction id, by which replies without `in_reply_to` are matched. */
  target?: string | undefined;
  transactionId?: string | undefined;
}

export class Correlation {
  /** `request()` waiters by message id. */
  private readonly replies = new Map<string, Waiter>();
  /** Message ids of PXP requests waiting in `replies`, by transaction id. */
  private readonly pxpRequests = new Map<string, string>();
  /** `expectTransaction()` waiters by transaction id. */
  private readonly transactions = new Map<string, Waiter>();

  constructor(private readonly log: Logger) {}

  /**
   * Waits for the reply to `env` (which has its id), for at most `timeoutMs`. A PXP request is
   * also answered by the first PXP reply from its target with its `transaction_id`.
   */
  expectReply(env: EnvelopeV2, timeoutMs: number): Promise<EnvelopeV2> {
    const id = env.id;
    const reply = this.wait(this.replies, id, timeoutMs, env.message_type);
    const tx = isPxpRequest(env) ? (env.data as { transaction_id?: unknown } | undefined)?.transaction_id : undefined;
    if (typeof tx === 'string') {
      const w = this.replies.get(id)!;
      w.target = env.target;
      w.transactionId = tx;
      this.pxpRequests.set(tx, id);
    }
    return reply;
  }

  /** Ends the wait for the reply to message `id` with `err` (the request could not be sent). */
  failReply(id: string, err: Error): void {
    this.settleReply(id)?.reject(err);
  }

  /** See `PcpClient.expectTransaction`. */
  expectTransaction(transactionId: string, timeoutMs: number, signal?: AbortSignal): Promise<EnvelopeV2> {
    if (signal?.aborted) return Promise.reject(new PcpClientError(ClientErrorCode.aborted, `the wait for transaction ${transactionId} was aborted`));
    const ends = this.wait(this.transactions, transactionId, timeoutMs, transactionId);
    if (!signal) return ends;
    const waiter = this.transactions.get(transactionId)!;
    const onAbort = () => {
      if (this.transactions.get(transactionId) !== waiter) return;
      this.settle(this.transactions, transactionId);
      waiter.reject(new PcpClientError(ClientErrorCode.aborted, `the wait for transaction ${transactionId} was aborted`));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const done = () => signal.removeEventListener('abort', onAbort);
    ends.then(done, done);
    return ends;
  }

  /**
   * Hands a received message to the waits it answers: the request it replies to (an
   * `error_message`, `unauthorized` or v1 `ttl_expired` rejects it with a typed error) and the
   * transaction it ends. True when any wait took it.
   */
  deliver(env: EnvelopeV2): boolean {
    const type = env.message_type;
    let consumed = false;
    let replyTo = env.in_reply_to;
    // v1: a `ttl_expired` names the expired message in its data.
    if (replyTo === undefined && type === BrokerMessageType.ttlExpired) replyTo = stringField(env.data, 'id');
    if (replyTo !== undefined) {
      const w = this.settleReply(replyTo);
      if (w) {
        consumed = true;
        const refusal = replyError(env);
        if (refusal) w.reject(refusal);
        else w.resolve(env);
      }
    }
    if (!PXP_REPLY_TYPES.has(type)) return consumed;
    const tx = stringField(env.data, 'transaction_id');
    if (!consumed) {
      // No (known) in_reply_to: an rpc_error_message's data names the request; otherwise the
      // request of this transaction to this sender is the one answered.
      let id = type === PxpMessageType.errorMessage ? stringField(env.data, 'id') : undefined;
      let w = id === undefined ? undefined : this.replies.get(id);
      if (!w && tx !== undefined) {
        id = this.pxpRequests.get(tx);
        const candidate = id === undefined ? undefined : this.replies.get(id);
        if (candidate?.target === env.sender) w = candidate;
      }
      if (w) {
        consumed = true;
        this.settleReply(id!);
        w.resolve(env);
      }
    }
    // A transaction ends with its non-blocking response or an rpc_error_message, which may also
    // have been the immediate reply to the request.
    if (tx !== undefined && (type === PxpMessageType.nonBlockingResponse || type === PxpMessageType.errorMessage)) {
      const w = this.settle(this.transactions, tx);
      if (w) {
        consumed = true;
        w.resolve(env);
      }
    }
    if (!consumed) this.log.debug({ message_type: type, sender: env.sender, transaction_id: tx, in_reply_to: env.in_reply_to }, 'a PXP reply matched no request or transaction');
    return consumed;
  }

  /** The connection is gone: every waiting `request()` ends with `err` (transactions survive reconnections). */
  rejectReplies(err: Error): void {
    for (const w of this.replies.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.replies.clear();
    this.pxpRequests.clear();
  }

  /** The client stopped: every wait ends with `err`. */
  rejectAll(err: Error): void {
    for (const map of [this.replies, this.transactions]) {
      for (const w of map.values()) {
        clearTimeout(w.timer);
        w.reject(err);
      }
      map.clear();
    }
    this.pxpRequests.clear();
  }

  /** `subject` names what is awaited in the timeout's message (built only when the wait times out). */
  private wait(map: Map<string, Waiter>, key: string, timeoutMs: number, subject: string): Promise<EnvelopeV2> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const replies = map === this.replies;
          // Only its own entry: a later wait under the same key may have replaced it.
          if (map.get(key) === waiter) {
            if (replies) this.settleReply(key);
            else map.delete(key);
          }
          const text = replies ? `no reply to ${subject} within ${timeoutMs} ms` : `transaction ${subject} did not end within ${timeoutMs} ms`;
          reject(new PcpClientError(ClientErrorCode.timeout, text));
        }, timeoutMs),
      };
      map.set(key, waiter);
    });
  }

  private settle(map: Map<string, Waiter>, key: string): Waiter | undefined {
    const w = map.get(key);
    if (!w) return undefined;
    map.delete(key);
    clearTimeout(w.timer);
    return w;
  }

  /** Takes the `request()` waiter of message `id`, and its transaction's entry. */
  private settleReply(id: string): Waiter | undefined {
    const w = this.settle(this.replies, id);
    if (w?.transactionId !== undefined && this.pxpRequests.get(w.transactionId) === id) this.pxpRequests.delete(w.transactionId);
    return w;
  }
}
