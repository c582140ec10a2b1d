// The node query language, AST form (PuppetDB's JSON arrays): validation, the normalized
// condition tree and its compilation to a predicate. Pure: no I/O.
import { BatonError } from '../../protocol/errors.ts';
import { exceedsValueDepth } from '../../protocol/json-depth.ts';

export const QUERY_ERROR_CODE = 'query-error' as const;
/** Deepest nesting of conditions (AST arrays or PQL parentheses) a query may have. */
export const MAX_QUERY_DEPTH = 64;
/**
 * Deepest nesting of a whole AST's arrays: MAX_QUERY_DEPTH conditions inside `from` and `extract`,
 * plus `in`'s `["array", [...]]`. Anything deeper is refused before any recursion over it.
 */
export const MAX_QUERY_AST_DEPTH = MAX_QUERY_DEPTH + 5;
/** How deep quote() renders before it writes `…` (error messages must never recurse far). */
const MAX_QUOTED_DEPTH = 8;
/** Longest rendering of an offending expression quoted in an error message. */
const MAX_QUOTED_CHARS = 160;

export class QueryError extends BatonError {
  declare readonly code: typeof QUERY_ERROR_CODE;

  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(QUERY_ERROR_CODE, message, options);
  }
}

/** What a query runs against: one node's inventory entry. */
export interface NodeFacts {
  certname: string;
  environment: string | null;
  connected: boolean;
  facts: Record<string, unknown>;
}

export const QueryEntity = { nodes: 'nodes', inventory: 'inventory' } as const;
export type QueryEntity = (typeof QueryEntity)[keyof typeof QueryEntity];

export type Scalar = string | number | boolean;

/** A resolved field: `name` is how the query spelled it, `path` the fact path for kind 'fact'. */
export interface FieldRef {
  readonly name: string;
  readonly kind: 'certname' | 'environment' | 'connected' | 'fact';
  readonly path: readonly string[];
}

export type CompareOp = '<' | '<=' | '>' | '>=';

export type Condition =
  | { readonly op: '='; readonly field: FieldRef; readonly value: Scalar }
  | { readonly op: '~'; readonly field: FieldRef; readonly pattern: string; readonly regex: RegExp }
  | { readonly op: CompareOp; readonly field: FieldRef; readonly value: number | string }
  | { readonly op: 'in'; readonly field: FieldRef; readonly values: readonly Scalar[] }
  | { readonly op: 'null?'; readonly field: FieldRef; readonly isNull: boolean }
  | { readonly op: 'and' | 'or'; readonly args: readonly Condition[] }
  | { readonly op: 'not'; readonly arg: Condition };

export type Predicate = (node: NodeFacts) => boolean;

/** A compiled query. Treat as opaque; `ast` is JSON-safe and `parseQuery(ast)` rebuilds it. */
export interface NodeQuery {
  readonly entity: QueryEntity;
  /** Fields named by `extract` / `nodes[...]`, or null when none were given. Only certnames are ever returned. */
  readonly extract: readonly string[] | null;
  /** null selects every node. */
  readonly condition: Condition | null;
  /** Canonical PuppetDB AST of the query. */
  readonly ast: readonly unknown[];
  readonly matches: Predicate;
}

export const VALID_FIELDS = 'certname, environment, connected, facts.<path>, trusted.<path>';
const OPERATORS = '=, ~, <, <=, >, >=, in, null?, and, or, not';

/** A quoted, length- and depth-capped rendering of an AST fragment for error messages. */
export function quote(value: unknown): string {
  const out: string[] = [];
  render(value, 0, out, { chars: 0 });
  const text = out.join('');
  return text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS - 1)}…` : text;
}

/** JSON-like rendering that stops at MAX_QUOTED_DEPTH levels and once MAX_QUOTED_CHARS are written. */
function render(value: unknown, depth: number, out: string[], budget: { chars: number }): void {
  if (budget.chars > MAX_QUOTED_CHARS) return;
  let piece: string;
  if (Array.isArray(value) || (typeof value === 'object' && value !== null)) {
    if (depth >= MAX_QUOTED_DEPTH) piece = Array.isArray(value) ? '[…]' : '{…}';
    else {
      const isArray = Array.isArray(value);
      out.push(isArray ? '[' : '{');
      budget.chars++;
      let first = true;
      for (const [k, v] of isArray ? (value as unknown[]).entries() : Object.entries(value as object)) {
        if (budget.chars > MAX_QUOTED_CHARS) break;
        if (!first) out.push(',');
        first = false;
        if (!isArray) out.push(`${JSON.stringify(String(k))}:`);
        render(v, depth + 1, out, budget);
      }
      out.push(isArray ? ']' : '}');
      return;
    }
  } else if (typeof value === 'string') piece = JSON.stringify(value.length > MAX_QUOTED_CHARS ? value.slice(0, MAX_QUOTED_CHARS) : value);
  else if (value === undefined) piece = 'undefined';
  else piece = typeof value === 'bigint' || typeof value === 'symbol' || typeof value === 'function' ? String(value) : JSON.stringify(value) ?? String(value);
  out.push(piece);
  budget.chars += piece.length;
}

/** Throws the QueryError of a query nested deeper than MAX_QUERY_DEPTH; it quotes nothing of the query. */
export function tooDeep(): never {
  const problem = `query nests deeper than ${MAX_QUERY_DEPTH} levels`;
  throw new QueryError(problem, { details: { problem, max_depth: MAX_QUERY_DEPTH } });
}

/** Throws a QueryError whose message names the problem and the expression it sits in. */
function fail(problem: string, at: unknown, hint?: string): never {
  const message = `${problem} in ${quote(at)}${hint === undefined ? '' : `; ${hint}`}`;
  throw new QueryError(message, { details: { problem: hint === undefined ? problem : `${problem}; ${hint}`, expression: at } });
}

/**
 * Resolves a field name. Returns the problem as a string instead of throwing, so both the AST
 * and the PQL front ends can report it with their own location.
 */
export function resolveField(name: string): FieldRef | string {
  if (name === 'certname' || name === 'environment' || name === 'connected') return { name, kind: name, path: [] };
  const dot = name.indexOf('.');
  const head = dot < 0 ? name : name.slice(0, dot);
  if (head === 'facts' || head === 'trusted') {
    const parts = dot < 0 ? [] : name.slice(dot + 1).split('.');
    if (parts.length === 0 || parts.some((p) => p === '')) {
      return `field '${name}' needs a fact path such as ${head}.${head === 'facts' ? 'os.family' : 'certname'}`;
    }
    return { name, kind: 'fact', path: head === 'trusted' ? ['trusted', ...parts] : parts };
  }
  return `unknown field '${name}' (valid fields: ${VALID_FIELDS})`;
}

function field(raw: unknown, at: unknown): FieldRef {
  if (typeof raw !== 'string') fail(`field must be a string, got ${quote(raw)}`, at);
  const ref = resolveField(raw);
  if (typeof ref === 'string') fail(ref, at);
  return ref;
}

function isScalar(v: unknown): v is Scalar {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

/** Checks a literal against the field's type; `connected` accepts true/false and "true"/"false". */
function literal(f: FieldRef, v: unknown, op: string, at: unknown): Scalar {
  if (v === null) fail(`value for '${op}' must be a string, number or boolean, got null`, at, `use ["null?", "${f.name}", true] to test for null`);
  if (!isScalar(v)) fail(`value for '${op}' must be a string, number or boolean, got ${quote(v)}`, at);
  if (f.kind === 'connected') {
    if (v === true || v === 'true') return true;
    if (v === false || v === 'false') return false;
    fail(`field 'connected' is a boolean; expected true or false, got ${quote(v)}`, at);
  }
  if ((f.kind === 'certname' || f.kind === 'environment') && typeof v !== 'string') {
    fail(`field '${f.name}' holds strings; got ${quote(v)}`, at);
  }
  return v;
}

function arity(expr: readonly unknown[], n: number, what: string): void {
  if (expr.length - 1 !== n) {
    fail(`operator '${String(expr[0])}' takes ${what}, got ${expr.length - 1} argument${expr.length === 2 ? '' : 's'}`, expr);
  }
}

/** Validates one AST condition and returns its normalized form. */
export function compileCondition(raw: unknown, depth = 0, parent: unknown = raw): Condition {
  // `parent` may hold the rest of a hostile nesting: it is never quoted or kept in details.
  if (depth >= MAX_QUERY_DEPTH || (depth === 0 && exceedsValueDepth(raw, MAX_QUERY_AST_DEPTH))) tooDeep();
  if (!Array.isArray(raw) || raw.length === 0 || typeof raw[0] !== 'string') {
    fail(`expected a condition (an array whose first element is an operator), got ${quote(raw)}`, parent);
  }
  const expr: readonly unknown[] = raw;
  const op = expr[0] as string;
  switch (op) {
    case '=': {
      arity(expr, 2, 'a field and a value (2 arguments)');
      const f = field(expr[1], expr);
      return { op, field: f, value: literal(f, expr[2], op, expr) };
    }
    case '~': {
      arity(expr, 2, 'a field and a regex (2 arguments)');
      const f = field(expr[1], expr);
      if (f.kind === 'connected') fail(`'~' cannot be applied to boolean field 'connected'`, expr);
      const pattern = expr[2];
      if (typeof pattern !== 'string') fail(`regex for '~' must be a string, got ${quote(pattern)}`, expr);
      try {
        return { op, field: f, pattern, regex: new RegExp(pattern) };
      } catch (err) {
        return fail(`invalid regex ${quote(pattern)}: ${(err as Error).message}`, expr);
      }
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      arity(expr, 2, 'a field and a value (2 arguments)');
      const f = field(expr[1], expr);
      if (f.kind === 'connected') fail(`'${op}' cannot be applied to boolean field 'connected'`, expr);
      const v = expr[2];
      if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) {
        fail(`value for '${op}' must be a number or a string, got ${quote(v)}`, expr);
      }
      if (f.kind !== 'fact' && typeof v !== 'string') fail(`field '${f.name}' holds strings; cannot compare it with ${quote(v)}`, expr);
      return { op, field: f, value: v };
    }
    case 'in': {
      arity(expr, 2, 'a field and an array of values (2 arguments)');
      const f = field(expr[1], expr);
      let list = expr[2];
      if (Array.isArray(list) && list.length === 2 && list[0] === 'array' && Array.isArray(list[1])) list = list[1];
      else if (Array.isArray(list) && (list[0] === 'extract' || list[0] === 'from' || (typeof list[0] === 'string' && list[0].startsWith('select_')))) {
        fail(`subqueries are not supported; 'in' needs a literal array`, expr);
      }
      if (!Array.isArray(list)) fail(`operator 'in' takes a field and an array of values, got ${quote(list)}`, expr);
      return { op, field: f, values: list.map((v: unknown) => literal(f, v, op, expr)) };
    }
    case 'null?': {
      arity(expr, 2, 'a field and true or false (2 arguments)');
      const f = field(expr[1], expr);
      if (typeof expr[2] !== 'boolean') fail(`operator 'null?' takes a field and true or false, got ${quote(expr[2])}`, expr);
      return { op, field: f, isNull: expr[2] };
    }
    case 'and':
    case 'or': {
      if (expr.length < 2) fail(`operator '${op}' needs at least one condition`, expr);
      return { op, args: expr.slice(1).map((c) => compileCondition(c, depth + 1, expr)) };
    }
    case 'not':
      arity(expr, 1, 'exactly one condition');
      return { op, arg: compileCondition(expr[1], depth + 1, expr) };
    case 'from':
    case 'extract':
      return fail(`'${op}' is only allowed at the top level of a query`, expr);
    default:
      return fail(`unknown operator '${op}'`, expr, `operators are ${OPERATORS}`);
  }
}

function entityOf(raw: unknown, at: unknown): QueryEntity {
  if (raw === QueryEntity.nodes || raw === QueryEntity.inventory) return raw;
  if (typeof raw !== 'string') fail(`'from' needs an entity name, got ${quote(raw)}`, at);
  return fail(`only nodes and inventory queries select nodes, got '${raw}'`, at);
}

/** `["extract", fields, condition?]` → its fields and condition. */
function extractOf(expr: readonly unknown[]): { fields: string[]; condition: unknown } {
  if (expr.length < 2 || expr.length > 3) {
    fail(`'extract' takes a field list and at most one condition, got ${expr.length - 1} arguments`, expr);
  }
  const raw = expr[1];
  const fields = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === 'string')) {
    fail(`'extract' needs a field name or a non-empty array of field names, got ${quote(raw)}`, expr);
  }
  return { fields: fields as string[], condition: expr[2] };
}

/** Validates a whole AST query (`from`, `extract` or a bare condition) and compiles it. */
export function compileAst(raw: unknown): NodeQuery {
  if (!Array.isArray(raw)) fail(`a query must be an array, got ${quote(raw)}`, raw);
  // Before any recursion: the error names the limit and quotes nothing of the query.
  if (exceedsValueDepth(raw, MAX_QUERY_AST_DEPTH)) tooDeep();
  if (raw.length === 0) fail('empty query', raw, 'use ["from", "nodes"] to select every node');
  let entity: QueryEntity = QueryEntity.nodes;
  let extract: string[] | null = null;
  let body: unknown = raw;
  if (raw[0] === 'from') {
    if (raw.length < 2 || raw.length > 3) {
      fail(`'from' takes an entity and at most one condition, got ${raw.length - 1} arguments`, raw, 'paging (limit, order_by, offset) is not supported');
    }
    entity = entityOf(raw[1], raw);
    body = raw[2];
  }
  if (Array.isArray(body) && body[0] === 'extract') {
    const e = extractOf(body);
    extract = e.fields;
    body = e.condition;
  }
  const condition = body === undefined ? null : compileCondition(body);
  return makeQuery(entity, extract, condition);
}

const compiled = new WeakSet<object>();

/** True for objects made by compileAst / makeQuery (i.e. by parseQuery). */
export function isNodeQuery(value: unknown): value is NodeQuery {
  return typeof value === 'object' && value !== null && compiled.has(value);
}

export function makeQuery(entity: QueryEntity, extract: readonly string[] | null, condition: Condition | null): NodeQuery {
  const where = condition === null ? [] : [conditionToAst(condition)];
  const ast = extract === null ? ['from', entity, ...where] : ['from', entity, ['extract', [...extract], ...where]];
  const matches = condition === null ? () => true : compilePredicate(condition);
  const query: NodeQuery = Object.freeze({ entity, extract: extract === null ? null : Object.freeze([...extract]), condition, ast, matches });
  compiled.add(query);
  return query;
}

/** The canonical PuppetDB AST of a normalized condition. */
export function conditionToAst(c: Condition): unknown[] {
  switch (c.op) {
    case '=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return [c.op, c.field.name, c.value];
    case '~':
      return [c.op, c.field.name, c.pattern];
    case 'in':
      return [c.op, c.field.name, ['array', [...c.values]]];
    case 'null?':
      return [c.op, c.field.name, c.isNull];
    case 'and':
    case 'or':
      return [c.op, ...c.args.map(conditionToAst)];
    case 'not':
      return [c.op, conditionToAst(c.arg)];
  }
}

// ---- evaluation -------------------------------------------------------------------------

type Getter = (node: NodeFacts) => unknown;

const hasOwn = Object.hasOwn;

function getter(f: FieldRef): Getter {
  switch (f.kind) {
    case 'certname':
      return (n) => n.certname;
    case 'environment':
      return (n) => n.environment;
    case 'connected':
      return (n) => n.connected;
    case 'fact': {
      const path = f.path;
      const len = path.length;
      if (len === 1) {
        const key = path[0]!;
        return (n) => {
          const facts: unknown = n.facts;
          return typeof facts === 'object' && facts !== null && hasOwn(facts, key) ? (facts as Record<string, unknown>)[key] : undefined;
        };
      }
      return (n) => {
        let v: unknown = n.facts;
        for (let i = 0; i < len; i++) {
          const key = path[i]!;
          if (typeof v !== 'object' || v === null || !hasOwn(v, key)) return undefined;
          v = (v as Record<string, unknown>)[key];
        }
        return v;
      };
    }
  }
}

/** Compiles a normalized condition to a predicate; regexes and sets are built once, here. */
export function compilePredicate(c: Condition): Predicate {
  switch (c.op) {
    case '=': {
      const get = getter(c.field);
      const value = c.value;
      return (n) => get(n) === value;
    }
    case '~': {
      const get = getter(c.field);
      const re = c.regex;
      return (n) => {
        const v = get(n);
        return typeof v === 'string' && re.test(v);
      };
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const get = getter(c.field);
      const value = c.value;
      const type = typeof value;
      const cmp = c.op === '<' ? (a: number | string) => a < value
        : c.op === '<=' ? (a: number | string) => a <= value
        : c.op === '>' ? (a: number | string) => a > value
        : (a: number | string) => a >= value;
      return (n) => {
        const v = get(n);
        return typeof v === type && cmp(v as number | string);
      };
    }
    case 'in': {
      const get = getter(c.field);
      const set = new Set<unknown>(c.values);
      return (n) => set.has(get(n));
    }
    case 'null?': {
      const get = getter(c.field);
      return c.isNull
        ? (n) => {
          const v = get(n);
          return v === undefined || v === null;
        }
        : (n) => {
          const v = get(n);
          return v !== undefined && v !== null;
        };
    }
    case 'and': {
      const preds = c.args.map(compilePredicate);
      if (preds.length === 1) return preds[0]!;
      if (preds.length === 2) {
        const [a, b] = preds as [Predicate, Predicate];
        return (n) => a(n) && b(n);
      }
      const len = preds.length;
      return (n) => {
        for (let i = 0; i < len; i++) if (!preds[i]!(n)) return false;
        return true;
      };
    }
    case 'or': {
      const preds = c.args.map(compilePredicate);
      if (preds.length === 1) return preds[0]!;
      const len = preds.length;
      return (n) => {
        for (let i = 0; i < len; i++) if (preds[i]!(n)) return true;
        return false;
      };
    }
    case 'not': {
      const p = compilePredicate(c.arg);
      return (n) => !p(n);
    }
  }
}
