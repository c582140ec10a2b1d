// Puppet's data type language, as task metadata uses it for parameters: a parser and a checker.
// Supported: Any, Data, Scalar, String[min,max], Integer[min,max], Float[min,max], Numeric,
// Boolean, Undef, Optional[T], NotUndef[T], Sensitive[T], Enum['a','b'], Pattern[/re/],
// Array[T,min,max], Tuple[T...], Hash[K,V,min,max], Struct[{key => T, Optional[key] => T}],
// Variant[T...]. Pure.
import { BatonError } from '../../protocol/errors.ts';

export const PuppetTypeErrorCode = { syntax: 'puppet-type/syntax', unknown: 'puppet-type/unknown-type' } as const;

export class PuppetTypeError extends BatonError {}

export type Arg = PuppetType | number | string | RegExp | StructEntry[] | 'default';
export interface StructEntry {
  key: string;
  optional: boolean;
  type: PuppetType;
}
export interface PuppetType {
  name: string;
  args: Arg[];
}

const KNOWN = new Set([
  'Any', 'Data', 'Scalar', 'String', 'Integer', 'Float', 'Numeric', 'Boolean', 'Undef', 'Optional', 'NotUndef', 'Sensitive',
  'Enum', 'Pattern', 'Array', 'Tuple', 'Hash', 'Struct', 'Variant',
]);

class Parser {
  private i = 0;
  constructor(private readonly src: string) {}

  parse(): PuppetType {
    const t = this.type();
    this.ws();
    if (this.i < this.src.length) this.fail(`unexpected '${this.src.slice(this.i)}'`);
    return t;
  }

  private fail(msg: string): never {
    throw new PuppetTypeError(PuppetTypeErrorCode.syntax, `cannot read the type '${this.src}': ${msg}`);
  }

  private ws(): void {
    while (this.i < this.src.length && /\s/.test(this.src[this.i]!)) this.i++;
  }

  private peek(): string {
    this.ws();
    return this.src[this.i] ?? '';
  }

  private expect(ch: string): void {
    if (this.peek() !== ch) this.fail(`expected '${ch}' at position ${this.i}`);
    this.i++;
  }

  private type(): PuppetType {
    this.ws();
    const m = /^[A-Z][A-Za-z0-9]*(::[A-Z][A-Za-z0-9]*)*/.exec(this.src.slice(this.i));
    if (!m) this.fail(`expected a type name at position ${this.i}`);
    this.i += m[0].length;
    if (!KNOWN.has(m[0])) throw new PuppetTypeError(PuppetTypeErrorCode.unknown, `unknown type '${m[0]}' in '${this.src}'`);
    const args: Arg[] = [];
    if (this.peek() === '[') {
      this.i++;
      if (this.peek() !== ']') {
        args.push(this.arg());
        while (this.peek() === ',') {
          this.i++;
          if (this.peek() === ']') break; // trailing comma
          args.push(this.arg());
        }
      }
      this.expect(']');
    }
    return { name: m[0], args };
  }

  private arg(): Arg {
    const c = this.peek();
    if (c === "'" || c === '"') return this.string();
    if (c === '/') return this.regex();
    if (c === '{') return this.struct();
    if (/[-0-9]/.test(c)) return this.number();
    const bare = /^[a-z_][a-z0-9_]*/.exec(this.src.slice(this.i));
    if (bare) {
      this.i += bare[0].length;
      return bare[0]; // `default`, or a bare word standing for a string (Enum[present, absent])
    }
    return this.type();
  }

  private string(): string {
    const quote = this.src[this.i]!;
    let out = '';
    this.i++;
    while (this.i < this.src.length && this.src[this.i] !== quote) {
      if (this.src[this.i] === '\\' && this.i + 1 < this.src.length) this.i++;
      out += this.src[this.i++];
    }
    if (this.src[this.i] !== quote) this.fail('unterminated string');
    this.i++;
    return out;
  }

  private regex(): RegExp {
    this.i++;
    let body = '';
    while (this.i < this.src.length && this.src[this.i] !== '/') {
      if (this.src[this.i] === '\\' && this.i + 1 < this.src.length) body += this.src[this.i++];
      body += this.src[this.i++];
    }
    if (this.src[this.i] !== '/') this.fail('unterminated regular expression');
    this.i++;
    try {
      return new RegExp(body);
    } catch {
      this.fail(`bad regular expression /${body}/`);
    }
  }

  private number(): number {
    const m = /^-?[0-9]+(\.[0-9]+)?/.exec(this.src.slice(this.i));
    if (!m) this.fail(`expected a number at position ${this.i}`);
    this.i += m[0].length;
    return Number(m[0]);
  }

  private struct(): StructEntry[] {
    this.expect('{');
    const entries: StructEntry[] = [];
    while (this.peek() !== '}') {
      let optional = false;
      let key: string;
      this.ws();
      const bare = /^[a-z_][a-z0-9_]*/.exec(this.src.slice(this.i));
      if (this.peek() === "'" || this.peek() === '"') key = this.string();
      else if (bare) {
        this.i += bare[0].length;
        key = bare[0];
      } else {
        const wrapper = this.type(); // Optional['k'] or NotUndef['k']
        const inner = wrapper.args[0];
        if ((wrapper.name !== 'Optional' && wrapper.name !== 'NotUndef') || typeof inner !== 'string') this.fail('a Struct key must be a string');
        optional = wrapper.name === 'Optional';
        key = inner;
      }
      this.expect('=');
      this.expect('>');
      const type = this.type();
      if (type.name === 'Optional') optional = true;
      entries.push({ key, optional, type });
      if (this.peek() === ',') this.i++;
    }
    this.expect('}');
    return entries;
  }
}

export function parsePuppetType(src: string): PuppetType {
  return new Parser(src).parse();
}

const bound = (arg: Arg | undefined, fallback: number): number => (typeof arg === 'number' ? arg : fallback);
const isHash = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isData = (v: unknown): boolean =>
  v === null || ['string', 'number', 'boolean'].includes(typeof v) || (Array.isArray(v) ? v.every(isData) : isHash(v) && Object.values(v).every(isData));

export function formatType(t: PuppetType): string {
  if (t.args.length === 0) return t.name;
  const fmt = (a: Arg): string =>
    typeof a === 'string' ? (a === 'default' ? a : `'${a}'`) : typeof a === 'number' ? String(a) : a instanceof RegExp ? `/${a.source}/` : Array.isArray(a) ? `{${a.map((e) => `'${e.key}' => ${formatType(e.type)}`).join(', ')}}` : formatType(a);
  return `${t.name}[${t.args.map(fmt).join(', ')}]`;
}

/** Null when `value` (JSON, with null for undef) is of type `t`; else why not. */
export function checkValue(value: unknown, t: PuppetType): string | null {
  const expected = () => `expects ${formatType(t)}, got ${describe(value)}`;
  const a = t.args;
  switch (t.name) {
    case 'Any':
      return null;
    case 'Data':
      return isData(value) ? null : expected();
    case 'Scalar':
      return ['string', 'number', 'boolean'].includes(typeof value) ? null : expected();
    case 'Undef':
      return value === null || value === undefined ? null : expected();
    case 'Optional':
      return value === null || value === undefined ? null : a[0] ? checkValue(value, asType(a[0])) : null;
    case 'NotUndef':
      return value === null || value === undefined ? expected() : a[0] ? checkValue(value, asType(a[0])) : null;
    case 'Sensitive':
      return a[0] ? checkValue(value, asType(a[0])) : null;
    case 'Boolean':
      return typeof value === 'boolean' ? null : expected();
    case 'String': {
      if (typeof value !== 'string') return expected();
      const n = [...value].length;
      return n >= bound(a[0], 0) && n <= bound(a[1], Infinity) ? null : expected();
    }
    case 'Integer':
      return Number.isInteger(value) && (value as number) >= bound(a[0], -Infinity) && (value as number) <= bound(a[1], Infinity) ? null : expected();
    case 'Float':
    case 'Numeric': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return expected();
      return value >= bound(a[0], -Infinity) && value <= bound(a[1], Infinity) ? null : expected();
    }
    case 'Enum':
      return typeof value === 'string' && a.includes(value) ? null : expected();
    case 'Pattern':
      return typeof value === 'string' && a.some((r) => (r instanceof RegExp ? r.test(value) : typeof r === 'string' && new RegExp(r).test(value))) ? null : expected();
    case 'Variant':
      return a.some((v) => checkValue(value, asType(v)) === null) ? null : expected();
    case 'Array': {
      if (!Array.isArray(value)) return expected();
      const [elem, min, max] = typeof a[0] === 'number' ? [undefined, a[0], a[1]] : [a[0], a[1], a[2]];
      if (value.length < bound(min, 0) || value.length > bound(max, Infinity)) return expected();
      if (elem && elem !== 'default') {
        for (let i = 0; i < value.length; i++) {
          const err = checkValue(value[i], asType(elem));
          if (err) return `index ${i} ${err}`;
        }
      }
      return null;
    }
    case 'Tuple': {
      if (!Array.isArray(value)) return expected();
      const types = a.filter((x): x is PuppetType => typeof x === 'object' && !(x instanceof RegExp) && !Array.isArray(x));
      if (value.length !== types.length) return expected();
      for (let i = 0; i < types.length; i++) {
        const err = checkValue(value[i], types[i]!);
        if (err) return `index ${i} ${err}`;
      }
      return null;
    }
    case 'Hash': {
      if (!isHash(value)) return expected();
      const [key, val, min, max] = typeof a[0] === 'number' ? [undefined, undefined, a[0], a[1]] : [a[0], a[1], a[2], a[3]];
      const entries = Object.entries(value);
      if (entries.length < bound(min, 0) || entries.length > bound(max, Infinity)) return expected();
      for (const [k, v] of entries) {
        if (key && checkValue(k, asType(key))) return `key '${k}' ${checkValue(k, asType(key))}`;
        if (val) {
          const err = checkValue(v, asType(val));
          if (err) return `key '${k}' ${err}`;
        }
      }
      return null;
    }
    case 'Struct': {
      if (!isHash(value)) return expected();
      const entries = (Array.isArray(a[0]) ? a[0] : []) as StructEntry[];
      for (const k of Object.keys(value)) if (!entries.some((e) => e.key === k)) return `has an unexpected key '${k}' (${expected()})`;
      for (const e of entries) {
        if (!(e.key in value)) {
          if (!e.optional) return `is missing the key '${e.key}' (${expected()})`;
          continue;
        }
        const err = checkValue(value[e.key], e.type);
        if (err) return `key '${e.key}' ${err}`;
      }
      return null;
    }
    default:
      return `has a type this orchestrator cannot check: ${t.name}`;
  }
}

function asType(a: Arg): PuppetType {
  if (typeof a === 'object' && !(a instanceof RegExp) && !Array.isArray(a)) return a;
  return { name: 'Any', args: [] };
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'Undef';
  if (typeof v === 'string') return `String '${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  if (typeof v === 'number') return Number.isInteger(v) ? `Integer ${v}` : `Float ${v}`;
  if (typeof v === 'boolean') return `Boolean ${v}`;
  if (Array.isArray(v)) return `Array of ${v.length}`;
  return 'Hash';
}

/** Whether undef is acceptable (the parameter may be left out). */
export function acceptsUndef(t: PuppetType): boolean {
  return checkValue(null, t) === null;
}
