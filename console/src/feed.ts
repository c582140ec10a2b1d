// A Server-Sent Events feed read with fetch (EventSource cannot send X-Authentication): one
// connection, resumed with Last-Event-ID after a drop, with backoff; a stalled connection (no
// keep-alive for STALL_MS) is dropped and resumed. `end` closes it for good.
import { createParser } from 'eventsource-parser';
import { ApiError, authHeaders, ErrorKind, errorOf, getToken, sessionEnded, setOffline, setOnline } from './api.ts';

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;
/** The server sends a keep-alive comment every 15 s. */
const STALL_MS = 40_000;

export interface FeedHandlers {
  onEvent(event: string, data: unknown, id: string | undefined): void;
  /** The feed refused (a 4xx other than 401): it is not retried. */
  onError?(message: string): void;
  onEnd?(): void;
}

/**
 * Opens the feed at `path`, after the event `from` when given (a position read with the data the
 * view shows, so that nothing between the two is missed); the returned function closes it.
 */
export function openFeed(path: string, h: FeedHandlers, from?: string): () => void {
  const ctl = new AbortController();
  let lastId: string | undefined = from;
  let wait = RETRY_FIRST_MS;
  let ended = false;

  const run = async () => {
    while (!ctl.signal.aborted && !ended) {
      const attempt = new AbortController();
      const abortAttempt = () => attempt.abort();
      ctl.signal.addEventListener('abort', abortAttempt);
      let stall: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(stall);
        stall = setTimeout(abortAttempt, STALL_MS);
      };
      try {
        arm();
        const res = await fetch(path, {
          headers: { ...authHeaders(), Accept: 'text/event-stream', ...(lastId !== undefined ? { 'Last-Event-ID': lastId } : {}) },
          signal: attempt.signal,
          cache: 'no-store',
        });
        if (res.status === 401 && getToken()) {
          sessionEnded();
          return;
        }
        if (!res.ok) {
          const err = await errorOf(res);
          if (res.status >= 400 && res.status < 500) {
            h.onError?.(err.message);
            return;
          }
          throw err;
        }
        setOnline();
        wait = RETRY_FIRST_MS;
        const parser = createParser({
          onEvent: (m) => {
            if (m.id !== undefined && m.id !== '') lastId = m.id;
            const event = m.event ?? 'message';
            if (event === 'end') {
              ended = true;
              h.onEnd?.();
              return;
            }
            let data: unknown = m.data;
            try {
              data = JSON.parse(m.data);
            } catch {
              // not JSON: given as text
            }
            h.onEvent(event, data, m.id);
          },
        });
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          parser.feed(value);
        }
      } catch (err) {
        if (ctl.signal.aborted) return;
        // A 5xx came from a reachable orchestrator: retried with backoff, without the offline banner.
        if (!attempt.signal.aborted && !(err instanceof ApiError && err.kind === ErrorKind.http)) setOffline();
      } finally {
        clearTimeout(stall);
        ctl.signal.removeEventListener('abort', abortAttempt);
      }
      if (ended || ctl.signal.aborted) return;
      await new Promise((r) => setTimeout(r, wait + Math.random() * wait * 0.2));
      wait = Math.min(RETRY_MAX_MS, wait * 2);
    }
  };
  void run();
  return () => ctl.abort();
}
