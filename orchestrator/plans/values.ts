// Values in a parsed plan, and how they are resolved against a plan's variables (its parameters and
// the results of its earlier steps). Pure.
//
// In a plan's YAML, a string that is only `$name` or `$name.field.sub` refers to a variable; a
// double-quoted string may interpolate `${name.field}`. The parser turns these into marker objects
// (`{$ref}` and `{$interp}`), so that a stored plan is plain JSON that says where its references are.
import { PlanError, PlanErrorCode, STEP_RESULT_FIELDS, type StepResult } from './model.ts';

export const REF_KEY = '$ref';
export const INTERP_KEY = '$interp';

export interface Ref {
  [REF_KEY]: string;
}
export interface Interp {
  [INTERP_KEY]: (string | Ref)[];
}

const WHOLE_REF_RE = /^\$([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)$/;
const INTERP_RE = /\$\{([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\}/g;

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isRef = (v: unknown): v is Ref => isObject(v) && typeof v[REF_KEY] === 'string' && Object.keys(v).length === 1;
export const isInterp = (v: unknown): v is Interp => isObject(v) && Array.isArray(v[INTERP_KEY]) && Object.keys(v).length === 1;

/** A scalar string of the YAML as a plan value: a reference, an interpolation, or the string itself. */
export function stringValue(s: string, doubleQuoted: boolean): string | Ref | Interp {
  const whole = WHOLE_REF_RE.exec(s);
  if (whole) return { [REF_KEY]: whole[1]! };
  if (!doubleQuoted || !s.includes('${')) return s;
  const parts: (string | Ref)[] = [];
  let last = 0;
  for (const m of s.matchAll(INTERP_RE)) {
    if (m.index > last) parts.push(s.slice(last, m.index));
    parts.push({ [REF_KEY]: m[1]! });
    last = m.index + m[0].length;
  }
  if (parts.length === 0) return s;
  if (last < s.length) parts.push(s.slice(last));
  return { [INTERP_KEY]: parts };
}

/** Every reference in a value (`name.path` strings), in order. */
export function refsOf(v: unknown, out: string[] = []): string[] {
  if (isRef(v)) out.push(v[REF_KEY]);
  else if (isInterp(v)) for (const p of v[INTERP_KEY]) refsOf(p, out);
  else if (Array.isArray(v)) for (const x of v) refsOf(x, out);
  else if (isObject(v)) for (const x of Object.values(v)) refsOf(x, out);
  return out;
}

/** Whether a value holds no reference (known at submit). */
export const isLiteral = (v: unknown): boolean => refsOf(v).length === 0;

/** What a variable is, for the checks made at submit: a parameter, a task-like step's result, or a plan step's return. */
export type VariableKind = 'parameter' | 'step' | 'plan_step';

/** Why a reference is not good, or null: `$x` must be known; a task-like step's result offers only its fields. */
export function refProblem(ref: string, known: ReadonlyMap<string, VariableKind>): string | null {
  const [name, field] = ref.split('.');
  const kind = known.get(name!);
  if (!kind) return `unknown variable $${name}: it is neither a parameter of the plan nor the name of an earlier step`;
  if (kind === 'step' && field !== undefined && !(STEP_RESULT_FIELDS as readonly string[]).includes(field)) {
    return `a step result has no field '${field}' (it has ${STEP_RESULT_FIELDS.join(', ')})`;
  }
  if (kind === 'step' && field !== 'results' && field !== undefined && ref.split('.').length > 2) return `$${name}.${field} has no fields`;
  return null;
}

function lookup(ref: string, vars: Readonly<Record<string, unknown>>): unknown {
  const [name, ...path] = ref.split('.');
  if (!(name! in vars)) throw new PlanError(PlanErrorCode.unknownVariable, `unknown variable $${name}`, { variable: name });
  let v: unknown = vars[name!];
  for (const p of path) {
    if (Array.isArray(v) && /^[0-9]+$/.test(p)) v = v[Number(p)];
    else if (isObject(v)) v = v[p];
    else v = undefined;
    if (v === undefined) return null;
  }
  return v;
}

const asText = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v ?? null));

/** The value with every reference replaced by what it refers to (undef → null). */
export function resolveValue(v: unknown, vars: Readonly<Record<string, unknown>>): unknown {
  if (isRef(v)) return lookup(v[REF_KEY], vars) ?? null;
  if (isInterp(v)) return v[INTERP_KEY].map((p) => (typeof p === 'string' ? p : asText(lookup(p[REF_KEY], vars)))).join('');
  if (Array.isArray(v)) return v.map((x) => resolveValue(x, vars));
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolveValue(x, vars)]));
  return v;
}

/**
 * A resolved `targets` value as node names: a string (one name, or several separated by commas,
 * as Bolt's TargetSpec), a list (of names, or of lists and step results), or a step result (its
 * `targets`). Duplicates are dropped, order kept.
 */
export function targetNames(v: unknown): string[] {
  const out = new Set<string>();
  const add = (x: unknown): void => {
    if (typeof x === 'string') for (const n of x.split(',').map((s) => s.trim()).filter(Boolean)) out.add(n);
    else if (Array.isArray(x)) x.forEach(add);
    else if (isObject(x) && Array.isArray(x.targets)) x.targets.forEach(add);
    else if (x !== null && x !== undefined) throw new PlanError(PlanErrorCode.invalidParameters, `targets must be node names, a list of them or a step result, got ${JSON.stringify(x)}`);
  };
  add(v);
  return [...out];
}

/** A step's nodes in batches: `batch_size` nodes each (or that percentage of them, at least one); one batch without it. */
export function batches(nodes: readonly string[], batchSize: number | string | undefined): string[][] {
  if (nodes.length === 0) return [];
  let size = nodes.length;
  if (typeof batchSize === 'number') size = batchSize;
  else if (typeof batchSize === 'string') size = Math.max(1, Math.floor((nodes.length * Number(batchSize.slice(0, -1))) / 100));
  const out: string[][] = [];
  for (let i = 0; i < nodes.length; i += size) out.push(nodes.slice(i, i + size));
  return out;
}

/** A task-like step's result from its nodes' end states and results; nodes never run (later batches) count as failed. */
export function stepResult(nodes: readonly { name: string; state: string; result?: unknown }[], notRun: readonly string[], jobIds: readonly string[]): StepResult {
  const ok = nodes.filter((n) => n.state === 'finished').map((n) => n.name);
  const failed = [...nodes.filter((n) => n.state !== 'finished').map((n) => n.name), ...notRun];
  const results: Record<string, unknown> = {};
  for (const n of nodes) results[n.name] = n.result ?? null;
  return { ok: failed.length === 0, targets: [...nodes.map((n) => n.name), ...notRun], ok_targets: ok, failed_targets: failed, results, job_ids: [...jobIds] };
}

/** Shell words, each in single quotes (for a script's arguments; the shim task sets them with `eval set --`). */
export function shellQuote(words: readonly unknown[]): string {
  return words.map((w) => `'${asText(w).replace(/'/g, `'\\''`)}'`).join(' ');
}

/** The values of a plan job's sensitive parameters, as strings a step's parameter may carry (empty ones left out). */
export function secretValues(params: Record<string, unknown>, sensitive: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      if (v !== '') out.push(v);
    } else if (typeof v === 'number' || typeof v === 'boolean') out.push(String(v));
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  for (const k of sensitive) walk(params[k]);
  return out;
}

/** Whether `value` (a step's parameter, resolved) holds one of `secrets`, whole or inside a string. */
export function carriesSecret(value: unknown, secrets: readonly string[]): boolean {
  if (secrets.length === 0) return false;
  if (typeof value === 'string') return secrets.some((s) => value.includes(s));
  if (typeof value === 'number' || typeof value === 'boolean') return secrets.includes(String(value));
  if (Array.isArray(value)) return value.some((v) => carriesSecret(v, secrets));
  if (value && typeof value === 'object') return Object.values(value).some((v) => carriesSecret(v, secrets));
  return false;
}
