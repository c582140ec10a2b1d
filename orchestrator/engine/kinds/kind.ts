// What a job kind is: the PXP action one node runs, and the rules that turn how that run ended
// into the node's outcome. The engine runs every kind the same way and asks its kind only these.
import type { PxpAction } from '../../pcp/pxp-runner.ts';
import type { DeliveredOutcome } from '../delivery.ts';
import type { AgentTaskResults, NodeOutcome } from '../results.ts';

/** A job's action; `node_flags` adds flags for some nodes (a deploy's per-node environment). */
export interface JobAction extends PxpAction {
  node_flags?: Record<string, string[]>;
}

/** How a node run ended as the engine saw it: delivered, or (kinds that watch for it) the node's session lost. */
export type RunEnd = DeliveredOutcome | { kind: 'crashed' };

export interface OutcomeContext {
  node: string;
  /** The job's node run timeout. */
  timeoutS: number;
  /** The job is stopping or stopped as the outcome arrives (read only for kinds with `abortsWhenStopping`). */
  jobStopping: boolean;
}

export interface JobKind {
  /** The PXP modules whose actions are of this kind. */
  readonly modules: readonly string[];
  /** A run whose node drops its session has crashed: the node may never report it. */
  readonly crashesOnDisconnect: boolean;
  /** The outcome depends on whether the job is being stopped (a run ended by the stop was aborted). */
  readonly abortsWhenStopping: boolean;
  /** The action as `node` runs it in job `jobId`; `extraFlags`: the node's own flags, if any. */
  nodeAction(action: PxpAction, node: string, jobId: string, extraFlags: readonly string[] | undefined): PxpAction;
  /** The node's outcome from how its run ended. */
  outcome(end: RunEnd, ctx: OutcomeContext): NodeOutcome;
  /** Called with a run's results before its end is recorded (e.g. to keep its output). */
  onResults?(jobId: string, node: string, results: AgentTaskResults): Promise<void>;
}

/** The kinds an engine runs, found by the module of a job's action. */
export class JobKinds {
  private readonly byModule = new Map<string, JobKind>();

  constructor(kinds: readonly JobKind[]) {
    for (const k of kinds) for (const m of k.modules) this.byModule.set(m, k);
  }

  /** The kind of `module`, or null when no kind runs it. */
  of(module: string): JobKind | null {
    return this.byModule.get(module) ?? null;
  }

  /** The action as one node runs it: the kind's own rules plus the node's flags. */
  nodeAction(a: JobAction, node: string, jobId: string): PxpAction {
    const { node_flags: perNode, ...action } = a;
    const kind = this.of(action.module);
    return kind ? kind.nodeAction(action, node, jobId, perNode?.[node]) : action;
  }
}
