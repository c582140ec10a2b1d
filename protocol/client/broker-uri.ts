// Where a client connects: pxp-agent style `broker-ws-uris` (`wss://broker:8142/pcp2/`) completed
// with the client type. Pure.
import { BatonError } from '../errors.ts';

export const ClientErrorCode = {
  badBrokerUri: 'pcp-client/bad-broker-uri',
  notConnected: 'pcp-client/not-connected',
  timeout: 'pcp-client/timeout',
  errorMessage: 'pcp-client/error-message',
  unauthorized: 'pcp-client/unauthorized',
  stopped: 'pcp-client/stopped',
  /** The broker answered the connection with a refusal (HTTP status in `details.status`). */
  refused: 'pcp-client/refused',
  /** The broker is up but shed the connection: retry soon (`details.retryAfterMs` when it said when). */
  busy: 'pcp-client/broker-busy',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class PcpClientError extends BatonError {
  declare readonly code: ClientErrorCode;
}

/**
 * `wss://h:8142`, `wss://h:8142/pcp2`, `wss://h:8142/pcp2/` → `wss://h:8142/pcp2/<type>`;
 * `wss://h:8142/pcp/v2.0/` likewise; a path that already names a type is kept.
 */
export function sessionUrl(brokerUri: string, clientType: string): string {
  let url: URL;
  try {
    url = new URL(brokerUri);
  } catch (cause) {
    throw new PcpClientError(ClientErrorCode.badBrokerUri, `'${brokerUri}' is not a URL`, { cause });
  }
  if (url.protocol !== 'wss:') {
    throw new PcpClientError(ClientErrorCode.badBrokerUri, `'${brokerUri}' must use wss:// (PCP runs over TLS only)`);
  }
  const parts = url.pathname.split('/').filter(Boolean);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === 'pcp2') || (parts.length === 2 && parts[0] === 'pcp' && parts[1] === 'v2.0')) {
    url.pathname = `/${parts.length === 0 ? 'pcp2' : parts.join('/')}/${clientType}`;
  } else if (parts[0] === 'pcp' && (parts.length === 1 || parts[1] === 'v1.0')) {
    throw new PcpClientError(ClientErrorCode.badBrokerUri, `'${brokerUri}' is a PCP v1 endpoint; Baton's client speaks PCP v2 (/pcp2/)`);
  }
  return url.toString();
}
