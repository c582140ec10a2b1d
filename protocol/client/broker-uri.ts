// Where a client connects: pxp-agent style `broker-ws-uris` (`wss://broker:8142/pcp2/` for PCP
// v2, `wss://broker:8142/pcp/` for v1) completed for the session; the broker's refusals as typed
// errors. Pure.
import { X509Certificate } from 'node:crypto';
import { BrokerErrorCode, brokerCodeOf } from '../broker-errors.ts';
import { BatonError } from '../errors.ts';
import { BrokerMessageType } from '../message-types.ts';
import type { EnvelopeV2 } from '../pcp-v2.ts';
import { BROKER_URI } from '../uri.ts';

export const ClientErrorCode = {
  badBrokerUri: 'pcp-client/bad-broker-uri',
  notConnected: 'pcp-client/not-connected',
  timeout: 'pcp-client/timeout',
  errorMessage: 'pcp-client/error-message',
  unauthorized: 'pcp-client/unauthorized',
  stopped: 'pcp-client/stopped',
  /** The broker refused the connection: an HTTP status (`details.status`), or a PCP v1 association (`details.reason`). */
  refused: 'pcp-client/refused',
  /** The broker is up but shed the connection: retry soon (`details.retryAfterMs` when it said when). */
  busy: 'pcp-client/broker-busy',
  /** PCP v1: the broker dropped the message (`ttl_expired`): it expired before it could be delivered. */
  ttlExpired: 'pcp-client/ttl-expired',
  /** A wait ended by its caller's AbortSignal. */
  aborted: 'pcp-client/aborted',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class PcpClientError extends BatonError {
  declare readonly code: ClientErrorCode;
  /**
   * The broker's stable code of a refusal (`error_message`, `unauthorized`), classified once where
   * it entered (brokerCodeOf); undefined for other errors and for a broker that gave none.
   */
  readonly brokerCode: BrokerErrorCode | undefined;

  constructor(code: ClientErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown>; brokerCode?: BrokerErrorCode | undefined } = {}) {
    super(code, message, options);
    this.brokerCode = options.brokerCode;
  }
}

/** The PCP versions a client speaks (pxp-agent's `pcp-version`). */
export const PcpVersion = { v1: '1', v2: '2' } as const;
export type PcpVersion = (typeof PcpVersion)[keyof typeof PcpVersion];
export const DEFAULT_PCP_VERSION: PcpVersion = PcpVersion.v2;

/** The PCP version a path names, if it names one: `/pcp2/…`, `/pcp/v2.0/…` are v2; `/pcp`, `/pcp/v1.0/…` v1. */
function pathVersion(parts: readonly string[]): PcpVersion | undefined {
  if (parts[0] === 'pcp2') return PcpVersion.v2;
  if (parts[0] !== 'pcp') return undefined;
  if (parts.length === 1 || parts[1] === 'v1.0') return PcpVersion.v1;
  if (parts[1] === 'v2.0') return PcpVersion.v2;
  return undefined;
}

/**
 * v2: `wss://h:8142`, `wss://h:8142/pcp2`, `wss://h:8142/pcp2/` → `wss://h:8142/pcp2/<type>`;
 * `wss://h:8142/pcp/v2.0/` likewise; a path that already names a type is kept.
 * v1: `wss://h:8142`, `…/pcp`, `…/pcp/` → `wss://h:8142/pcp/` (the type travels in the
 * association, as pxp-agent does it); `…/pcp/v1.0` and `…/pcp/v1.0/<type>` are kept.
 * A path of the other version throws `pcp-client/bad-broker-uri`, as does a v1 path naming
 * another client type.
 */
export function sessionUrl(brokerUri: string, clientType: string, version: PcpVersion = DEFAULT_PCP_VERSION): string {
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
  const named = pathVersion(parts);
  if (named !== undefined && named !== version) {
    const expected = version === PcpVersion.v1 ? '/pcp/ or /pcp/v1.0/' : '/pcp2/ or /pcp/v2.0/';
    throw new PcpClientError(
      ClientErrorCode.badBrokerUri,
      `'${brokerUri}' is a PCP v${named} endpoint but pcp-version is ${version}: use a ${expected} path, or pcp-version ${named}`,
      { details: { pathVersion: named, pcpVersion: version } },
    );
  }
  if (version === PcpVersion.v1) {
    if (parts.length === 0 || (parts.length === 1 && parts[0] === 'pcp')) url.pathname = '/pcp/';
    else if (named === PcpVersion.v1 && parts.length === 3 && parts[2] !== clientType) {
      throw new PcpClientError(ClientErrorCode.badBrokerUri, `'${brokerUri}' names the client type '${parts[2]}', not '${clientType}'`);
    }
    return url.toString();
  }
  if (parts.length === 0 || (parts.length === 1 && parts[0] === 'pcp2') || (parts.length === 2 && parts[0] === 'pcp' && parts[1] === 'v2.0')) {
    url.pathname = `/${parts.length === 0 ? 'pcp2' : parts.join('/')}/${clientType}`;
  }
  return url.toString();
}

/** The common name of a PEM certificate. */
export function certificateCommonName(certPem: Buffer | string): string {
  const subject = new X509Certificate(certPem).subject;
  const cn = subject.split('\n').find((line) => line.startsWith('CN='));
  if (!cn) throw new PcpClientError(ClientErrorCode.badBrokerUri, 'the client certificate has no common name');
  return cn.slice(3);
}

/**
 * The broker's refusal of a message, as the typed error its `request()` rejects with:
 * `error_message`, `unauthorized` and (v1) `ttl_expired`; undefined for any other reply. The
 * broker's code of the refusal, when it gave one, is the error's `brokerCode`.
 */
export function replyError(env: EnvelopeV2): PcpClientError | undefined {
  switch (env.message_type) {
    case BrokerMessageType.errorMessage:
      return new PcpClientError(ClientErrorCode.errorMessage, String(env.data), { details: { envelope: env }, brokerCode: brokerCodeOf(env) });
    case BrokerMessageType.unauthorized:
      return new PcpClientError(ClientErrorCode.unauthorized, 'the broker refused the message: unauthorized', {
        details: { envelope: env },
        brokerCode: env.sender === undefined || env.sender === BROKER_URI ? BrokerErrorCode.unauthorized : undefined,
      });
    case BrokerMessageType.ttlExpired:
      return new PcpClientError(ClientErrorCode.ttlExpired, 'the broker dropped the message: it expired before it could be delivered', { details: { envelope: env } });
    default:
      return undefined;
  }
}
