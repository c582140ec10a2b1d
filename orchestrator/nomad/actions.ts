// What reconcile decides (actions) and what it is told (observations, commands). Types only.
import type { Allocation, DeploymentStatus } from './model.ts';

/** An allocation's run as the engine has it. */
export interface RunObservation {
  state: 'pending' | 'running' | 'finished' | 'failed';
  startMs: number | null;
  endMs: number | null;
  exitCode: number | null;
  message: string | null;
}

/** A node as this orchestrator's inventory sees it (`lastDownMs`: its last disconnection seen). */
export interface NodeObservation {
  connected: boolean;
  lastDownMs: number | null;
}

/** What a person (or the controller) asks of a deployment; checked before reconcile. */
export type Command =
  | { kind: 'cancel' }
  | { kind: 'fail' }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'promote'; groups: string[] }
  | { kind: 'health'; healthy: string[]; unhealthy: string[]; why?: string }
  | { kind: 'submitted'; alloc: string; engineJob: string };

export const DeadlineKind = { healthy: 'healthy', minHealthy: 'min-healthy', progress: 'progress', lease: 'lease' } as const;
export type DeadlineKind = (typeof DeadlineKind)[keyof typeof DeadlineKind];

export type Action =
  /** A new allocation (its run not created yet). */
  | { type: 'place'; alloc: Allocation }
  /** This reconcile takes on creating the allocation's run (state: the lease; effect: the submission). */
  | { type: 'claim'; alloc: string }
  | { type: 'submitted'; alloc: string; engineJob: string }
  | { type: 'run-started'; alloc: string; atMs: number }
  | { type: 'run-ended'; alloc: string; ok: boolean; exitCode: number; message: string | null; atMs: number }
  | { type: 'health'; alloc: string; healthy: boolean; why: string }
  | { type: 'promote'; group: string; auto: boolean }
  | { type: 'status'; status: DeploymentStatus; description: string }
  /** The deployment made progress now (the progress deadline starts again). */
  | { type: 'progress' }
  /** Effect: stop the allocation's run (`replace`: a running one too; state: DesiredStatus stop). */
  | { type: 'stop-run'; alloc: string; replace: boolean }
  | { type: 'mark-stable' }
  | { type: 'revert'; version: number }
  /** Effect: reconcile again at `atMs` (idempotent by `key`). */
  | { type: 'arm'; deadline: DeadlineKind; key: string; atMs: number };
