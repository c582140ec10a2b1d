// Plans in the codedir (`<env>/modules/<module>/plans/<name>.yaml`) and what is checked at submit:
// the plan and its sub-plans parse, their tasks and scripts exist, the parameters given match the
// declared types. The result is the compiled plan (sub-plans and scripts included), stored with the
// plan job so that a resumed plan runs what was submitted even if the files changed since.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkDeclared, safeReaddir, TaskCatalogError, TaskErrorCode, taskParameterType, type DeclaredParameter, type TaskCatalog, type TaskDescription } from '../tasks/catalog.ts';
import { parsePuppetType, type PuppetType } from '../tasks/puppet-types.ts';
import type { TaskSource } from '../tasks/source.ts';
import { PLAN_SCRIPT_MAX_BYTES, PLAN_NESTING_MAX } from './defaults.ts';
import { NAME_RE, PLAN_NAME_RE, PlanError, PlanErrorCode, type ParameterDef, type PlanDef, type StepDef } from './model.ts';
import { parsePlan } from './parse.ts';
import { refsOf, resolveValue } from './values.ts';

/** The tasks Baton runs a plan's command and script steps with (orchestrator/tasks/builtin). */
export const COMMAND_TASK = 'baton_shim::command';
export const SCRIPT_TASK = 'baton_shim::script';

export interface CompiledStep extends StepDef {
  /** A plan step's plan, compiled. */
  plan?: CompiledPlan;
  /** A script step's file: its name and content (base64). */
  script?: { name: string; content_b64: string };
}

export interface CompiledPlan extends Omit<PlanDef, 'steps'> {
  steps: CompiledStep[];
}

export interface Compiled {
  plan: CompiledPlan;
  /** The parameters with defaults applied. */
  params: Record<string, unknown>;
  /** The names of the sensitive parameters. */
  sensitive: string[];
  /** The tasks the plan's steps run (sub-plans included): each needs its `tasks:run:<task>`. */
  tasks: string[];
}

/** TargetSpec and Target are Bolt's types: node names (a string, or a list of them). */
function planType(src: string): PuppetType {
  return parsePuppetType(src.replace(/\bTargetSpec\b/g, 'Variant[String[1], Array[Variant[String[1], Hash]]]').replace(/\bTarget\b/g, 'String[1]'));
}

const UNKNOWN = Symbol('unknown at submit');

/**
 * Checks the parameters given to a plan against its declarations (values not known yet, from
 * earlier steps, are left out of the type checks); returns them with defaults applied.
 */
export function checkPlanParams(plan: Pick<PlanDef, 'name' | 'parameters'>, given: Record<string, unknown>, unknownKeys: ReadonlySet<string> = new Set()): Record<string, unknown> {
  const typeOf = (k: string, def: DeclaredParameter): PuppetType => {
    try {
      return planType(def.type!);
    } catch (err) {
      throw new PlanError(PlanErrorCode.invalidPlan, `plan ${plan.name}: parameter ${k} has type '${def.type}': ${(err as Error).message}`, { plan: plan.name, parameter: k });
    }
  };
  const { values, problems } = checkDeclared(plan.parameters, given, { typeOf, later: unknownKeys });
  if (problems.length > 0) throw new PlanError(PlanErrorCode.invalidParameters, `invalid parameters for plan ${plan.name}: ${problems.join('; ')}`, { plan: plan.name, problems });
  return values;
}

export class PlanCatalog {
  constructor(
    private readonly catalog: TaskCatalog,
    private readonly tasks: TaskSource,
  ) {}

  /** The file of a plan, or an unknown-plan error. */
  planFile(environment: string, name: string): string {
    const envDir = this.catalog.environmentDir(environment);
    const unknown = () => new PlanError(PlanErrorCode.unknownPlan, `could not find a plan named '${name}' in environment '${environment}'`, { plan: name, environment });
    if (!PLAN_NAME_RE.test(name)) throw unknown();
    const [module, ...rest] = name.split('::');
    const file = join(envDir, 'modules', module!, 'plans', ...(rest.length === 0 ? ['init'] : rest.slice(0, -1)), `${rest.length === 0 ? 'init' : rest.at(-1)!}.yaml`);
    if (!existsSync(file) || !statSync(file).isFile()) throw unknown();
    return file;
  }

  /** Every YAML plan of an environment, by name. */
  list(environment: string): string[] {
    const modulesDir = join(this.catalog.environmentDir(environment), 'modules');
    const names: string[] = [];
    const walk = (dir: string, prefix: string[]): void => {
      for (const entry of safeReaddir(dir)) {
        const path = join(dir, entry);
        if (entry.endsWith('.yaml') && NAME_RE.test(entry.slice(0, -5)) && statSync(path).isFile()) {
          const base = entry.slice(0, -5);
          names.push(prefix.length === 1 && base === 'init' ? prefix[0]! : [...prefix, base].join('::'));
        } else if (NAME_RE.test(entry) && statSync(path).isDirectory()) walk(path, [...prefix, entry]);
      }
    };
    for (const module of safeReaddir(modulesDir)) if (NAME_RE.test(module)) walk(join(modulesDir, module, 'plans'), [module]);
    return names.sort();
  }

  /** A plan as parsed (refused with its line when it does not parse). */
  load(environment: string, name: string): PlanDef {
    return parsePlan(name, readFileSync(this.planFile(environment, name), 'utf8'));
  }

  /** Everything checked at submit, for a plan run with `params`. */
  async compile(environment: string, name: string, params: Record<string, unknown>): Promise<Compiled> {
    const tasks = new Set<string>();
    const def = this.load(environment, name);
    const resolved = checkPlanParams(def, params);
    const plan = await this.compileSteps(environment, def, resolved, new Set(), [name], tasks);
    const sensitive = Object.entries(def.parameters).filter(([, p]) => p.sensitive === true).map(([k]) => k);
    return { plan, params: resolved, sensitive, tasks: [...tasks].sort() };
  }

  private async compileSteps(environment: string, def: PlanDef, known: Record<string, unknown>, unknownParams: ReadonlySet<string>, stack: string[], tasks: Set<string>): Promise<CompiledPlan> {
    // Values known at submit: literals, and references to parameters whose values are known.
    const knownNames = new Set(Object.keys(def.parameters).filter((k) => !unknownParams.has(k)));
    const valueAtSubmit = (v: unknown): unknown => (refsOf(v).every((r) => knownNames.has(r.split('.')[0]!)) ? resolveValue(v, known) : UNKNOWN);
    const steps: CompiledStep[] = [];
    for (const s of def.steps) {
      const at = (reason: string) => `plan ${def.name}, line ${s.whatLine}: ${reason}`;
      const step: CompiledStep = { ...s };
      if (s.kind === 'task') {
        const task = await this.describe(environment, s.what, at, s.whatLine, def.name);
        const given: Record<string, unknown> = {};
        const later = new Set<string>();
        for (const [k, v] of Object.entries(s.parameters)) {
          const value = valueAtSubmit(v);
          if (value === UNKNOWN) later.add(k);
          else given[k] = value;
        }
        checkTaskParams(task, given, later, at, def.name, s.line);
        tasks.add(task.name);
      } else if (s.kind === 'command') {
        // The built-in task must be where tasks come from (not on a Puppet server's tasks API): refused now, not at run.
        tasks.add((await this.describe(environment, COMMAND_TASK, at, s.whatLine, def.name)).name);
      } else if (s.kind === 'puppet_run') {
        // A Puppet run needs jobs:run only, as /command/deploy does.
      } else if (s.kind === 'script') {
        step.script = this.script(environment, s.what, at, def.name, s.whatLine);
        tasks.add((await this.describe(environment, SCRIPT_TASK, at, s.whatLine, def.name)).name);
      } else {
        if (stack.includes(s.what)) throw new PlanError(PlanErrorCode.invalidPlan, at(`plan ${s.what} runs itself (${[...stack, s.what].join(' → ')})`), { plan: def.name, line: s.whatLine });
        if (stack.length >= PLAN_NESTING_MAX) throw new PlanError(PlanErrorCode.invalidPlan, at(`sub-plans nest deeper than ${PLAN_NESTING_MAX}`), { plan: def.name, line: s.whatLine });
        let sub: PlanDef;
        try {
          sub = this.load(environment, s.what);
        } catch (err) {
          if (err instanceof PlanError && err.code === PlanErrorCode.unknownPlan) throw new PlanError(PlanErrorCode.unknownPlan, at(err.message), { ...err.details, line: s.whatLine, in_plan: def.name });
          throw err;
        }
        const given: Record<string, unknown> = {};
        const later = new Set<string>();
        const args: Record<string, unknown> = { ...s.parameters, ...(s.targets && 'value' in s.targets ? { targets: s.targets.value } : {}) };
        for (const [k, v] of Object.entries(args)) {
          const value = valueAtSubmit(v);
          if (value === UNKNOWN) later.add(k);
          else given[k] = value;
        }
        let subParams: Record<string, unknown>;
        try {
          subParams = checkPlanParams(sub, given, later);
        } catch (err) {
          if (err instanceof PlanError) throw new PlanError(err.code, at(err.message), { ...err.details, line: s.whatLine, in_plan: def.name });
          throw err;
        }
        step.plan = await this.compileSteps(environment, sub, subParams, later, [...stack, s.what], tasks);
      }
      steps.push(step);
    }
    return { ...def, steps };
  }

  private async describe(environment: string, task: string, at: (r: string) => string, line: number, plan: string): Promise<TaskDescription> {
    try {
      return await this.tasks.describe(environment, task);
    } catch (err) {
      if (err instanceof TaskCatalogError && err.code === TaskErrorCode.unknownTask) throw new PlanError(PlanErrorCode.unknownTask, at(err.message), { ...err.details, plan, line });
      throw err;
    }
  }

  private script(environment: string, spec: string, at: (r: string) => string, plan: string, line: number): { name: string; content_b64: string } {
    const [module, ...path] = spec.split('/');
    const file = join(this.catalog.environmentDir(environment), 'modules', module!, 'files', ...path);
    if (!existsSync(file) || !statSync(file).isFile()) throw new PlanError(PlanErrorCode.unknownFile, at(`module ${module} has no file ${path.join('/')} in its files/`), { plan, line, script: spec });
    const size = statSync(file).size;
    if (size > PLAN_SCRIPT_MAX_BYTES) throw new PlanError(PlanErrorCode.invalidPlan, at(`script ${spec} is ${size} bytes; the largest is ${PLAN_SCRIPT_MAX_BYTES}`), { plan, line, script: spec });
    return { name: path.at(-1)!.replace(/[^A-Za-z0-9_.-]/g, '_'), content_b64: readFileSync(file).toString('base64') };
  }
}

/** A task step's parameters checked against the task: every key known, values known at submit type-checked. */
function checkTaskParams(task: TaskDescription, given: Record<string, unknown>, later: ReadonlySet<string>, at: (r: string) => string, plan: string, line: number): void {
  const declared = task.metadata.parameters;
  if (!declared) return; // a task without parameter metadata takes anything
  const { problems } = checkDeclared(declared, given, { typeOf: taskParameterType(task), later, passPrivate: true });
  if (problems.length > 0) throw new PlanError(PlanErrorCode.invalidParameters, at(`invalid parameters for task '${task.name}': ${problems.join('; ')}`), { problems, plan, line, task: task.name });
}

/** A step's parameter declarations as GET /plans/:module/:name shows them. */
export function parameterSummary(p: Record<string, ParameterDef>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(p).map(([k, d]) => [k, { type: d.type, ...(d.description ? { description: d.description } : {}), ...(d.sensitive ? { sensitive: true } : {}), ...(d.default !== undefined ? { default: d.sensitive ? '[redacted]' : d.default } : {}) }]));
}
