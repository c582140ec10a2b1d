// A YAML plan file → PlanDef, refused with the line and the reason when it does not parse, has a key
// a plan does not take, or refers to a variable it does not have. Pure (text in, plan out).
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import {
  COMMON_STEP_KEYS, NAME_RE, PARAMETER_KEYS, PLAN_KEYS, PlanError, PlanErrorCode, PUPPET_RUN_KEYS, STEP_KEYS, STEP_KINDS, UNSUPPORTED_STEP_KINDS,
  type ParameterDef, type PlanDef, type StepDef, type StepKind, type TargetsDef,
} from './model.ts';
import { INTERP_KEY, REF_KEY, refProblem, refsOf, stringValue, type VariableKind } from './values.ts';

const PERCENT_RE = /^([1-9][0-9]?|100)%$/;

class Reader {
  readonly lines = new LineCounter();
  /** Every reference met while reading values, with its line (checked once its scope is known). */
  readonly refs: { ref: string; line: number }[] = [];
  constructor(readonly plan: string) {}

  line(node: { range?: [number, number, number] | null | undefined } | null | undefined): number {
    return node?.range ? this.lines.linePos(node.range[0]).line : 1;
  }

  fail(code: PlanErrorCode, line: number, reason: string, details: Record<string, unknown> = {}): never {
    throw new PlanError(code, `plan ${this.plan}, line ${line}: ${reason}`, { plan: this.plan, line, reason, ...details });
  }

  map(node: unknown, what: string, line: number): YAMLMap<unknown, unknown> {
    if (!isMap(node)) this.fail(PlanErrorCode.invalidPlan, node ? this.line(node as Node) : line, `${what} must be a mapping`);
    return node;
  }

  /** The pairs of a mapping, keys as strings; a key not in `allowed` is refused. */
  pairs(m: YAMLMap<unknown, unknown>, allowed: readonly string[] | null, what: string): [string, Pair<unknown, unknown>][] {
    return m.items.map((p) => {
      const key = isScalar(p.key) ? String(p.key.value) : null;
      if (key === null) this.fail(PlanErrorCode.invalidPlan, this.line(p.key as Node), `${what} keys must be plain strings`);
      if (allowed && !allowed.includes(key)) this.fail(PlanErrorCode.invalidPlan, this.line(p.key as Node), `unknown key '${key}' in ${what} (allowed: ${allowed.join(', ')})`, { key });
      return [key, p];
    });
  }

  /** A node as a plan value: scalars as they are, `$ref` strings as references. */
  value(node: unknown): unknown {
    if (node === null || node === undefined) return null;
    if (isScalar(node)) {
      if (typeof node.value !== 'string') return node.value;
      const v = stringValue(node.value, node.type === 'QUOTE_DOUBLE');
      for (const ref of refsOf(v)) this.refs.push({ ref, line: this.line(node) });
      return v;
    }
    if (isSeq(node)) return node.items.map((x) => this.value(x));
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const p of node.items) {
        const key = isScalar(p.key) ? String(p.key.value) : null;
        if (key === null) this.fail(PlanErrorCode.invalidPlan, this.line(p.key as Node), 'mapping keys must be plain strings');
        if (key === REF_KEY || key === INTERP_KEY) this.fail(PlanErrorCode.invalidPlan, this.line(p.key as Node), `'${key}' is reserved`);
        out[key] = this.value(p.value);
      }
      return out;
    }
    if (isPair(node)) return this.value(node.value);
    this.fail(PlanErrorCode.invalidPlan, this.line(node as Node), 'aliases and tags are not supported in plans');
  }

  string(node: unknown, what: string, line: number): string {
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') this.fail(PlanErrorCode.invalidPlan, node ? this.line(node as Node) : line, `${what} must be a non-empty string`);
    return node.value;
  }
}

/** Parses and checks a plan's text; `name` is the plan's (`module::name`), for messages. */
export function parsePlan(name: string, text: string): PlanDef {
  const r = new Reader(name);
  const doc = parseDocument(text, { lineCounter: r.lines, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) r.fail(PlanErrorCode.invalidPlan, r.lines.linePos(err.pos[0]).line, `YAML syntax: ${err.message.split('\n')[0]}`, { yaml_error: err.code });
  const top = r.map(doc.contents, 'a plan', 1);
  const plan: PlanDef = { name, parameters: {}, steps: [] };
  let stepsNode: unknown = undefined;
  let stepsLine = 1;
  for (const [key, p] of r.pairs(top, PLAN_KEYS, 'the plan')) {
    const line = r.line(p.key as Node);
    if (key === 'description') plan.description = r.string(p.value, 'description', line);
    else if (key === 'private') plan.private = isScalar(p.value) && p.value.value === true;
    else if (key === 'parameters') plan.parameters = parameters(r, p.value, line);
    else if (key === 'steps') {
      stepsNode = p.value;
      stepsLine = line;
    } else if (key === 'return') {
      plan.return = r.value(p.value);
      plan.returnLine = r.line(p.value as Node);
    }
  }
  if (!isSeq(stepsNode) || stepsNode.items.length === 0) r.fail(PlanErrorCode.invalidPlan, stepsLine, 'a plan needs `steps`, a list of at least one step');
  const known = new Map<string, VariableKind>(Object.keys(plan.parameters).map((k) => [k, 'parameter']));
  for (const item of (stepsNode as { items: unknown[] }).items) {
    const from = r.refs.length;
    const step = parseStep(r, item);
    if (step.kind === 'command') for (const ref of refsOf(stringValue(step.what, false))) r.refs.push({ ref, line: step.whatLine });
    checkRefs(r, r.refs.slice(from), known);
    if (step.name !== undefined) {
      if (known.has(step.name)) r.fail(PlanErrorCode.invalidPlan, step.line, `step name '${step.name}' is already used by a ${known.get(step.name) === 'parameter' ? 'parameter' : 'step'}`);
      known.set(step.name, step.kind === 'plan' ? 'plan_step' : 'step');
    }
    plan.steps.push(step);
  }
  if (plan.return !== undefined) checkRefs(r, refsOf(plan.return).map((ref) => ({ ref, line: plan.returnLine ?? 1 })), known);
  return plan;
}

function parameters(r: Reader, node: unknown, line: number): Record<string, ParameterDef> {
  if (node === null || (isScalar(node) && node.value === null)) return {};
  const out: Record<string, ParameterDef> = {};
  for (const [name, p] of r.pairs(r.map(node, 'parameters', line), null, 'parameters')) {
    const at = r.line(p.key as Node);
    if (!NAME_RE.test(name)) r.fail(PlanErrorCode.invalidPlan, at, `parameter name '${name}' must match ${NAME_RE.source}`);
    const def: ParameterDef = { type: 'Any' };
    if (p.value !== null && !(isScalar(p.value) && p.value.value === null)) {
      for (const [key, q] of r.pairs(r.map(p.value, `parameter ${name}`, at), PARAMETER_KEYS, `parameter ${name}`)) {
        const kat = r.line(q.key as Node);
        if (key === 'type') def.type = r.string(q.value, `parameter ${name}: type`, kat);
        else if (key === 'description') def.description = r.string(q.value, `parameter ${name}: description`, kat);
        else if (key === 'sensitive') def.sensitive = isScalar(q.value) && q.value.value === true;
        else {
          def.default = r.value(q.value);
          if (refsOf(def.default).length > 0) r.fail(PlanErrorCode.invalidPlan, kat, `the default of parameter ${name} may not refer to variables`);
        }
      }
    }
    out[name] = def;
  }
  return out;
}

function parseStep(r: Reader, item: unknown): StepDef {
  const m = r.map(item, 'a step', 1);
  const line = r.line(m);
  const keys = m.items.map((p) => (isScalar(p.key) ? String(p.key.value) : ''));
  const unsupported = keys.find((k) => (UNSUPPORTED_STEP_KINDS as readonly string[]).includes(k));
  if (unsupported) r.fail(PlanErrorCode.invalidPlan, line, `'${unsupported}' steps are not supported by Baton (a step is one of ${STEP_KINDS.join(', ')})`, { key: unsupported });
  const kinds = STEP_KINDS.filter((k) => keys.includes(k));
  if (kinds.length !== 1) r.fail(PlanErrorCode.invalidPlan, line, kinds.length === 0 ? `a step needs one of the keys ${STEP_KINDS.join(', ')}` : `a step has only one of ${kinds.join(', ')}`);
  const kind = kinds[0] as StepKind;
  const step: StepDef = { kind, line, what: '', whatLine: line, parameters: {}, catch_errors: false };
  for (const [key, p] of r.pairs(m, [...COMMON_STEP_KEYS, ...STEP_KEYS[kind]], `a ${kind} step`)) {
    const at = r.line(p.key as Node);
    switch (key) {
      case 'name': {
        const n = r.string(p.value, 'name', at);
        if (!NAME_RE.test(n)) r.fail(PlanErrorCode.invalidPlan, at, `step name '${n}' must match ${NAME_RE.source}`);
        step.name = n;
        break;
      }
      case 'description':
        step.description = r.string(p.value, 'description', at);
        break;
      case 'catch_errors':
        if (!isScalar(p.value) || typeof p.value.value !== 'boolean') r.fail(PlanErrorCode.invalidPlan, at, 'catch_errors must be true or false');
        step.catch_errors = p.value.value;
        break;
      case 'batch_size': {
        const v = isScalar(p.value) ? p.value.value : undefined;
        if (!((typeof v === 'number' && Number.isInteger(v) && v >= 1) || (typeof v === 'string' && PERCENT_RE.test(v)))) r.fail(PlanErrorCode.invalidPlan, at, 'batch_size must be a whole number >= 1 or a percentage such as "25%"');
        step.batch_size = v as number | string;
        break;
      }
      case 'max_failures': {
        const v = isScalar(p.value) ? p.value.value : undefined;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) r.fail(PlanErrorCode.invalidPlan, at, 'max_failures must be a whole number >= 0');
        step.max_failures = v;
        break;
      }
      case 'targets':
        step.targets = targets(r, p.value, at);
        break;
      case 'parameters': {
        const v = r.value(p.value);
        if (v !== null && (typeof v !== 'object' || Array.isArray(v) || REF_KEY in v)) r.fail(PlanErrorCode.invalidPlan, at, 'parameters must be a mapping');
        step.parameters = (v ?? {}) as Record<string, unknown>;
        break;
      }
      case 'arguments': {
        const v = r.value(p.value);
        if (!Array.isArray(v)) r.fail(PlanErrorCode.invalidPlan, at, 'arguments must be a list');
        step.arguments = v;
        break;
      }
      case 'puppet_run': // Baton's: `puppet_run: {noop: true}` (or `puppet_run: {}`, enforcing)
        step.parameters = puppetRunOptions(r, p.value, at);
        step.what = step.parameters.noop === true ? 'noop' : 'enforce';
        step.whatLine = at;
        break;
      default: // the kind's own key
        step.what = r.string(p.value, key, at);
        step.whatLine = r.line(p.value as Node);
    }
  }
  if (kind === 'task' || kind === 'plan') {
    if (!/^[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)*$/.test(step.what)) r.fail(PlanErrorCode.invalidPlan, step.whatLine, `'${step.what}' is not a ${kind} name (module::name)`);
  }
  if (kind === 'script' && !/^[a-z][a-z0-9_]*\/[A-Za-z0-9_.\/-]+$/.test(step.what)) r.fail(PlanErrorCode.invalidPlan, step.whatLine, `script '${step.what}' must be <module>/<file under the module's files/>`);
  if (kind === 'script' && step.what.split('/').some((s) => s === '..' || s === '.' || s === '')) r.fail(PlanErrorCode.invalidPlan, step.whatLine, `script '${step.what}' must stay inside the module's files/`);
  if (kind !== 'plan' && !step.targets) r.fail(PlanErrorCode.invalidPlan, line, `a ${kind} step needs targets`);
  if (step.max_failures !== undefined && step.batch_size === undefined) r.fail(PlanErrorCode.invalidPlan, line, 'max_failures goes with batch_size');
  if (kind === 'plan' && step.batch_size !== undefined) r.fail(PlanErrorCode.invalidPlan, line, 'a plan step takes no batch_size');
  return step;
}

/** A puppet_run step's options: a mapping of PUPPET_RUN_KEYS (noop: true or false), or nothing. */
function puppetRunOptions(r: Reader, node: unknown, line: number): Record<string, unknown> {
  if (node === null || (isScalar(node) && node.value === null)) return {};
  const out: Record<string, unknown> = {};
  for (const [key, p] of r.pairs(r.map(node, 'puppet_run', line), PUPPET_RUN_KEYS, 'puppet_run')) {
    if (!isScalar(p.value) || typeof p.value.value !== 'boolean') r.fail(PlanErrorCode.invalidPlan, r.line(p.key as Node), `puppet_run ${key} must be true or false`);
    out[key] = p.value.value;
  }
  return out;
}

function targets(r: Reader, node: unknown, line: number): TargetsDef {
  if (isMap(node)) {
    const pairs = r.pairs(node, ['query'], 'targets');
    if (pairs.length !== 1) r.fail(PlanErrorCode.invalidPlan, line, 'targets as a mapping is {query: <PQL or PuppetDB AST>}');
    return { query: r.value(pairs[0]![1].value) };
  }
  const v = r.value(node);
  if (v === null || v === '' || (Array.isArray(v) && v.length === 0)) r.fail(PlanErrorCode.invalidPlan, line, 'targets must name at least one node');
  return { value: v };
}

function checkRefs(r: Reader, refs: readonly { ref: string; line: number }[], known: ReadonlyMap<string, VariableKind>): void {
  for (const { ref, line } of refs) {
    const problem = refProblem(ref, known);
    if (problem) r.fail(PlanErrorCode.unknownVariable, line, problem, { variable: `$${ref}` });
  }
}
