// Text for the views: durations, times, one-line node results. Pure.
import type { JobJson, NodeJson } from './types.ts';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const firstLine = (s: string): string => s.split('\n').find((l) => l.trim() !== '')?.trim() ?? '';

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A job's duration: the API's once it ended, else the time since it started. */
export function jobDuration(job: JobJson, nowMs: number): string {
  if (job.duration !== null) return duration(job.duration);
  const from = job.started_timestamp ?? job.created_timestamp;
  return from ? `${duration((nowMs - Date.parse(from)) / 1000)} so far` : '';
}

export function time(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function resultLine(type: string, n: NodeJson): string {
  const r = n.result;
  const d = n.details ?? {};
  const message = typeof d.message === 'string' ? firstLine(d.message) : '';
  if (type === 'command') {
    const code = isObject(r) ? r.exitcode : undefined;
    return [typeof code === 'number' ? `exit ${code}` : '', message].filter(Boolean).join(', ');
  }
  if (type === 'deploy') {
    const res = isObject(r) ? r : {};
    const metrics = isObject(d.metrics) ? d.metrics : isObject(res.metrics) ? res.metrics : {};
    const resources = isObject(metrics.resources) ? metrics.resources : metrics;
    const parts = [String(res.status ?? d.kind ?? '')].filter(Boolean);
    if (typeof resources.changed === 'number' || typeof resources.failed === 'number') parts.push(`${Number(resources.changed ?? 0)} changed, ${Number(resources.failed ?? 0)} failed`);
    const msg = message || (typeof res.error === 'string' ? firstLine(res.error) : '');
    if (msg) parts.push(msg);
    return parts.join(', ');
  }
  if (isObject(r)) {
    const err = r._error;
    if (isObject(err) && typeof err.msg === 'string') return firstLine(err.msg);
    if (typeof r._output === 'string') return firstLine(r._output) || '(no output)';
    return firstLine(JSON.stringify(r));
  }
  return message;
}

export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

export const pretty = (v: unknown): string => (v === undefined ? '' : JSON.stringify(v, null, 2));

/** The Chef organization of a push job (Baton's CLI uses `baton`). */
export const orgOf = (job: JobJson): string => (typeof job.org === 'string' ? job.org : typeof job.options.org === 'string' ? job.options.org : 'baton');
