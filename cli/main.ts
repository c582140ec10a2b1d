// The `baton` command.
import { Command, CommanderError } from 'commander';
import { registerAgent } from './agent-command.ts';
import { registerBroker } from './broker-command.ts';
import { registerDeployment } from './commands/deployment.ts';
import { registerInventory } from './commands/inventory.ts';
import { registerJob } from './commands/job.ts';
import { registerPlan } from './commands/plan.ts';
import { registerPush } from './commands/push.ts';
import { registerSchedule } from './commands/schedule.ts';
import { registerTask } from './commands/task.ts';
import { EXIT_CODES_HELP, ExitCode, exitCodeFor } from './errors.ts';
import { registerOrchestrator } from './orchestrator-command.ts';
import { registerPki } from './pki-command.ts';
import { registerUp } from './up-command.ts';

export { ExitCode } from './errors.ts';

const program = new Command('baton')
  .description('Baton: push orchestration for server fleets')
  .showHelpAfterError('(add --help for usage)')
  .exitOverride()
  .addHelpText('after', `${EXIT_CODES_HELP}\n\nClient commands talk to the orchestrator: --url (BATON_URL, default https://127.0.0.1:8143),\n--token (BATON_TOKEN, else ~/.baton/token), --ca (BATON_CA, else ./var/pki/certs/ca.pem).`);
registerUp(program);
registerTask(program);
registerJob(program);
registerPush(program);
registerPlan(program);
registerSchedule(program);
registerInventory(program);
registerDeployment(program);
registerBroker(program);
registerAgent(program);
registerOrchestrator(program);
registerPki(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
  }
  process.stderr.write(`baton: ${(err as Error).message}\n`);
  process.exit(exitCodeFor(err));
}
