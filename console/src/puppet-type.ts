// Which form field a task parameter gets, from its Puppet data type (String[1], Optional[...],
// Enum['a','b'], Integer[0,10], Boolean, Array[...], Hash[...], Struct[...], Variant[...]).
// Only the outer shape matters here: the API checks the value. Pure.

export type FieldKind = 'boolean' | 'integer' | 'float' | 'enum' | 'json' | 'text';

export interface FieldShape {
  kind: FieldKind;
  /** Optional[...] (or a type accepting undef): the parameter may be left out. */
  optional: boolean;
  /** The values of an Enum. */
  values: string[];
}

/** `Name[args]` → name and the raw top-level arguments (split at depth-0 commas). */
function split(type: string): { name: string; args: string[] } {
  const t = type.trim();
  const open = t.indexOf('[');
  if (open < 0 || !t.endsWith(']')) return { name: t, args: [] };
  const inner = t.slice(open + 1, -1);
  const args: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === "'" || c === '"' || c === '/') quote = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 0) {
      args.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  args.push(inner.slice(start).trim());
  return { name: t.slice(0, open).trim(), args: args.filter((a) => a !== '') };
}

const unquote = (s: string): string => (/^(['"]).*\1$/.test(s) ? s.slice(1, -1).replace(/\\(.)/g, '$1') : s);

export function fieldShape(type: string | undefined): FieldShape {
  let optional = false;
  let t = type?.trim() || 'Any';
  for (;;) {
    const { name, args } = split(t);
    if ((name === 'Optional' || name === 'Sensitive' || name === 'NotUndef') && args[0]) {
      if (name === 'Optional') optional = true;
      t = args[0];
      continue;
    }
    switch (name) {
      case 'Boolean': return { kind: 'boolean', optional, values: [] };
      case 'Integer': return { kind: 'integer', optional, values: [] };
      case 'Float':
      case 'Numeric': return { kind: 'float', optional, values: [] };
      case 'Enum': return { kind: 'enum', optional, values: args.map(unquote) };
      case 'Array':
      case 'Tuple':
      case 'Hash':
      case 'Struct': return { kind: 'json', optional, values: [] };
      case 'Undef': return { kind: 'text', optional: true, values: [] };
      case 'Any':
      case 'Data': return { kind: 'text', optional: true, values: [] };
      case 'Variant': {
        const parts = args.map(fieldShape);
        const undef = args.some((a) => split(a).name === 'Undef');
        const kinds = new Set(parts.filter((_, i) => split(args[i]!).name !== 'Undef').map((p) => p.kind));
        const only = kinds.size === 1 ? [...kinds][0]! : 'text';
        return { kind: only, optional: optional || undef || parts.some((p) => p.optional), values: only === 'enum' ? parts.flatMap((p) => p.values) : [] };
      }
      default: return { kind: 'text', optional, values: [] };
    }
  }
}
