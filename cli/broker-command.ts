// `baton broker`: runs a PCP broker in the foreground until SIGINT or SIGTERM; with --workers N
// (N > 1), N of them on one port under a supervisor (broker/workers.ts).
import type { Command } from 'commander';
import { createLogger } from '../lib/log.ts';
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
    workers: 'broker processes sharing the port, restarted when they die: N or auto (one per core); default 1',
  });
  cmd.action(async (opts: Record<string, unknown>) => {
    const { resolveBrokerConfig, startBroker } = await import('../broker/index.ts');
    const config = resolveBrokerConfig({ file: opts.config as string | undefined, env: process.env, flags: configFlags(brokerConfigSchema, opts) });
    const { BrokerSupervisor, WorkerError, workerCount, workerSlot } = await import('../broker/workers.ts');
    const slot = workerSlot();
    const count = workerCount(config.workers);
    if (slot === undefined && count > 1) {
      // The supervisor: it runs no broker itself; its workers re-run this command (node:cluster).
      const supervisor = new BrokerSupervisor(count, createLogger('broker-supervisor', config['log-level']));
      onShutdown(() => supervisor.stop());
      try {
        await supervisor.start();
      } catch (err) {
        if (!(err instanceof WorkerError)) throw err;
        // The worker has said why on stderr; the supervisor exits as it did.
        process.stderr.write(`baton: ${err.message}\n`);
        process.exit(Number(err.details?.exitCode ?? 1) || 1);
      }
      return;
    }
    const log = createLogger('broker', config['log-level']);
    // Workers share the config: each is its own member of the fabric (an explicit id gets the slot).
    if (slot !== undefined && config.fabric?.['broker-id']) config.fabric['broker-id'] = `${config.fabric['broker-id']}-${slot}`;
    const broker = await startBroker(config, slot === undefined ? log : log.child({ worker: slot }));
    onShutdown(() => broker.close());
  });
}
