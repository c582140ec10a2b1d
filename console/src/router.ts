// Path routing under /console with the history API: the location as a signal, navigate(), and
// the route of a path. Pure parsing plus the one listener.
import { signal } from '@preact/signals';

export const BASE = '/console';

export interface Loc {
  /** The path inside the console, e.g. `/jobs/12` (no BASE, no trailing slash). */
  path: string;
  query: URLSearchParams;
}

function read(): Loc {
  let p = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return { path: p === '' ? '/' : p, query: new URLSearchParams(location.search) };
}

export const loc = signal<Loc>(read());

addEventListener('popstate', () => {
  loc.value = read();
});

/** Goes to `to` (a console path with an optional query string, e.g. `/jobs?page=2`). */
export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  const url = `${BASE}${to}`;
  if (url === location.pathname + location.search) return;
  if (opts.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  loc.value = read();
  if (!opts.replace) scrollTo(0, 0);
}

/** A query string from the non-empty values (`?a=1&b=x`, or `` when none). */
export function qs(values: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export type Route =
  | { view: 'home' }
  | { view: 'signin' }
  | { view: 'fleet' }
  | { view: 'jobs' }
  | { view: 'job'; id: string }
  | { view: 'run' }
  | { view: 'run-puppet' }
  | { view: 'deployments' }
  | { view: 'deployment'; id: string }
  | { view: 'unknown' };

export function routeOf(path: string): Route {
  let parts: string[];
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return { view: 'unknown' }; // a malformed percent escape
  }
  const [a, b, c] = parts;
  if (parts.length === 0) return { view: 'home' };
  if (c !== undefined) return { view: 'unknown' };
  switch (a) {
    case 'signin': return b === undefined ? { view: 'signin' } : { view: 'unknown' };
    case 'fleet': return b === undefined ? { view: 'fleet' } : { view: 'unknown' };
    case 'jobs': return b === undefined ? { view: 'jobs' } : { view: 'job', id: b };
    case 'run': return b === undefined ? { view: 'run' } : b === 'puppet' ? { view: 'run-puppet' } : { view: 'unknown' };
    case 'deployments': return b === undefined ? { view: 'deployments' } : { view: 'deployment', id: b };
    default: return { view: 'unknown' };
  }
}
