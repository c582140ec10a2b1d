// The inventory family of PCP v2: request, response and batched updates of connected clients.
import type { FromSchema } from 'json-schema-to-ts';
import { inventoryRequestDataSchema, inventoryResponseDataSchema, inventoryUpdateDataSchema } from '../schemas/pcp.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import { BrokerMessageType } from './message-types.ts';
import { newMessageId, type EnvelopeV2 } from './pcp-v2.ts';
import { BROKER_URI, compileUriPattern, type UriPattern } from './uri.ts';
import { compile, describeErrors } from './validate.ts';

export type InventoryRequestData = FromSchema<typeof inventoryRequestDataSchema>;
export type InventoryResponseData = FromSchema<typeof inventoryResponseDataSchema>;
export type InventoryUpdateData = FromSchema<typeof inventoryUpdateDataSchema>;
export type InventoryChange = InventoryUpdateData['changes'][number];

export const InventoryChangeKind = { connected: 1, disconnected: -1 } as const;

const validateRequest = compile<InventoryRequestData>(inventoryRequestDataSchema);
const validateResponse = compile<InventoryResponseData>(inventoryResponseDataSchema);
const validateUpdate = compile<InventoryUpdateData>(inventoryUpdateDataSchema);

export interface InventoryQuery {
  readonly patterns: UriPattern[];
  readonly subscribe: boolean;
}

/** Reads the data of an `inventory_request`; throws `pcp/invalid-data` naming what was wrong. */
export function decodeInventoryRequest(env: EnvelopeV2): InventoryQuery {
  const data = env.data;
  if (!validateRequest(data)) {
    throw new ProtocolError(ProtocolErrorCode.invalidData, describeErrors(validateRequest.errors, 'inventory_request data'), {
      messageId: env.id,
    });
  }
  let patterns: UriPattern[];
  try {
    patterns = data.query.map(compileUriPattern);
  } catch (cause) {
    throw new ProtocolError(ProtocolErrorCode.invalidData, `inventory_request data.query: ${(cause as Error).message}`, {
      cause,
      messageId: env.id,
    });
  }
  return { patterns, subscribe: data.subscribe === true };
}

export function inventoryRequest(query: string[], subscribe?: boolean): EnvelopeV2 {
  const data: InventoryRequestData = subscribe === undefined ? { query } : { query, subscribe };
  return { id: newMessageId(), message_type: BrokerMessageType.inventoryRequest, target: BROKER_URI, data };
}

export function inventoryResponse(target: string, inReplyTo: string, uris: string[]): EnvelopeV2 {
  return {
    id: newMessageId(),
    message_type: BrokerMessageType.inventoryResponse,
    target,
    sender: BROKER_URI,
    in_reply_to: inReplyTo,
    data: { uris } satisfies InventoryResponseData,
  };
}

export function inventoryUpdate(target: string, changes: InventoryChange[]): EnvelopeV2 {
  return {
    id: newMessageId(),
    message_type: BrokerMessageType.inventoryUpdate,
    target,
    sender: BROKER_URI,
    data: { changes } satisfies InventoryUpdateData,
  };
}

export function isInventoryResponseData(data: unknown): data is InventoryResponseData {
  return validateResponse(data);
}

export function isInventoryUpdateData(data: unknown): data is InventoryUpdateData {
  return validateUpdate(data);
}
