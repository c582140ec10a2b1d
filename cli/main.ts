// The `baton` command.
import { Command, CommanderError } from 'commander';
import { BatonError } from '../protocol/errors.ts';
import { registerAgent } from './agent-command.ts';
import { registerBroker } from './broker-command.ts';
import { registerOrchestrator } from './orchestrator-command.ts';
import { registerPki } from './pki-command.ts';
import { registerUp } from './up-command.ts';

/** Exit codes: 0 success, 1 failure, 2 usage or configuration error. */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;

const program = new Command('baton')
  .description('Baton: push orchestration for server fleets')
  .showHelpAfterError()
  .exitOverride();
registerBroker(program);
registerAgent(program);
registerOrchestrator(program);
registerPki(program);
registerUp(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
  }
  const code = err instanceof BatonError && err.code.startsWith('config/') ? ExitCode.usage : ExitCode.failure;
  process.stderr.write(`baton: ${(err as Error).message}\n`);
  process.exit(code);
}
