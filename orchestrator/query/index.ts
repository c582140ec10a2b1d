// The node query language used as a job scope (Puppet orchestrator `scope.query`): PuppetDB's
// AST (JSON arrays) or PQL text, compiled once and run against node inventories. Pure: no I/O.
import { exceedsJsonDepth } from '../../protocol/json-depth.ts';
import { compileAst, isNodeQuery, MAX_QUERY_AST_DEPTH, QueryError, tooDeep, type Condition, type NodeFacts, type NodeQuery, type Scalar } from './ast.ts';
import { parsePql } from './pql.ts';

export {
  MAX_QUERY_AST_DEPTH,
  MAX_QUERY_DEPTH,
  QUERY_ERROR_CODE,
  QueryEntity,
  QueryError,
  VALID_FIELDS,
  isNodeQuery,
  type CompareOp,
  type Condition,
  type FieldRef,
  type NodeFacts,
  type NodeQuery,
  type Scalar,
} from './ast.ts';
export { parsePql } from './pql.ts';

/** Longest query text parseQuery accepts. */
export const MAX_QUERY_CHARS = 65_536;
/** Longest string describeQuery returns. */
export const MAX_DESCRIBE_CHARS = 240;

/**
 * Compiles a query: a PuppetDB AST array (`["from", "nodes", cond?]`, `["from", "nodes",
 * ["extract", fields, cond?]]` or a bare condition), the same as JSON text, or a PQL string
 * (`nodes[certname] { facts.os.family = "Debian" }`). An already compiled query is returned as is.
 * Throws QueryError naming the problem and where it is.
 */
export function parseQuery(input: unknown): NodeQuery {
  if (isNodeQuery(input)) return input;
  if (Array.isArray(input)) return compileAst(input);
  if (typeof input !== 'string') {
    throw new QueryError(`a query must be a PQL string or a JSON array, got ${input === null ? 'null' : typeof input}`);
  }
  if (input.length > MAX_QUERY_CHARS) throw new QueryError(`query is longer than ${MAX_QUERY_CHARS} characters`);
  const text = input.trim();
  if (text.startsWith('[')) {
    if (exceedsJsonDepth(text, MAX_QUERY_AST_DEPTH)) tooDeep();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new QueryError(`query is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    return compileAst(parsed);
  }
  return compileAst(parsePql(input));
}

/** The sorted, de-duplicated certnames of the nodes the query selects. */
export function selectNodes(query: NodeQuery | string | readonly unknown[], nodes: readonly NodeFacts[]): string[] {
  const matches = parseQuery(query).matches;
  const out: string[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    if (matches(node)) out.push(node.certname);
  }
  out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let w = 0;
  for (let r = 0; r < out.length; r++) if (r === 0 || out[r] !== out[w - 1]) out[w++] = out[r]!;
  out.length = w;
  return out;
}

/** Whether one node is selected by the query. */
export function matchesNode(query: NodeQuery, node: NodeFacts): boolean {
  return query.matches(node);
}

/** A PQL string literal: `"` and `\` escaped, control characters as \n, \r, \t or \uXXXX. */
function pqlString(s: string): string {
  return `"${s.replace(/[\\"\u0000-\u001f]/g, (c) => {
    if (c === '\\' || c === '"') return `\\${c}`;
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  })}"`;
}

function literal(v: Scalar): string {
  return typeof v === 'string' ? pqlString(v) : String(v);
}

const OR = 1;
const AND = 2;
const UNARY = 3;

function render(c: Condition, parent: number): string {
  switch (c.op) {
    case 'or':
    case 'and': {
      const own = c.op === 'or' ? OR : AND;
      const text = c.args.map((a) => render(a, own + 1)).join(` ${c.op} `);
      return parent > own ? `(${text})` : text;
    }
    case 'not': {
      const a = c.arg;
      if (a.op === '=') return `${a.field.name} != ${literal(a.value)}`;
      if (a.op === '~') return `${a.field.name} !~ ${pqlString(a.pattern)}`;
      return `not ${render(a, UNARY)}`;
    }
    case '=':
    case '<':
    case '<=':
    case '>':
    case '>=':
      return `${c.field.name} ${c.op} ${literal(c.value)}`;
    case '~':
      return `${c.field.name} ~ ${pqlString(c.pattern)}`;
    case 'in':
      return `${c.field.name} in [${c.values.map(literal).join(', ')}]`;
    case 'null?':
      return `${c.field.name} is ${c.isNull ? '' : 'not '}null`;
  }
}

/**
 * The query as PQL, for logs: `nodes[certname] { facts.os.family = "Debian" }`. Capped at
 * MAX_DESCRIBE_CHARS; an uncapped description parses back to an equivalent query.
 */
export function describeQuery(query: NodeQuery): string {
  const head = query.extract === null ? query.entity : `${query.entity}[${query.extract.join(', ')}]`;
  const text = query.condition === null ? `${head} {}` : `${head} { ${render(query.condition, OR)} }`;
  return text.length > MAX_DESCRIBE_CHARS ? `${text.slice(0, MAX_DESCRIBE_CHARS - 1)}…` : text;
}
