// `baton agent`: runs a PXP agent until SIGINT or SIGTERM.
import type { Command } from 'commander';
import { pino } from 'pino';
import { agentConfigSchema } from '../schemas/agent-config.ts';
import { addConfigFlags, configFlags } from './options.ts';
import { onShutdown } from './shutdown.ts';

export function registerAgent(program: Command): void {
  const cmd = program.command('agent').description('run a PXP agent that connects to broker-ws-uris as pcp://<certificate CN>/agent');
  addConfigFlags(cmd, agentConfigSchema, {
    'broker-ws-uris': 'comma-separated brokers, e.g. wss://broker:8142/pcp2/ (tried in order; failover)',
    'master-uris': 'comma-separated HTTPS servers task files may be downloaded from',
    'ping-interval': 'seconds between WebSocket pings (default 120)',
    'pcp-version': 'PCP version to speak, 1 or 2 (default 2); brokers at .../pcp/ for 1, .../pcp2/ for 2',
  });
  cmd.option('--foreground', 'log to stderr');
  cmd.action(async (opts: Record<string, unknown>) => {
    const { Agent, resolveAgentConfig } = await import('../pxp-agent/index.ts');
    const config = resolveAgentConfig({ file: opts.config as string | undefined, env: process.env, flags: configFlags(agentConfigSchema, opts) });
    const destination = opts.foreground ? pino.destination(2) : config.logfile ? pino.destination({ dest: config.logfile, mkdir: true }) : pino.destination(1);
    const log = pino({ level: config['log-level'], base: { component: 'agent', pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
    const agent = new Agent(config, log);
    agent.start();
    onShutdown(() => agent.stop());
  });
}
