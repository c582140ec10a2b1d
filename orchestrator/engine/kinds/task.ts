// Job kind `task`: a task from the catalog run through the agent's `task` module.
import type { TaskDescription } from '../../tasks/catalog.ts';
import type { PxpAction } from '../../pcp/pxp-runner.ts';
import { agentErrorOutcome, notConnectedOutcome, taskOutcome } from '../results.ts';
import type { JobKind, OutcomeContext, RunEnd } from './kind.ts';

export const TASK_MODULE = 'task';

/** The one PXP `task run` action, for the Puppet face's task jobs and for deployments. */
export function taskRunAction(task: Pick<TaskDescription, 'name' | 'files' | 'metadata'>, input: Record<string, unknown>, timeoutS: number): PxpAction {
  return { module: TASK_MODULE, action: 'run', params: { task: task.name, input, files: task.files, metadata: task.metadata, timeout: timeoutS } };
}

/** Outcomes by the task spec's rules: results by exit code and `_error`, agent errors, lost nodes, timeouts. */
export function taskRunOutcome(end: RunEnd, ctx: OutcomeContext): ReturnType<typeof taskOutcome> {
  switch (end.kind) {
    case 'results':
      return taskOutcome(end.results, ctx.timeoutS);
    case 'agent-error':
      return agentErrorOutcome(end.description);
    case 'not-connected':
    case 'crashed':
      return notConnectedOutcome(ctx.node);
    case 'timeout':
      return taskOutcome({ exitcode: null, stdout: '', stderr: '', timed_out: true }, ctx.timeoutS);
  }
}

export const taskKind: JobKind = {
  modules: [TASK_MODULE],
  crashesOnDisconnect: false,
  abortsWhenStopping: false,
  nodeAction: (action) => action,
  outcome: taskRunOutcome,
};
