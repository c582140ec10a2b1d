// `baton pki`: a small CA for brokers, agents and controllers, or an existing Puppet CA imported
// (`baton pki import`) so that the certificates it issues are signed by the Puppet CA.
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
  cmd
    .command('import')
    .description("make a PKI directory from an existing Puppet CA (its ca_crt.pem, ca_key.pem and ca_crl.pem): 'baton pki issue' then signs with the Puppet CA")
    .requiredOption('--puppet-ssldir <dir>', "the Puppet CA's directory: Puppet Server 7's cadir (/etc/puppetlabs/puppetserver/ca; Debian: /etc/puppet/puppetserver/ca), or an older ssldir whose ca/ holds it")
    .option('--dir <dir>', 'PKI directory to make (the one `baton up` uses by default)', 'var/pki')
    .option('--force', 'replace an existing CA in DIR')
    .action(async (opts: { puppetSsldir: string; dir: string; force?: boolean }) => {
      const { importPuppetCa } = await pki();
      const out = await importPuppetCa(opts.dir, opts.puppetSsldir, { force: opts.force });
      process.stdout.write(
        [
          `Imported the Puppet CA '${out.subject}' from ${out.cadir}${out.chainLength > 1 ? ` (with its chain: ${out.chainLength} certificates)` : ''}`,
          `CA certificate: ${out.caCert}`,
          `CA key:         ${out.caKey}`,
          `CRL:            ${out.crlImported ? out.crl : 'none imported (made when needed)'}`,
          `Next: baton pki issue broker orchestrator --dir ${opts.dir} --alt-names localhost,127.0.0.1`,
          '',
        ].join('\n'),
      );
    });
}
