// Argument parsing shared by the job commands: parameters, node lists, scopes and numbers. Pure
// apart from reading `@file` arguments; every bad argument is a usage error (exit code 2).
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { usageError } from './errors.ts';

/** Reads the file of an `@file` argument. */
function readArgFile(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(`${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** `k=v` → [k, v]: v is JSON when it parses as JSON (numbers, true, objects), else the text. */
export function parseKeyValue(arg: string): [string, unknown] {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw usageError(`bad parameter '${arg}': parameters are key=value (e.g. message=hi, count=3, tags='["a"]')`);
  const key = arg.slice(0, eq);
  const raw = arg.slice(eq + 1);
  try {
    return [key, JSON.parse(raw)];
  } catch {
    return [key, raw];
  }
}

/** --params (JSON text or @file with JSON), then each k=v on top of it. */
export function parseParams(paramsFlag: string | undefined, pairs: readonly string[]): Record<string, unknown> {
  let params: Record<string, unknown> = {};
  if (paramsFlag !== undefined) {
    const text = paramsFlag.startsWith('@') ? readArgFile('--params', paramsFlag.slice(1)) : paramsFlag;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw usageError(`--params: not valid JSON: ${(err as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw usageError('--params must be a JSON object, e.g. \'{"message": "hi"}\'');
    params = value as Record<string, unknown>;
  }
  for (const pair of pairs) {
    const [k, v] = parseKeyValue(pair);
    params[k] = v;
  }
  return params;
}

/** `a,b,c` or `@file` (names separated by commas, spaces or lines; `#` starts a comment). */
export function parseNodeList(flag: string, value: string): string[] {
  const text = value.startsWith('@') ? readArgFile(flag, value.slice(1)).replace(/#.*$/gm, '') : value;
  const nodes = [...new Set(text.split(/[\s,]+/).filter(Boolean))];
  if (nodes.length === 0) throw usageError(`${flag}: no node names given`);
  return nodes;
}

export interface ScopeFlags {
  nodes?: string;
  query?: string;
  nodeGroup?: string;
  application?: string;
}

/** Adds --nodes, --query and --node-group (and --application for deploys). */
export function addScopeOptions(cmd: Command, withApplication = false): Command {
  cmd
    .option('--nodes <names>', 'comma-separated node names, or @file with one per line')
    .option('--query <pql>', 'a PQL query (nodes[certname] { ... }) or a PuppetDB AST as JSON')
    .option('--node-group <name>', 'the nodes of a node group');
  if (withApplication) cmd.option('--application <name>', 'an application instance (Type[title]) or type');
  return cmd;
}

/** The API scope for the scope flags: exactly one, or null when none was given. */
export function scopeOf(flags: ScopeFlags): Record<string, unknown> | null {
  const given = (['nodes', 'query', 'nodeGroup', 'application'] as const).filter((k) => flags[k] !== undefined);
  if (given.length > 1) {
    throw usageError(`give one scope only; got ${given.map((k) => `--${k === 'nodeGroup' ? 'node-group' : k}`).join(' and ')}`);
  }
  if (flags.nodes !== undefined) return { nodes: parseNodeList('--nodes', flags.nodes) };
  if (flags.query !== undefined) {
    const q = flags.query.trim();
    if (q === '') throw usageError('--query: empty query');
    if (q.startsWith('[')) {
      try {
        return { query: JSON.parse(q) as unknown };
      } catch (err) {
        throw usageError(`--query: a query starting with '[' must be a JSON PuppetDB AST: ${(err as Error).message}`);
      }
    }
    return { query: q };
  }
  if (flags.nodeGroup !== undefined) return { node_group: flags.nodeGroup };
  if (flags.application !== undefined) return { application: flags.application };
  return null;
}

/** A positive integer flag (`--concurrency 5`). */
export function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value) || Number(value) < 1) throw usageError(`${flag} must be a whole number of at least 1, got '${value}'`);
  return Number(value);
}

/** --quorum N or N% of `nodeCount` (rounded up). */
export function parseQuorum(value: string | undefined, nodeCount: number): number | undefined {
  if (value === undefined) return undefined;
  const m = /^([0-9]+)(%?)$/.exec(value);
  if (!m) throw usageError(`--quorum must be a number of nodes (N) or a percentage (N%), got '${value}'`);
  const n = Number(m[1]);
  if (m[2] === '%') {
    if (n > 100) throw usageError(`--quorum ${value}: a percentage is at most 100%`);
    return Math.ceil((n * nodeCount) / 100);
  }
  if (n > nodeCount) throw usageError(`--quorum ${n} is more than the ${nodeCount} node(s) given`);
  return n;
}

/** --env K=V (repeatable) → {K: V}. */
export function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(pair);
    if (!m) throw usageError(`--env '${pair}': give NAME=VALUE, NAME made of letters, digits and _`);
    env[m[1]!] = m[2]!;
  }
  return env;
}

/** Collects a repeatable option's values. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
