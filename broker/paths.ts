// WebSocket paths of the broker (DESIGN.md section 2).

export const DEFAULT_CLIENT_TYPE = 'agent';

export type SessionPath = { kind: 'v2'; clientType: string } | { kind: 'v1'; clientType: string | undefined } | { kind: 'unknown' };

/**
 * `/pcp2/<type>` and `/pcp/v2.0/<type>` are PCP v2; `/pcp/`, `/pcp/v1.0` and
 * `/pcp/v1.0/<type>` are PCP v1 (whose client type is in the association; a type in the path
 * must match it).
 */
export function parseSessionPath(url: string): SessionPath {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const parts = path.split('/').filter((p) => p.length > 0);
  const [first, second, third, ...rest] = parts;
  if (first === 'pcp2') {
    if (third !== undefined) return { kind: 'unknown' };
    return { kind: 'v2', clientType: second ?? DEFAULT_CLIENT_TYPE };
  }
  if (first === 'pcp' && rest.length === 0) {
    if (second === undefined) return { kind: 'v1', clientType: undefined };
    if (second === 'v1.0') return { kind: 'v1', clientType: third };
    if (second === 'v2.0') return { kind: 'v2', clientType: third ?? DEFAULT_CLIENT_TYPE };
  }
  return { kind: 'unknown' };
}
