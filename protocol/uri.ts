// PCP URIs: `pcp://<common name>/<client type>`, with `*` wildcards for inventory queries only.
import { ProtocolError, ProtocolErrorCode } from './errors.ts';

export const PCP_SCHEME = 'pcp://';
/** The broker itself. */
export const BROKER_URI = 'pcp:///server';
/** Client type reserved for brokers. */
export const SERVER_CLIENT_TYPE = 'server';
export const WILDCARD = '*';

export interface PcpUri {
  readonly commonName: string;
  readonly clientType: string;
}

/** A client type: letters, digits, `_`, `-` and `.`. */
const CLIENT_TYPE_RE = /^[A-Za-z0-9_.-]{1,64}$/;
/** A common name that may stand in a URI: no `/`, no wildcard, no control characters. */
const COMMON_NAME_RE = /^[^/*\s\u0000-\u001f]{1,255}$/;

export function isValidClientType(type: string): boolean {
  return CLIENT_TYPE_RE.test(type);
}

export function isValidCommonName(cn: string): boolean {
  return COMMON_NAME_RE.test(cn);
}

export function formatUri(commonName: string, clientType: string): string {
  return `${PCP_SCHEME}${commonName}/${clientType}`;
}

/** Splits a URI; throws `pcp/invalid-uri` when it is not of the form `pcp://cn/type`. */
export function parseUri(uri: string): PcpUri {
  if (!uri.startsWith(PCP_SCHEME)) throw new ProtocolError(ProtocolErrorCode.invalidUri, `'${uri}' is not a pcp:// URI`);
  const slash = uri.indexOf('/', PCP_SCHEME.length);
  if (slash < 0 || slash === uri.length - 1 || uri.indexOf('/', slash + 1) >= 0) {
    throw new ProtocolError(ProtocolErrorCode.invalidUri, `'${uri}' must have the form pcp://<common name>/<client type>`);
  }
  return { commonName: uri.slice(PCP_SCHEME.length, slash), clientType: uri.slice(slash + 1) };
}

/** The client type of a URI already known to be well formed (no allocation beyond the slice). */
export function clientTypeOf(uri: string): string {
  return uri.slice(uri.lastIndexOf('/') + 1);
}

export function hasWildcard(uri: string): boolean {
  return uri.includes(WILDCARD);
}

/** A compiled inventory pattern: `*` may stand for the whole common name or the whole type. */
export interface UriPattern {
  readonly source: string;
  readonly commonName: string | null; // null = any
  readonly clientType: string | null; // null = any
}

export function compileUriPattern(pattern: string): UriPattern {
  const { commonName, clientType } = parseUri(pattern);
  for (const part of [commonName, clientType]) {
    if (part !== WILDCARD && part.includes(WILDCARD)) {
      throw new ProtocolError(
        ProtocolErrorCode.invalidUri,
        `'${pattern}': a wildcard must replace the whole common name or the whole client type`,
      );
    }
  }
  return {
    source: pattern,
    commonName: commonName === WILDCARD ? null : commonName,
    clientType: clientType === WILDCARD ? null : clientType,
  };
}

export function matchesUriPattern(p: UriPattern, commonName: string, clientType: string): boolean {
  return (p.commonName === null || p.commonName === commonName) && (p.clientType === null || p.clientType === clientType);
}
