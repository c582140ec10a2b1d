// The Nomad face's model: service specs with their update policy, deployments and allocations,
// and their JSON as Nomad's API shows them (PascalCase). Pure.
import type { FromSchema } from 'json-schema-to-ts';
import type { nomadJobSchema } from '../../schemas/orchestrator-api.ts';

export type NomadJobInput = FromSchema<typeof nomadJobSchema>;

export const UPDATE_DEFAULTS = {
  MaxParallel: 1,
  Canary: 0,
  AutoPromote: false,
  AutoRevert: false,
  MinHealthyTimeMs: 10_000,
  HealthyDeadlineMs: 300_000,
  ProgressDeadlineMs: 600_000,
  HealthCheck: 'task_states',
} as const;

export interface UpdatePolicy {
  MaxParallel: number;
  Canary: number;
  AutoPromote: boolean;
  AutoRevert: boolean;
  MinHealthyTimeMs: number;
  HealthyDeadlineMs: number;
  ProgressDeadlineMs: number;
  HealthCheck: 'task_states' | 'manual';
}

export interface TaskGroupSpec {
  Name: string;
  Scope: { nodes?: string[]; query?: unknown; node_group?: string };
  Task?: { task: string; params: Record<string, unknown>; environment: string };
  Puppet?: { environment: string; noop: boolean };
  Update: UpdatePolicy;
}

export interface JobSpec {
  ID: string;
  Name: string;
  TaskGroups: TaskGroupSpec[];
}

export interface JobVersion {
  Version: number;
  Spec: JobSpec;
  Stable: boolean;
  SubmitTime: number; // ns
  ModifyIndex: number;
}

export const DeploymentStatus = { running: 'running', paused: 'paused', failed: 'failed', successful: 'successful', cancelled: 'cancelled' } as const;
export type DeploymentStatus = (typeof DeploymentStatus)[keyof typeof DeploymentStatus];
export const TERMINAL_DEPLOYMENT: readonly string[] = ['failed', 'successful', 'cancelled'];

export const Description = {
  running: 'Deployment is running',
  needsPromotion: 'Deployment is running but requires manual promotion',
  paused: 'Deployment is paused',
  successful: 'Deployment completed successfully',
  unhealthy: 'Failed due to unhealthy allocations',
  progressDeadline: 'Failed due to progress deadline',
  byUser: 'Deployment marked as failed',
  newerVersion: 'Cancelled due to newer version of job',
} as const;

export interface GroupState {
  Promoted: boolean;
  AutoPromote: boolean;
  AutoRevert: boolean;
  DesiredCanaries: number;
  DesiredTotal: number;
  PlacedCanaries: string[];
  PlacedAllocs: number;
  HealthyAllocs: number;
  UnhealthyAllocs: number;
  ProgressDeadline: number; // ns, as Nomad shows it
  RequireProgressBy: string | null;
  /** Baton: the nodes of the group in placement order (resolved at the start). */
  Nodes: string[];
}

export interface Deployment {
  ID: string;
  JobID: string;
  JobVersion: number;
  JobModifyIndex: number;
  JobSpecModifyIndex: number;
  JobCreateIndex: number;
  TaskGroups: Record<string, GroupState>;
  Status: DeploymentStatus;
  StatusDescription: string;
  CreateIndex: number;
  ModifyIndex: number;
  /** Baton: epoch ms of the start and of the last healthy allocation (progress deadline). */
  StartMs: number;
  LastProgressMs: number;
}

export interface TaskEvent {
  Type: string;
  Time: number; // ns
  Message: string;
  ExitCode: number;
  FailsTask: boolean;
  DisplayMessage: string;
}

export interface Allocation {
  ID: string;
  EvalID: string;
  Name: string;
  NodeID: string;
  NodeName: string;
  JobID: string;
  JobVersion: number;
  TaskGroup: string;
  DesiredStatus: 'run' | 'stop';
  DesiredDescription: string;
  ClientStatus: 'pending' | 'running' | 'complete' | 'failed' | 'lost';
  ClientDescription: string;
  TaskStates: Record<string, { State: 'pending' | 'running' | 'dead'; Failed: boolean; StartedAt: string | null; FinishedAt: string | null; Events: TaskEvent[] }>;
  DeploymentID: string;
  DeploymentStatus: { Healthy: boolean | null; Timestamp: string | null; Canary: boolean; ModifyIndex: number };
  CreateIndex: number;
  ModifyIndex: number;
  CreateTime: number; // ns
  ModifyTime: number; // ns
  /** Baton: the engine job running this allocation, and when it was placed (ms). */
  EngineJob: string | null;
  PlacedMs: number;
  RunEndedMs: number | null;
  /** Baton: when an orchestrator took on creating this allocation's run (a lease; null: nobody yet). */
  SubmitClaimMs?: number | null;
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Nanoseconds (number) or "10s"-style text → milliseconds. */
export function durationToMs(v: number | string | undefined, fallbackMs: number): number {
  if (v === undefined) return fallbackMs;
  if (typeof v === 'number') return Math.round(v / 1e6);
  const m = /^([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)$/.exec(v)!;
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}

export const msToNs = (ms: number): number => ms * 1_000_000;

/** The spec with every default filled in, so that equal intentions compare equal. */
export function normalizeSpec(input: NomadJobInput): JobSpec {
  return {
    ID: input.ID,
    Name: input.Name ?? input.ID,
    TaskGroups: input.TaskGroups.map((g) => {
      const u = g.Update ?? {};
      return {
        Name: g.Name,
        Scope: g.Scope as TaskGroupSpec['Scope'],
        ...(g.Task ? { Task: { task: g.Task.task, params: (g.Task.params ?? {}) as Record<string, unknown>, environment: g.Task.environment ?? 'production' } } : {}),
        ...(g.Puppet ? { Puppet: { environment: g.Puppet.environment, noop: g.Puppet.noop === true } } : {}),
        Update: {
          MaxParallel: u.MaxParallel ?? UPDATE_DEFAULTS.MaxParallel,
          Canary: u.Canary ?? UPDATE_DEFAULTS.Canary,
          AutoPromote: u.AutoPromote ?? UPDATE_DEFAULTS.AutoPromote,
          AutoRevert: u.AutoRevert ?? UPDATE_DEFAULTS.AutoRevert,
          MinHealthyTimeMs: durationToMs(u.MinHealthyTime, UPDATE_DEFAULTS.MinHealthyTimeMs),
          HealthyDeadlineMs: durationToMs(u.HealthyDeadline, UPDATE_DEFAULTS.HealthyDeadlineMs),
          ProgressDeadlineMs: durationToMs(u.ProgressDeadline, UPDATE_DEFAULTS.ProgressDeadlineMs),
          HealthCheck: u.HealthCheck ?? UPDATE_DEFAULTS.HealthCheck,
        },
      };
    }),
  };
}

/** Canonical JSON (keys sorted) for comparing specs. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

export const sameSpec = (a: JobSpec, b: JobSpec): boolean => canonical(a) === canonical(b);

/** What a group runs, as a task name in TaskStates. */
export const taskName = (g: TaskGroupSpec): string => (g.Task ? g.Task.task : 'puppet');

/** The job as GET /v1/job/:id shows it. */
export function jobJson(v: JobVersion, createIndex: number, running: boolean): Record<string, unknown> {
  return {
    ...specJson(v.Spec),
    Version: v.Version,
    Stable: v.Stable,
    Status: running ? 'running' : 'dead',
    Type: 'service',
    SubmitTime: v.SubmitTime,
    CreateIndex: createIndex,
    ModifyIndex: v.ModifyIndex,
    JobModifyIndex: v.ModifyIndex,
  };
}

/** The spec with durations back in nanoseconds, as Nomad shows them. */
export function specJson(s: JobSpec): Record<string, unknown> {
  return {
    ID: s.ID,
    Name: s.Name,
    TaskGroups: s.TaskGroups.map((g) => {
      const { MinHealthyTimeMs, HealthyDeadlineMs, ProgressDeadlineMs, ...u } = g.Update;
      return { ...g, Update: { ...u, MinHealthyTime: msToNs(MinHealthyTimeMs), HealthyDeadline: msToNs(HealthyDeadlineMs), ProgressDeadline: msToNs(ProgressDeadlineMs) } };
    }),
  };
}

/** A deployment as the API shows it (Baton's own bookkeeping left out). */
export function deploymentJson(d: Deployment): Record<string, unknown> {
  const { StartMs: _s, LastProgressMs: _l, TaskGroups, ...rest } = d;
  const groups: Record<string, unknown> = {};
  for (const [name, g] of Object.entries(TaskGroups)) {
    const { Nodes: _n, ...shown } = g;
    groups[name] = shown;
  }
  return { ...rest, TaskGroups: groups };
}

export function allocationJson(a: Allocation): Record<string, unknown> {
  const { EngineJob: _e, PlacedMs: _p, RunEndedMs: _r, SubmitClaimMs: _c, ...rest } = a;
  return rest;
}

/** Nomad-style ids: a UUID. `prefix` must have an even number of hex characters. */
export const isFullId = (id: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);
export const isValidPrefix = (p: string): boolean => /^[0-9a-f-]*$/.test(p) && p.replace(/-/g, '').length % 2 === 0;

/** A task event as Nomad records them (time in nanoseconds; now by default). */
export function event(type: string, message: string, atMs: number = Date.now()): TaskEvent {
  return { Type: type, Time: msToNs(atMs), Message: message, ExitCode: 0, FailsTask: false, DisplayMessage: message };
}

/** A normalized spec back into the register input (durations in ms text). */
export function specInput(s: JobSpec): NomadJobInput {
  return {
    ID: s.ID,
    Name: s.Name,
    TaskGroups: s.TaskGroups.map((g) => ({
      Name: g.Name,
      Scope: g.Scope as NomadJobInput['TaskGroups'][number]['Scope'],
      ...(g.Task ? { Task: g.Task } : {}),
      ...(g.Puppet ? { Puppet: g.Puppet } : {}),
      Update: {
        MaxParallel: g.Update.MaxParallel, Canary: g.Update.Canary, AutoPromote: g.Update.AutoPromote, AutoRevert: g.Update.AutoRevert, HealthCheck: g.Update.HealthCheck,
        MinHealthyTime: `${g.Update.MinHealthyTimeMs}ms`, HealthyDeadline: `${g.Update.HealthyDeadlineMs}ms`, ProgressDeadline: `${g.Update.ProgressDeadlineMs}ms`,
      },
    })),
  };
}
