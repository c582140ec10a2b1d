// What a YAML plan is once parsed (Bolt's YAML plan format, the subset Baton runs), its error
// codes, and the fields a step's result offers to later steps. Pure: no I/O.
import { BatonError } from '../../protocol/errors.ts';

export const PlanErrorCode = {
  /** The YAML does not parse, or a key or value is not what a plan allows (400, with a line). */
  invalidPlan: 'invalid-plan',
  /** No plan of that name in the environment (404). */
  unknownPlan: 'unknown-plan',
  /** A `$name` that is neither a parameter nor an earlier named step (400, with a line). */
  unknownVariable: 'unknown-variable',
  /** The parameters given to a plan (or a sub-plan) do not match its declared types (400). */
  invalidParameters: 'invalid-plan-parameters',
  /** A step names a task that is not there (404, the task catalogue's own code). */
  unknownTask: 'unknown-task',
  /** A script step names a file that the module does not have (404). */
  unknownFile: 'unknown-file',
  /** The caller may not run a task of the plan (403, the API's code). */
  notPermitted: 'not-permitted',
  /** A plan job id or a plan name that is not one (404). */
  unknownPlanJob: 'not-found',
} as const;
export type PlanErrorCode = (typeof PlanErrorCode)[keyof typeof PlanErrorCode];

export class PlanError extends BatonError {
  declare readonly code: PlanErrorCode;

  constructor(code: PlanErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { details });
  }
}

/** Bolt's step kinds, and Baton's `puppet_run` (a Puppet run on the targets, as /command/deploy does). */
export const StepKind = { task: 'task', command: 'command', script: 'script', plan: 'plan', puppet_run: 'puppet_run' } as const;
export type StepKind = (typeof StepKind)[keyof typeof StepKind];
export const STEP_KINDS: readonly StepKind[] = Object.values(StepKind);

/** Keys a plan file may have at its top. */
export const PLAN_KEYS = ['description', 'parameters', 'steps', 'return', 'private', 'version'] as const;
/** Keys every step may have, and those of each kind (Bolt's names; batch_size and max_failures are Baton's). */
export const COMMON_STEP_KEYS = ['name', 'description', 'targets', 'catch_errors', 'batch_size', 'max_failures'] as const;
export const STEP_KEYS: Record<StepKind, readonly string[]> = {
  task: ['task', 'parameters'],
  command: ['command'],
  script: ['script', 'arguments'],
  plan: ['plan', 'parameters'],
  puppet_run: ['puppet_run'],
};
/** Keys of a puppet_run step's mapping. */
export const PUPPET_RUN_KEYS = ['noop'] as const;
/** Bolt step kinds Baton does not run: refused with a reason rather than as unknown keys. */
export const UNSUPPORTED_STEP_KINDS = ['message', 'verbose', 'eval', 'upload', 'download', 'resources'] as const;
/** Keys of a parameter's declaration. */
export const PARAMETER_KEYS = ['type', 'description', 'default', 'sensitive'] as const;

/** What a task-like step's result (`$name`) offers: `$name.ok_targets` and so on. */
export const STEP_RESULT_FIELDS = ['ok', 'targets', 'ok_targets', 'failed_targets', 'results', 'job_ids'] as const;
export type StepResultField = (typeof STEP_RESULT_FIELDS)[number];

export const NAME_RE = /^[a-z_][a-z0-9_]*$/;
/** A plan's name: `module::name`, or `module` for its init.yaml; names may nest (`module::dir::name`). */
export const PLAN_NAME_RE = /^[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)*$/;

export interface ParameterDef {
  type: string;
  description?: string;
  default?: unknown;
  sensitive?: boolean;
}

/** A step's targets as written: a value (string, list, `$ref`) or a query scope (Baton's extension). */
export type TargetsDef = { value: unknown } | { query: unknown };

export interface StepDef {
  kind: StepKind;
  /** 1-based line of the step in its file. */
  line: number;
  name?: string;
  description?: string;
  /** task or plan name; the command line; the script as `module/path` under the module's files/; a Puppet run's mode (`noop` or `enforce`). */
  what: string;
  /** The line of the `what` key's value (task name, command, script, plan). */
  whatLine: number;
  parameters: Record<string, unknown>;
  /** Script arguments. */
  arguments?: unknown[];
  targets?: TargetsDef;
  catch_errors: boolean;
  /** A node count, or a percentage of the step's targets ("25%"). */
  batch_size?: number | string;
  max_failures?: number;
}

export interface PlanDef {
  name: string;
  description?: string;
  parameters: Record<string, ParameterDef>;
  steps: StepDef[];
  return?: unknown;
  returnLine?: number;
  private?: boolean;
}

/** A step result as later steps see it (task, command and script steps; a plan step's is its return value). */
export interface StepResult {
  ok: boolean;
  targets: string[];
  ok_targets: string[];
  failed_targets: string[];
  /** Each node's result (the task's JSON output, or {_output}; failures carry _error). */
  results: Record<string, unknown>;
  job_ids: string[];
}
