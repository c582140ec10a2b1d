// `baton orchestrator`: the HTTPS API and job engine, until SIGINT or SIGTERM.
import type { Command } from 'commander';
import { orchestratorConfigSchema } from '../schemas/orchestrator-config.ts';
import { createLogger } from '../lib/log.ts';
import { addConfigFlags, configFlags } from './options.ts';
import { onShutdown } from './shutdown.ts';

export function registerOrchestrator(program: Command): void {
  const cmd = program.command('orchestrator').description('run the orchestrator: Puppet orchestrator v1 API on https://HOST:8143, jobs on BullMQ/Redis');
  addConfigFlags(cmd, orchestratorConfigSchema, {
    port: 'port to listen on; 0 picks a free one (default 8143)',
    redis: 'Redis URL (default redis://127.0.0.1:6379)',
    codedir: 'code directory: environments/<env>/modules/<module>/tasks',
    'tokens-file': 'JSON file of API tokens [{token, login, permissions}]',
    'pcp-version': 'PCP version to speak, 1 or 2 (default 2); brokers at .../pcp/ for 1, .../pcp2/ for 2',
  });
  cmd.action(async (opts: Record<string, unknown>) => {
    const { Orchestrator, resolveOrchestratorConfig } = await import('../orchestrator/index.ts');
    const config = resolveOrchestratorConfig({ file: opts.config as string | undefined, env: process.env, flags: configFlags(orchestratorConfigSchema, opts) });
    const orchestrator = new Orchestrator(config, createLogger('orchestrator', config['log-level']));
    await orchestrator.start();
    onShutdown(() => orchestrator.stop());
  });
}
