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

/** A table's caption (for screen readers) and column headers. */
export function TableHead(p: { caption: string; columns: readonly string[] }) {
  return (
    <>
      <caption class="sr-only">{p.caption}</caption>
      <thead>
        <tr>
          {p.columns.map((c) => <th key={c} scope="col">{c}</th>)}
        </tr>
      </thead>
    </>
  );
}

/** A labelled select of a filter: `all` (the value '') or one of `options`. */
export function FilterSelect(p: { id: string; label: string; value: string; options: readonly string[]; onChange(v: string): void }) {
  return (
    <p class="field">
      <label for={p.id}>{p.label}</label>
      <select id={p.id} data-testid={p.id} value={p.value} onChange={(e) => p.onChange((e.target as HTMLSelectElement).value)}>
        <option value="">all</option>
        {p.options.map((o) => <option key={o} value={o}>{o}</option>)}
      </select>
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

/** Names that are open (expanded rows), and a toggle of one. */
export function useOpenSet(): [ReadonlySet<string>, (name: string) => void] {
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const toggle = (name: string) =>
    setOpen((cur) => {
      const s = new Set(cur);
      if (s.has(name)) s.delete(name);
      else s.add(name);
      return s;
    });
  return [open, toggle];
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
