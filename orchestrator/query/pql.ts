// The node query language, PQL text form (a PuppetDB query language subset), parsed into the
// same AST as the JSON form:
//   query   := entity ('[' field (',' field)* ']')? ('{' expr? '}')?
//   expr    := and ('or' and)*          precedence: not > and > or
//   and     := unary ('and' unary)*
//   unary   := ('not' | '!') unary | '(' expr ')' | test
//   test    := field ('=' | '!=' | '~' | '!~' | '<' | '<=' | '>' | '>=') value
//            | field 'is' 'not'? 'null' | field 'in' '[' (value (',' value)*)? ']'
//   value   := "string" | 'string' | number | true | false
// Keywords are case-insensitive; field names are not.
import { compileCondition, MAX_QUERY_DEPTH, QueryEntity, QueryError, quote, resolveField } from './ast.ts';

type TokenType = 'ident' | 'string' | 'number' | 'punct' | 'eof';

interface Token {
  readonly type: TokenType;
  /** Source text (punct, ident) or the decoded value (string, number). */
  readonly value: string | number;
  /** Offset in the input. */
  readonly pos: number;
}

const PUNCT = ['!=', '!~', '<=', '>=', '[', ']', '{', '}', '(', ')', ',', '=', '~', '<', '>', '!'] as const;
const COMPARISON_OPS = new Set(['=', '!=', '~', '!~', '<', '<=', '>', '>=']);
const IDENT_START = /[A-Za-z_]/;
const IDENT = /[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*/y;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', n: '\n', r: '\r', t: '\t' };

/** "column 7", or "line 2, column 3" for multi-line input (both 1-based). */
function location(input: string, pos: number): string {
  const before = input.slice(0, pos);
  const lineStart = before.lastIndexOf('\n') + 1;
  const column = pos - lineStart + 1;
  if (!input.includes('\n')) return `column ${column}`;
  let line = 1;
  for (let i = 0; i < lineStart; i++) if (input.charCodeAt(i) === 10) line++;
  return `line ${line}, column ${column}`;
}

function pqlError(input: string, pos: number, problem: string, got?: string): QueryError {
  const where = location(input, pos);
  const message = `PQL: ${problem} at ${where}${got === undefined ? '' : `, got ${got}`}`;
  return new QueryError(message, { details: { problem, position: pos, location: where } });
}

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const start = i;
    if (ch === '"' || ch === "'") {
      let out = '';
      i++;
      for (;;) {
        if (i >= input.length) throw pqlError(input, start, 'unterminated string starting');
        const c = input[i]!;
        if (c === ch) break;
        if (c === '\\') {
          const next = input[i + 1];
          if (next === undefined) throw pqlError(input, start, 'unterminated string starting');
          if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(input.slice(i + 2, i + 6))) {
            out += String.fromCharCode(parseInt(input.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          // Unknown escapes stay as written, so regexes such as "web\d+" read naturally.
          out += ESCAPES[next] ?? `\\${next}`;
          i += 2;
          continue;
        }
        out += c;
        i++;
      }
      tokens.push({ type: 'string', value: out, pos: start });
      i++;
      continue;
    }
    if (ch === '-' || (ch >= '0' && ch <= '9')) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(input);
      if (m) {
        tokens.push({ type: 'number', value: Number(m[0]), pos: start });
        i += m[0].length;
        continue;
      }
    }
    if (IDENT_START.test(ch)) {
      IDENT.lastIndex = i;
      const m = IDENT.exec(input)!;
      tokens.push({ type: 'ident', value: m[0], pos: start });
      i += m[0].length;
      continue;
    }
    const p = PUNCT.find((s) => input.startsWith(s, i));
    if (p === undefined) throw pqlError(input, i, `unexpected character '${ch}'`);
    tokens.push({ type: 'punct', value: p, pos: start });
    i += p.length;
  }
  tokens.push({ type: 'eof', value: '', pos: input.length });
  return tokens;
}

function describe(t: Token): string {
  if (t.type === 'eof') return 'end of query';
  if (t.type === 'string') return quote(t.value);
  return `'${t.value}'`;
}

class Parser {
  private i = 0;
  private depth = 0;

  constructor(
    private readonly input: string,
    private readonly tokens: readonly Token[],
  ) {}

  private get peek(): Token {
    return this.tokens[this.i]!;
  }

  private next(): Token {
    const t = this.tokens[this.i]!;
    if (t.type !== 'eof') this.i++;
    return t;
  }

  private isPunct(p: string): boolean {
    return this.peek.type === 'punct' && this.peek.value === p;
  }

  private isKeyword(word: string): boolean {
    return this.peek.type === 'ident' && (this.peek.value as string).toLowerCase() === word;
  }

  private fail(problem: string, t: Token = this.peek): never {
    throw pqlError(this.input, t.pos, problem, describe(t));
  }

  private expectPunct(p: string, context: string): void {
    if (!this.isPunct(p)) this.fail(`expected '${p}' ${context}`);
    this.next();
  }

  query(): unknown[] {
    const head = this.peek;
    if (head.type !== 'ident') this.fail('expected an entity (nodes or inventory)');
    const entity = (head.value as string).toLowerCase();
    if (entity !== QueryEntity.nodes && entity !== QueryEntity.inventory) {
      throw pqlError(this.input, head.pos, `only nodes and inventory queries select nodes, got '${head.value}'`);
    }
    this.next();
    let extract: string[] | null = null;
    if (this.isPunct('[')) {
      this.next();
      extract = [];
      for (;;) {
        const t = this.peek;
        if (t.type !== 'ident') this.fail(`expected a field name in ${entity}[...]`);
        extract.push(t.value as string);
        this.next();
        if (this.isPunct(',')) {
          this.next();
          continue;
        }
        this.expectPunct(']', `or ',' after field '${t.value}'`);
        break;
      }
    }
    let condition: unknown[] | undefined;
    if (this.isPunct('{')) {
      this.next();
      if (!this.isPunct('}')) condition = this.or();
      this.expectPunct('}', "(or 'and'/'or') to close the query");
    }
    if (this.peek.type !== 'eof') this.fail("expected the end of the query");
    const where = condition === undefined ? [] : [condition];
    return extract === null ? ['from', entity, ...where] : ['from', entity, ['extract', extract, ...where]];
  }

  private or(): unknown[] {
    const args = [this.and()];
    while (this.isKeyword('or')) {
      this.next();
      args.push(this.and());
    }
    return args.length === 1 ? args[0]! : ['or', ...args];
  }

  private and(): unknown[] {
    const args = [this.unary()];
    while (this.isKeyword('and')) {
      this.next();
      args.push(this.unary());
    }
    return args.length === 1 ? args[0]! : ['and', ...args];
  }

  private unary(): unknown[] {
    if (++this.depth > MAX_QUERY_DEPTH) this.fail(`query nests deeper than ${MAX_QUERY_DEPTH} levels`);
    try {
      if (this.isKeyword('not') || this.isPunct('!')) {
        this.next();
        return ['not', this.unary()];
      }
      if (this.isPunct('(')) {
        const open = this.next();
        if (this.isPunct(')')) this.fail("expected a condition inside '( )'");
        const inner = this.or();
        if (!this.isPunct(')')) this.fail(`expected ')' (to close '(' from ${location(this.input, open.pos)})`);
        this.next();
        return inner;
      }
      return this.test();
    } finally {
      this.depth--;
    }
  }

  private test(): unknown[] {
    const ft = this.peek;
    if (ft.type !== 'ident' || ['and', 'or', 'not', 'is', 'in', 'null', 'true', 'false'].includes((ft.value as string).toLowerCase())) {
      this.fail('expected a field name such as certname or facts.os.family');
    }
    const name = ft.value as string;
    const ref = resolveField(name);
    if (typeof ref === 'string') throw pqlError(this.input, ft.pos, ref);
    this.next();
    const opTok = this.peek;
    let expr: unknown[];
    if (this.isKeyword('is')) {
      this.next();
      let negated = false;
      if (this.isKeyword('not')) {
        this.next();
        negated = true;
      }
      if (!this.isKeyword('null')) this.fail(`expected 'null' after 'is${negated ? ' not' : ''}'`);
      this.next();
      expr = ['null?', name, !negated];
    } else if (this.isKeyword('in')) {
      this.next();
      if (this.peek.type === 'ident') this.fail("subqueries are not supported; expected an array such as [\"a\", \"b\"] after 'in'");
      this.expectPunct('[', "(an array such as [\"a\", \"b\"]) after 'in'");
      const values: unknown[] = [];
      if (!this.isPunct(']')) {
        for (;;) {
          values.push(this.value(values.length === 0 ? "'['" : "','"));
          if (!this.isPunct(',')) break;
          this.next();
        }
      }
      this.expectPunct(']', "or ',' in the array after 'in'");
      expr = ['in', name, ['array', values]];
    } else if (opTok.type === 'punct' && COMPARISON_OPS.has(opTok.value as string)) {
      this.next();
      const op = opTok.value as string;
      const value = this.value(`'${op}'`);
      expr = op === '!=' ? ['not', ['=', name, value]] : op === '!~' ? ['not', ['~', name, value]] : [op, name, value];
    } else {
      return this.fail(`expected an operator (=, !=, ~, !~, <, <=, >, >=, in, is) after field '${name}'`);
    }
    // Type-check the test now, so its error can point at the source.
    const leaf = expr[0] === 'not' ? (expr[1] as unknown[]) : expr;
    try {
      compileCondition(leaf);
    } catch (err) {
      if (!(err instanceof QueryError)) throw err;
      const problem = String(err.details?.problem ?? err.message);
      throw pqlError(this.input, opTok.pos, problem);
    }
    return expr;
  }

  private value(after: string): string | number | boolean {
    const t = this.peek;
    if (t.type === 'string' || t.type === 'number') {
      this.next();
      return t.value;
    }
    if (t.type === 'ident') {
      const word = (t.value as string).toLowerCase();
      if (word === 'true' || word === 'false') {
        this.next();
        return word === 'true';
      }
      if (word === 'null') this.fail(`expected a value after ${after} (use 'is null' to test for null)`);
    }
    return this.fail(`expected a value after ${after}`);
  }
}

/** Parses a PQL string into a PuppetDB AST (`["from", entity, ...]`). Throws QueryError. */
export function parsePql(input: string): unknown[] {
  if (input.trim() === '') throw new QueryError('PQL: empty query; use "nodes {}" to select every node', { details: { problem: 'empty query' } });
  return new Parser(input, tokenize(input)).query();
}
