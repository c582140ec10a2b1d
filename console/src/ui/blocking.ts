// Nomad blocking queries (?index=N&wait=…): a long poll that answers when something changed.
// Runs until aborted; a failure waits with backoff and asks again.
import { isAbort, messageOf, request } from '../api.ts';

const WAIT = '60s';
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;

export async function watchBlocking<T>(path: string, signal: AbortSignal, onData: (v: T) => void, onError: (msg: string | null) => void): Promise<void> {
  let index = 0;
  let backoff = RETRY_FIRST_MS;
  const sep = path.includes('?') ? '&' : '?';
  while (!signal.aborted) {
    try {
      const res = await request(index > 0 ? `${path}${sep}index=${index}&wait=${WAIT}` : path, { signal });
      const next = Number(res.headers.get('x-nomad-index') ?? '0');
      const data = (await res.json()) as T;
      backoff = RETRY_FIRST_MS;
      onError(null);
      onData(data);
      // An index that did not move would make this loop spin: wait for the next change instead.
      index = Number.isFinite(next) && next > 0 ? Math.max(next, index) : index;
      if (index === 0) index = 1;
    } catch (err) {
      if (isAbort(err) || signal.aborted) return;
      onError(messageOf(err));
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(RETRY_MAX_MS, backoff * 2);
    }
  }
}
