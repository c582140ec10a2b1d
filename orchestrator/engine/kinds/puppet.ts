// Job kind `puppet`: a Puppet run through the agent's puppet module (the Puppet face's deploys and
// Puppet deployments); each node's run carries the job id and the node's own flags.
import { PUPPET_RUN_MODULE_NAMES } from '../../../protocol/pxp.ts';
import { puppetOutcome } from '../results.ts';
import type { JobKind } from './kind.ts';
import { taskRunOutcome } from './task.ts';

export const puppetKind: JobKind = {
  modules: PUPPET_RUN_MODULE_NAMES,
  crashesOnDisconnect: false,
  abortsWhenStopping: false,
  nodeAction(action, _node, jobId, extraFlags) {
    const flags = Array.isArray(action.params.flags) ? (action.params.flags as string[]) : [];
    return { ...action, params: { ...action.params, flags: [...flags, ...(extraFlags ?? [])], job: jobId } };
  },
  // Results by the run's report; everything else as for tasks.
  outcome: (end, ctx) => (end.kind === 'results' ? puppetOutcome(end.results) : taskRunOutcome(end, ctx)),
};
