// `baton up` (what `npm start` runs): a local development fleet. Today that is a dev CA under
// ./var/pki (made once, reused) and a broker; the orchestrator and agents join it as they land.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_BROKER_PORT } from '../broker/defaults.ts';
import { onShutdown } from './shutdown.ts';

export const DEV_VAR_DIR = 'var';
const DEV_IDENTITIES = ['broker', 'orchestrator'] as const;

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run a local development fleet (dev CA in ./var/pki and a broker)')
    .option('--dir <dir>', 'state directory', DEV_VAR_DIR)
    .option('--port <port>', 'broker port', String(DEFAULT_BROKER_PORT))
    .action(async (opts: { dir: string; port: string }) => {
      const { initCa, issueCert, pkiPaths } = await import('../lib/pki.ts');
      const { resolveBrokerConfig, startBroker } = await import('../broker/index.ts');
      const pkiDir = resolve(opts.dir, 'pki');
      const paths = pkiPaths(pkiDir);
      if (!existsSync(paths.caCert)) await initCa(pkiDir, { commonName: 'Baton dev CA' });
      for (const name of DEV_IDENTITIES) {
        if (!existsSync(paths.cert(name))) await issueCert(pkiDir, name, { altNames: name === 'broker' ? ['localhost', '127.0.0.1'] : [] });
      }
      const config = resolveBrokerConfig({
        env: process.env,
        flags: {
          host: '127.0.0.1',
          port: opts.port,
          'ssl-ca-cert': paths.caCert,
          'ssl-cert': paths.cert('broker'),
          'ssl-key': paths.key('broker'),
          'log-level': 'warn',
        },
      });
      const broker = await startBroker(config);
      process.stderr.write(
        [
          '',
          'Baton dev fleet is up.',
          `  broker        wss://localhost:${broker.port}/pcp2/<client type>   status: https://localhost:${broker.port}/status/v1/services`,
          `  dev CA        ${paths.caCert}`,
          `  controller    ${paths.cert('orchestrator')} (CN=orchestrator)`,
          '',
          'Try:',
          `  curl -sk https://localhost:${broker.port}/status/v1/services`,
          `  npx baton pki issue --dir ${pkiDir} web01     # a certificate for an agent`,
          `  curl -sk https://localhost:${broker.port}/metrics | grep baton_broker_sessions`,
          '',
          'Ctrl-C stops everything.',
          '',
        ].join('\n'),
      );
      onShutdown(() => broker.close());
    });
}
