// The job kinds Baton runs: tasks, Puppet runs and commands.
import { commandKind, type CommandKindOptions } from './command.ts';
import { JobKinds } from './kind.ts';
import { puppetKind } from './puppet.ts';
import { taskKind } from './task.ts';

export { JobKinds, type JobAction, type JobKind, type OutcomeContext, type RunEnd } from './kind.ts';

/** Every kind, the command kind with the face's options. */
export function standardKinds(command: CommandKindOptions = {}): JobKinds {
  return new JobKinds([taskKind, puppetKind, commandKind(command)]);
}
