// PXP v1 message types (the data of PCP messages between controllers and agents).

export const PxpMessageType = {
  blockingRequest: 'http://puppetlabs.com/rpc_blocking_request',
  nonBlockingRequest: 'http://puppetlabs.com/rpc_non_blocking_request',
  blockingResponse: 'http://puppetlabs.com/rpc_blocking_response',
  nonBlockingResponse: 'http://puppetlabs.com/rpc_non_blocking_response',
  provisionalResponse: 'http://puppetlabs.com/rpc_provisional_response',
  errorMessage: 'http://puppetlabs.com/rpc_error_message',
} as const;
export type PxpMessageType = (typeof PxpMessageType)[keyof typeof PxpMessageType];

/** What an agent sends back to a controller: responses and errors, never requests. */
export const PXP_REPLY_TYPES: ReadonlySet<string> = new Set([
  PxpMessageType.blockingResponse,
  PxpMessageType.nonBlockingResponse,
  PxpMessageType.provisionalResponse,
  PxpMessageType.errorMessage,
]);
