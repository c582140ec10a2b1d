// Output helpers: tables, colours on a terminal, durations and one-line result summaries. Pure
// apart from writing to stdout.
import Table from 'cli-table3';

export const isTty = (): boolean => process.stdout.isTTY === true;
const useColour = (): boolean => isTty() && !process.env.NO_COLOR;

const paint = (code: number) => (s: string) => (useColour() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const green = paint(32);
export const red = paint(31);
export const yellow = paint(33);
export const dim = paint(2);
export const bold = paint(1);

export function out(text = ''): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/** A table with a header row; plain (no box characters) when not on a terminal. */
export function table(head: string[], rows: (string | number | null | undefined)[][]): string {
  const plain = !isTty();
  const t = new Table({
    head,
    style: { head: plain ? [] : ['bold'], border: plain ? [] : ['grey'], compact: true, 'padding-left': plain ? 0 : 1, 'padding-right': plain ? 2 : 1 },
    ...(plain
      ? { chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '' } }
      : {}),
  });
  for (const r of rows) t.push(r.map((c) => (c === null || c === undefined ? '' : String(c))));
  return plain ? t.toString().split('\n').map((l) => l.trimEnd()).join('\n') : t.toString();
}

/** `1 node`, `3 nodes`. */
export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `0.4 sec`, `12 sec`, `2 min 5 sec`. */
export function duration(ms: number): string {
  if (ms < 9_950) return `${(ms / 1000).toFixed(1)} sec`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} sec`;
  const m = Math.floor(s / 60);
  return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} sec`;
}

/** The first line of a text, cut to `max` characters. */
export function firstLine(text: string, max = 100): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A task node's result in a line: its error, its `_output`'s first line, or its JSON. */
export function taskResultLine(result: unknown, details: Record<string, unknown> = {}): string {
  if (isObject(result)) {
    const err = result._error;
    if (isObject(err) && typeof err.msg === 'string') return firstLine(err.msg);
    if (typeof result._output === 'string') return firstLine(result._output) || dim('(no output)');
    return firstLine(JSON.stringify(result));
  }
  if (typeof details.message === 'string') return firstLine(details.message);
  return '';
}

/** A Puppet run in a line: its status and the resources it changed or failed. */
export function deployResultLine(result: unknown, details: Record<string, unknown> = {}): string {
  const r = isObject(result) ? result : {};
  const metrics = isObject(details.metrics) ? details.metrics : isObject(r.metrics) ? r.metrics : {};
  // Baton's agent nests the counts (`metrics.resources`); pxp-module-puppet gives them as the metrics.
  const resources = isObject(metrics.resources) ? metrics.resources : typeof metrics.changed === 'number' ? metrics : {};
  const parts = [String(r.status ?? details.kind ?? 'unknown')];
  if (typeof resources.changed === 'number' || typeof resources.failed === 'number') {
    parts.push(`${Number(resources.changed ?? 0)} changed, ${Number(resources.failed ?? 0)} failed`);
  }
  // A noop run changes nothing: what it would have changed is out of sync, with noop events.
  const events = isObject(metrics.events) ? metrics.events : {};
  if (Number(events.noop ?? 0) > 0) parts.push(`${Number(resources.out_of_sync ?? events.noop)} pending (noop)`);
  const message = typeof details.message === 'string' ? details.message : typeof r.error === 'string' ? r.error : null;
  if (message) parts.push(firstLine(message));
  return parts.join(', ');
}
