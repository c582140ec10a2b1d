// Message types of the PCP broker family (pcp-specifications 1.0 and 2.0). PXP types are in pxp.ts.

export const PUPPETLABS_PREFIX = 'http://puppetlabs.com/';

export const BrokerMessageType = {
  inventoryRequest: 'http://puppetlabs.com/inventory_request',
  inventoryResponse: 'http://puppetlabs.com/inventory_response',
  inventoryUpdate: 'http://puppetlabs.com/inventory_update',
  errorMessage: 'http://puppetlabs.com/error_message',
  unauthorized: 'http://puppetlabs.com/unauthorized',
  versionError: 'http://puppetlabs.com/version_error',
  /** PCP v1 only: association, expiry and destination reports. */
  associateRequest: 'http://puppetlabs.com/associate_request',
  associateResponse: 'http://puppetlabs.com/associate_response',
  ttlExpired: 'http://puppetlabs.com/ttl_expired',
  destinationReport: 'http://puppetlabs.com/destination_report',
} as const;
export type BrokerMessageType = (typeof BrokerMessageType)[keyof typeof BrokerMessageType];

/** The WebSocket close code of a session replaced by a newer one for the same URI (broker and clients agree on it). */
export const SESSION_REPLACED_CLOSE_CODE = 4000;
