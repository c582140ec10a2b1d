// PCP v1 session association, client side (pcp-specifications 1.0, association.md): once the
// WebSocket is open, an `associate_request` from the client's URI to the broker, then the
// matching `associate_response`. Only then is the session usable.
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import { brokerCodeOf } from '../broker-errors.ts';
import { BrokerMessageType } from '../message-types.ts';
import { encodeV1 } from '../pcp-v1.ts';
import { associateRequest, decodeAssociateResponse } from '../pcp-v1-broker.ts';
import type { EnvelopeV2 } from '../pcp-v2.ts';
import { ClientErrorCode, PcpClientError } from './broker-uri.ts';
import { decodeV1Frame } from './wire.ts';

export const DEFAULT_ASSOCIATION_TIMEOUT_MS = 10_000;
export const DEFAULT_MESSAGE_TTL_MS = 60_000;

export interface AssociationOptions {
  /** The client's URI, `pcp://<certificate CN>/<type>`: the request's sender. */
  uri: string;
  timeoutMs: number;
  /** Time to live of the request (`expires`). */
  messageTtlMs: number;
  maxDepth: number;
  log: Logger;
}

export type FrameHandler = (data: Buffer, isBinary: boolean) => void;

/** An associated socket: `handOver` puts the session's handler on, after the frames that came early. */
export interface Association {
  handOver(handler: FrameHandler): void;
}

/**
 * What a message received while associating says of request `requestId`: `true` (associated),
 * an error (`refused` with the broker's reason, `error-message`, `ttl-expired`), or undefined
 * when it is about something else. Pure.
 */
export function associationOutcome(env: EnvelopeV2, requestId: string): true | PcpClientError | undefined {
  switch (env.message_type) {
    case BrokerMessageType.associateResponse: {
      let data;
      try {
        data = decodeAssociateResponse(env.data);
      } catch (cause) {
        return new PcpClientError(ClientErrorCode.refused, `the broker's associate_response is malformed: ${(cause as Error).message}`, { cause });
      }
      if (data.id !== requestId) return undefined;
      if (data.success) return true;
      const reason = data.reason ?? 'no reason given';
      return new PcpClientError(ClientErrorCode.refused, `the broker refused the association of ${env.target ?? 'this client'}: ${reason}`, { details: { reason } });
    }
    case BrokerMessageType.errorMessage:
      if (env.in_reply_to !== requestId) return undefined;
      return new PcpClientError(ClientErrorCode.errorMessage, `the broker answered the associate_request with an error: ${String(env.data)}`, { details: { envelope: env }, brokerCode: brokerCodeOf(env) });
    case BrokerMessageType.ttlExpired:
      if ((env.data as { id?: unknown } | undefined)?.id !== requestId) return undefined;
      return new PcpClientError(ClientErrorCode.ttlExpired, 'the associate_request expired before the broker read it (are the clocks in sync?)');
    default:
      return undefined;
  }
}

/**
 * Associates an open v1 WebSocket. Resolves once associated; frames after the
 * `associate_response` (the same chunk may hold some) are kept for `handOver`. Rejects with a typed
 * error: `timeout` (no answer within `timeoutMs`, `details.phase` 'association'), `refused`,
 * `error-message`, `ttl-expired`, or `not-connected` when the broker closed the connection first.
 * The caller terminates the socket on failure.
 */
export function associateV1(ws: WebSocket, opts: AssociationOptions): Promise<Association> {
  const request = associateRequest(opts.uri, opts.messageTtlMs);
  const requestId = request.envelope.id;
  const early: [Buffer, boolean][] = [];
  let associated = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      fail(new PcpClientError(ClientErrorCode.timeout, `no associate_response from the broker within ${opts.timeoutMs} ms`, { details: { phase: 'association' } }));
    }, opts.timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      ws.off('close', onClose);
      ws.off('error', onError);
    };
    const fail = (err: Error) => {
      cleanup();
      ws.off('message', onMessage);
      reject(err);
    };
    const onMessage = (data: Buffer, isBinary: boolean) => {
      if (associated) {
        early.push([data, isBinary]);
        return;
      }
      let env: EnvelopeV2;
      try {
        env = decodeV1Frame(data, isBinary, opts.uri, opts.maxDepth);
      } catch (err) {
        opts.log.warn({ err: (err as Error).message }, 'ignoring an undecodable message from the broker during association');
        return;
      }
      const outcome = associationOutcome(env, requestId);
      if (outcome === undefined) {
        opts.log.debug({ message_type: env.message_type, id: env.id }, 'ignoring a message received before the association');
      } else if (outcome === true) {
        associated = true;
        cleanup();
        // Kept listening: frames parsed from the same chunk come before the session's handler is on.
        resolve({
          handOver: (handler) => {
            ws.off('message', onMessage);
            ws.on('message', handler);
            for (const [d, b] of early.splice(0)) handler(d, b);
          },
        });
      } else {
        fail(outcome);
      }
    };
    const onClose = (code: number, reason: Buffer) => {
      fail(new PcpClientError(ClientErrorCode.notConnected, `the broker closed the connection during the association (${code}${reason.length ? ` ${reason.toString()}` : ''})`, { details: { code } }));
    };
    const onError = (err: Error) => fail(err);
    ws.on('message', onMessage);
    ws.once('close', onClose);
    ws.once('error', onError);
    ws.send(encodeV1(request), (err) => {
      if (err) fail(err);
    });
  });
}
