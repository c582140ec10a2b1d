// `baton pki`: a small CA for brokers, agents and controllers.
import { Command, Option } from 'commander';
import type { KeyType } from '../lib/pki.ts';

// The x509 library is large: it is loaded only when a pki command runs.
const pki = () => import('../lib/pki.ts');

const keyTypeOption = () => new Option('--key-type <type>', 'key algorithm').choices(['ec', 'rsa']).default('ec');

export function registerPki(program: Command): void {
  const cmd = program.command('pki').description('make a CA and issue certificates signed by it');
  cmd
    .command('init')
    .description('make a new CA in DIR (certs/ca.pem, ca/ca_key.pem)')
    .requiredOption('--dir <dir>', 'PKI directory')
    .addOption(keyTypeOption())
    .option('--common-name <cn>', "the CA's common name")
    .option('--force', 'replace an existing CA')
    .action(async (opts: { dir: string; keyType: KeyType; commonName?: string; force?: boolean }) => {
      const { initCa } = await pki();
      const paths = await initCa(opts.dir, opts);
      process.stdout.write(`CA certificate: ${paths.caCert}\nCA key:         ${paths.caKey}\n`);
    });
  cmd
    .command('issue')
    .description('issue a key and a certificate with CN=NAME for each NAME (certs/NAME.pem, private_keys/NAME.pem)')
    .argument('<names...>', 'common names, e.g. broker orchestrator web01.example.com')
    .requiredOption('--dir <dir>', 'PKI directory')
    .addOption(keyTypeOption())
    .option('--alt-names <names>', 'extra DNS names or IP addresses, comma-separated (e.g. localhost,127.0.0.1)')
    .option('--force', 'replace existing certificates')
    .action(async (names: string[], opts: { dir: string; keyType: KeyType; altNames?: string; force?: boolean }) => {
      const { issueCert, pkiPaths } = await pki();
      const altNames = opts.altNames?.split(',').map((s) => s.trim()).filter(Boolean);
      for (const name of names) {
        const out = await issueCert(opts.dir, name, { keyType: opts.keyType, force: opts.force, altNames });
        process.stdout.write(`${name}: certificate ${out.cert}, key ${out.key}\n`);
      }
      process.stdout.write(`CA certificate: ${pkiPaths(opts.dir).caCert}\n`);
    });
}
