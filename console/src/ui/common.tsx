// Small shared pieces: links that route in-app, errors, the not-permitted notice, hooks.
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { reconnects } from '../api.ts';
import { BASE, navigate } from '../router.ts';

export function Link(p: { to: string; children: ComponentChildren; testid?: string; class?: string; current?: boolean }) {
  return (
    <a
      href={`${BASE}${p.to}`}
      class={p.class}
      data-testid={p.testid}
      aria-current={p.current ? 'page' : undefined}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(p.to);
      }}
    >
      {p.children}
    </a>
  );
}

export function ErrorText(p: { testid: string; error: string | null }) {
  return (
    <p class="error" role="alert" data-testid={p.testid} hidden={!p.error}>
      {p.error ? `Error: ${p.error}` : ''}
    </p>
  );
}

export function NotPermitted(p: { why: string }) {
  return (
    <section class="notice" data-testid="not-permitted" role="status">
      <h1>Not permitted</h1>
      <p>{p.why}</p>
    </section>
  );
}

/** Re-runs `load` when its deps change and after the orchestrator comes back; aborts the previous run. */
export function useLoad(load: (signal: AbortSignal) => Promise<void> | void, deps: unknown[]): void {
  const back = reconnects.value;
  useEffect(() => {
    const ctl = new AbortController();
    void load(ctl.signal);
    return () => ctl.abort();
  }, [...deps, back]);
}

/** `value`, changed only after it has stayed the same for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** A clock ticking every `ms` (for durations of running jobs). */
export function useNow(ms: number, active: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms, active]);
  return now;
}

/** A function that is the latest `fn` on every render (for callbacks held by long-lived things). */
export function useLatest<T>(fn: T): { current: T } {
  const r = useRef(fn);
  r.current = fn;
  return r;
}
