// Job kind `command`: a shell command through the agent's command module (Chef push jobs). Chef's
// rules: a node that drops its session crashed; a run ended by a stop was aborted.
import { chefOutcome, type AgentTaskResults } from '../results.ts';
import type { JobKind } from './kind.ts';

export const COMMAND_MODULE = 'command';

export interface CommandKindOptions {
  /** Keeps a run's output before its end is recorded (the Chef face's capture_output). */
  keepOutput?: (jobId: string, node: string, results: AgentTaskResults) => Promise<void>;
}

export function commandKind(opts: CommandKindOptions = {}): JobKind {
  return {
    modules: [COMMAND_MODULE],
    crashesOnDisconnect: true,
    abortsWhenStopping: true,
    nodeAction: (action, _node, jobId) => ({ ...action, params: { ...action.params, job_id: jobId } }),
    outcome: (end, ctx) => chefOutcome(end, ctx.jobStopping),
    ...(opts.keepOutput ? { onResults: opts.keepOutput } : {}),
  };
}
