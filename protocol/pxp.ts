// The PXP v1 message family (the data of PCP messages between controllers and agents): types,
// request decoding and the builders of responses. Pure.
import type { FromSchema } from 'json-schema-to-ts';
import {
  blockingRequestDataSchema,
  nonBlockingRequestDataSchema,
} from '../schemas/pxp.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import { DEFAULT_MAX_MESSAGE_DEPTH, exceedsValueDepth } from './json-depth.ts';
import { newMessageId, type EnvelopeV2 } from './pcp-v2.ts';
import { compile, describeErrors } from './validate.ts';

export const PxpMessageType = {
  blockingRequest: 'http://puppetlabs.com/rpc_blocking_request',
  nonBlockingRequest: 'http://puppetlabs.com/rpc_non_blocking_request',
  blockingResponse: 'http://puppetlabs.com/rpc_blocking_response',
  nonBlockingResponse: 'http://puppetlabs.com/rpc_non_blocking_response',
  provisionalResponse: 'http://puppetlabs.com/rpc_provisional_response',
  errorMessage: 'http://puppetlabs.com/rpc_error_message',
} as const;
export type PxpMessageType = (typeof PxpMessageType)[keyof typeof PxpMessageType];

/**
 * The PXP module of Puppet runs (`run` {flags, env, job}): Puppet's external module registers
 * under its file name, `pxp-module-puppet`, which is what every deploy asks for. Baton's agent
 * answers to it and to its own older name, `puppet` (jobs recorded before keep that name).
 */
export const PUPPET_RUN_MODULE = 'pxp-module-puppet';
export const PUPPET_RUN_MODULE_NAMES: readonly string[] = [PUPPET_RUN_MODULE, 'puppet'];

export function isPuppetRunModule(module: string): boolean {
  return PUPPET_RUN_MODULE_NAMES.includes(module);
}

/** What an agent sends back to a controller: responses and errors, never requests. */
export const PXP_REPLY_TYPES: ReadonlySet<string> = new Set([
  PxpMessageType.blockingResponse,
  PxpMessageType.nonBlockingResponse,
  PxpMessageType.provisionalResponse,
  PxpMessageType.errorMessage,
]);

export type BlockingRequestData = FromSchema<typeof blockingRequestDataSchema>;
export type NonBlockingRequestData = FromSchema<typeof nonBlockingRequestDataSchema>;

/** A decoded request: blocking requests have `notify_outcome` false and `blocking` true. */
export interface PxpRequest {
  id: string;
  sender: string;
  blocking: boolean;
  transactionId: string;
  module: string;
  action: string;
  params: Record<string, unknown>;
  notifyOutcome: boolean;
}

const validateBlocking = compile<BlockingRequestData>(blockingRequestDataSchema);
const validateNonBlocking = compile<NonBlockingRequestData>(nonBlockingRequestDataSchema);

export function isPxpRequest(env: EnvelopeV2): boolean {
  return env.message_type === PxpMessageType.blockingRequest || env.message_type === PxpMessageType.nonBlockingRequest;
}

/**
 * Decodes the data of a PXP request; throws `pcp/invalid-data` naming what is wrong, or
 * `pcp/too-deep` when the envelope with its data nests deeper than `maxDepth` (checked without
 * recursion, before validation, for envelopes that did not come through `decodeV2`'s text check).
 */
export function decodePxpRequest(env: EnvelopeV2, maxDepth: number = DEFAULT_MAX_MESSAGE_DEPTH): PxpRequest {
  const blocking = env.message_type === PxpMessageType.blockingRequest;
  const validate = blocking ? validateBlocking : validateNonBlocking;
  const data = env.data;
  // The envelope itself is one level.
  if (exceedsValueDepth(data, maxDepth - 1)) {
    throw new ProtocolError(ProtocolErrorCode.tooDeep, `request data nests deeper than ${maxDepth} levels with its envelope (max-message-depth ${maxDepth})`, {
      messageId: env.id,
      details: { max_depth: maxDepth },
    });
  }
  if (!validate(data)) {
    throw new ProtocolError(ProtocolErrorCode.invalidData, describeErrors(validate.errors, `${blocking ? 'rpc_blocking_request' : 'rpc_non_blocking_request'} data`), {
      messageId: env.id,
    });
  }
  const d = data as NonBlockingRequestData;
  return {
    id: env.id,
    sender: env.sender ?? '',
    blocking,
    transactionId: d.transaction_id,
    module: d.module,
    action: d.action,
    params: (d.params ?? {}) as Record<string, unknown>,
    notifyOutcome: blocking ? false : d.notify_outcome,
  };
}

export function pxpRequest(target: string, data: { transaction_id: string; module: string; action: string; params?: object }, blocking: true): EnvelopeV2;
export function pxpRequest(target: string, data: { transaction_id: string; module: string; action: string; params?: object; notify_outcome: boolean }, blocking: false): EnvelopeV2;
export function pxpRequest(target: string, data: object, blocking: boolean): EnvelopeV2 {
  return {
    id: newMessageId(),
    message_type: blocking ? PxpMessageType.blockingRequest : PxpMessageType.nonBlockingRequest,
    target,
    data,
  };
}

function reply(req: Pick<PxpRequest, 'id' | 'sender'>, messageType: string, data: object): EnvelopeV2 {
  return { id: newMessageId(), message_type: messageType, target: req.sender, in_reply_to: req.id, data };
}

export function blockingResponse(req: Pick<PxpRequest, 'id' | 'sender' | 'transactionId'>, results: unknown): EnvelopeV2 {
  return reply(req, PxpMessageType.blockingResponse, { transaction_id: req.transactionId, results });
}

export function nonBlockingResponse(req: Pick<PxpRequest, 'id' | 'sender' | 'transactionId'>, results: unknown): EnvelopeV2 {
  return reply(req, PxpMessageType.nonBlockingResponse, { transaction_id: req.transactionId, results });
}

export function provisionalResponse(req: Pick<PxpRequest, 'id' | 'sender' | 'transactionId'>): EnvelopeV2 {
  return reply(req, PxpMessageType.provisionalResponse, { transaction_id: req.transactionId });
}

/**
 * Stable codes an agent may put beside the description of an rpc_error_message (data `code`), and
 * in `status query` results (`error_code`), so that a controller never reads the text. Puppet's
 * pxp-agent sends none; an error without a code is a plain failure of the action.
 */
export const PxpErrorCode = {
  /** The action was stopped by request (a forced job stop). */
  stopped: 'stopped',
  /** The agent shut down while the action ran, and stopped it. */
  agentShutdown: 'agent-shutdown',
  /** The action ended without an outcome of its own: its process died with the agent, or was killed before it recorded an exit code. */
  actionLost: 'action-lost',
} as const;
export type PxpErrorCode = (typeof PxpErrorCode)[keyof typeof PxpErrorCode];

/** An rpc_error_message; `code` (a PxpErrorCode) is added to the data only when given. */
export function rpcError(req: Pick<PxpRequest, 'id' | 'sender' | 'transactionId'>, description: string, code?: string): EnvelopeV2 {
  return reply(req, PxpMessageType.errorMessage, { transaction_id: req.transactionId, id: req.id, description, ...(code !== undefined ? { code } : {}) });
}

/** The `code` of an rpc_error_message's data, when it carries a string one. */
export function rpcErrorCode(data: unknown): string | undefined {
  const code = typeof data === 'object' && data !== null ? (data as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}
