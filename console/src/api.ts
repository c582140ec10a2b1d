// The API client of the console: the token (sessionStorage), X-Authentication on every call,
// the three faces' error formats read into one ApiError, a 401 ends the session, and a network
// failure raises the offline banner until the orchestrator answers again.
import { signal } from '@preact/signals';
import { navigate } from './router.ts';
import type { Me } from './types.ts';

const TOKEN_KEY = 'baton.token';
const PROBE_FIRST_MS = 500;
const PROBE_MAX_MS = 5000;

export const me = signal<Me | null>(null);
/** True while the orchestrator cannot be reached. */
export const offline = signal(false);
/** Bumped each time the orchestrator is reachable again after being offline: views reload on it. */
export const reconnects = signal(0);

export const ErrorKind = { network: 'network', http: 'http', aborted: 'aborted' } as const;
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

export class ApiError extends Error {
  constructor(readonly kind: ErrorKind, readonly status: number, message: string, readonly code: string = '') {
    super(message);
  }
}

export const getToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (t: string): void => sessionStorage.setItem(TOKEN_KEY, t);
export const clearToken = (): void => sessionStorage.removeItem(TOKEN_KEY);

/** The session is over (a 401 with a token): back to sign-in with the reason. */
export function sessionEnded(): void {
  clearToken();
  me.value = null;
  navigate('/signin?reason=expired', { replace: true });
}

export function signOut(): void {
  clearToken();
  me.value = null;
  navigate('/signin');
}

let probing = false;

export function setOnline(): void {
  if (!offline.value) return;
  offline.value = false;
  reconnects.value++;
}

/** Marks the orchestrator unreachable and probes it with backoff until it answers. */
export function setOffline(): void {
  offline.value = true;
  if (probing) return;
  probing = true;
  let wait = PROBE_FIRST_MS;
  const probe = async () => {
    try {
      await fetch('/console/api/me', { headers: authHeaders(), cache: 'no-store' });
      probing = false;
      setOnline();
    } catch {
      wait = Math.min(PROBE_MAX_MS, wait * 2);
      setTimeout(probe, wait);
    }
  };
  setTimeout(probe, wait);
}

export function authHeaders(token: string | null = getToken()): Record<string, string> {
  return token ? { 'X-Authentication': token } : {};
}

/** The message of an error answer in any face's format: Puppet {kind,msg}, Chef {error:[…]}, Nomad text. */
export async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let msg = text.trim();
  let code = '';
  try {
    const body = JSON.parse(text) as { msg?: unknown; kind?: unknown; error?: unknown };
    if (typeof body.msg === 'string') msg = body.msg;
    else if (Array.isArray(body.error)) msg = body.error.map(String).join('; ');
    if (typeof body.kind === 'string') code = body.kind;
  } catch {
    // plain text (the Nomad face)
  }
  return new ApiError(ErrorKind.http, res.status, msg || `${res.status} ${res.statusText}`, code);
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

/** A fetch with the token; throws ApiError. A 401 ends the session. */
export async function request(path: string, o: CallOptions = {}): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: o.method ?? 'GET',
      headers: { ...authHeaders(), ...(o.body !== undefined ? { 'Content-Type': 'application/json' } : {}), Accept: 'application/json', ...o.headers },
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      cache: 'no-store',
    });
  } catch (err) {
    if (o.signal?.aborted) throw new ApiError(ErrorKind.aborted, 0, 'aborted');
    setOffline();
    throw new ApiError(ErrorKind.network, 0, 'Cannot reach the orchestrator', String(err));
  }
  setOnline();
  if (res.status === 401 && getToken()) {
    sessionEnded();
    throw await errorOf(res);
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function api<T = unknown>(path: string, o: CallOptions = {}): Promise<T> {
  const res = await request(path, o);
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

export const isAbort = (err: unknown): boolean => err instanceof ApiError && err.kind === ErrorKind.aborted;
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
