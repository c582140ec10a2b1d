// `baton broker`: runs a PCP broker in the foreground until SIGINT or SIGTERM.
import type { Command } from 'commander';
import { brokerConfigSchema } from '../schemas/broker-config.ts';
import { addConfigFlags, configFlags } from './options.ts';
import { onShutdown } from './shutdown.ts';

export function registerBroker(program: Command): void {
  const cmd = program
    .command('broker')
    .description('run a PCP broker (wss://HOST:8142/pcp2/<client type>)');
  addConfigFlags(cmd, brokerConfigSchema, {
    host: 'address to listen on (default 0.0.0.0)',
    port: 'port to listen on; 0 picks a free one (default 8142)',
    'ssl-ca-cert': 'CA certificate (PEM) that client certificates must be signed by',
    'ssl-cert': "the broker's certificate (PEM)",
    'ssl-key': "the broker's private key (PEM)",
    'controller-cns': 'comma-separated globs of CNs allowed to connect as controllers (default orchestrator)',
  });
  cmd.action(async (opts: Record<string, unknown>) => {
    const { resolveBrokerConfig, startBroker } = await import('../broker/index.ts');
    const config = resolveBrokerConfig({ file: opts.config as string | undefined, env: process.env, flags: configFlags(brokerConfigSchema, opts) });
    const broker = await startBroker(config);
    onShutdown(() => broker.close());
  });
}
