// The node classifier (`classifier-file`, JSON): node groups `{name, environment?, rule}` whose rule
// is a query (PuppetDB AST or PQL) or a list of node names. A node's environment is that of the
// first group with an environment that holds it. The file is read again when it changes.
import { readFileSync, statSync } from 'node:fs';
import type { FromSchema } from 'json-schema-to-ts';
import { ConfigError, ConfigErrorCode } from '../../lib/config.ts';
import { compile, describeErrors } from '../../protocol/validate.ts';
import { classifierFileSchema } from '../../schemas/orchestrator-config.ts';
import { parseQuery, selectNodes, type NodeFacts, type NodeQuery } from '../query/index.ts';

type ClassifierFile = FromSchema<typeof classifierFileSchema>;
const validate = compile<ClassifierFile>(classifierFileSchema);

export interface NodeGroup {
  name: string;
  environment: string | null;
  description: string;
  rule: { nodes: string[] } | { query: NodeQuery; text: unknown };
}

/** A rule's query form, or its node list: arrays are AST queries when they start with an operator. */
const AST_HEADS = new Set(['from', 'extract', '=', '~', '<', '>', '<=', '>=', 'and', 'or', 'not', 'null?', 'in']);

function parseRule(rule: ClassifierFile['groups'][number]['rule'], where: string): NodeGroup['rule'] {
  const asQuery = (q: unknown) => {
    try {
      return { query: parseQuery(q), text: q };
    } catch (err) {
      throw new ConfigError(ConfigErrorCode.invalid, `${where}: ${(err as Error).message}`);
    }
  };
  if (typeof rule === 'string') return asQuery(rule);
  if (Array.isArray(rule)) {
    if (typeof rule[0] === 'string' && AST_HEADS.has(rule[0])) return asQuery(rule);
    if (!rule.every((n) => typeof n === 'string' && n.length > 0)) throw new ConfigError(ConfigErrorCode.invalid, `${where}: a list of nodes must hold node names`);
    return { nodes: rule as string[] };
  }
  if ('nodes' in rule && rule.nodes) return { nodes: rule.nodes };
  return asQuery((rule as { query: unknown }).query);
}

export class Classifier {
  private groupsByName = new Map<string, NodeGroup>();
  private mtimeMs = -1;
  /** Why the file as it is now was not taken (the groups read before it stay in force). */
  problem: string | null = null;

  /** Reads the file now: a bad file stops the start, naming the problem. */
  constructor(private readonly path: string | undefined) {
    this.load();
  }

  /** All groups, in file order. */
  groups(): NodeGroup[] {
    this.reload();
    return [...this.groupsByName.values()];
  }

  group(name: string): NodeGroup | undefined {
    this.reload();
    return this.groupsByName.get(name);
  }

  /** Whether any rule needs facts (a query); node lists need none. */
  needsFacts(): boolean {
    return this.groups().some((g) => 'query' in g.rule);
  }

  members(group: NodeGroup, nodes: NodeFacts[]): string[] {
    if ('nodes' in group.rule) return [...new Set(group.rule.nodes)].sort();
    return selectNodes(group.rule.query, nodes);
  }

  /** node → environment, for the nodes a group with an environment holds (first group wins). */
  environments(nodes: NodeFacts[]): Map<string, string> {
    const out = new Map<string, string>();
    for (const g of this.groups()) {
      if (!g.environment) continue;
      for (const n of this.members(g, nodes)) if (!out.has(n)) out.set(n, g.environment);
    }
    return out;
  }

  /** A file changed into something unusable keeps the groups in force and says why in `problem`. */
  private reload(): void {
    try {
      this.load();
    } catch (err) {
      this.problem = (err as Error).message;
    }
  }

  private load(): void {
    if (!this.path) return;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.path).mtimeMs;
    } catch (cause) {
      throw new ConfigError(ConfigErrorCode.invalid, `classifier-file: cannot read ${this.path}: ${(cause as Error).message}`, { cause });
    }
    if (mtimeMs === this.mtimeMs) return;
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch (cause) {
      throw new ConfigError(ConfigErrorCode.invalid, `classifier-file: ${this.path} is not valid JSON: ${(cause as Error).message}`, { cause });
    }
    if (!validate(doc)) throw new ConfigError(ConfigErrorCode.invalid, `classifier-file: ${describeErrors(validate.errors, this.path)}`);
    const groups = new Map<string, NodeGroup>();
    for (const [i, g] of doc.groups.entries()) {
      if (groups.has(g.name)) throw new ConfigError(ConfigErrorCode.invalid, `classifier-file: two groups are named '${g.name}'`);
      groups.set(g.name, { name: g.name, environment: g.environment ?? null, description: g.description ?? '', rule: parseRule(g.rule, `classifier-file: groups[${i}] (${g.name})`) });
    }
    this.groupsByName = groups;
    this.mtimeMs = mtimeMs;
    this.problem = null;
  }
}
