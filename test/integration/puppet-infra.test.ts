// The real Puppet infrastructure the Puppet tests build on: a private PostgreSQL, a PuppetDB on
// it and a Puppet server (Debian's packages) with Baton's test PKI, started once for the file;
// `puppet agent --test` as node1 gets its catalog from the server, and PuppetDB then has node1's
// facts, catalog and report.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../lib/net.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { writeManifest } from '../helpers/puppet.ts';
import { startPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { startPuppetdb, type TestPuppetdb } from '../helpers/puppetdb.ts';
import {
  puppetAgentNode,
  puppetStackMissing,
  startPuppetserver,
  type PuppetAgentNode,
  type PuppetRun,
  type TestPuppetserver,
} from '../helpers/puppetserver.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';

const STACK_START_TIMEOUT_MS = 420_000;

const skip = skipUnlessInstalled(await puppetStackMissing());

interface PdbNode {
  certname: string;
  report_environment: string | null;
  latest_report_status: string | null;
}
interface PdbFact {
  name: string;
  value: unknown;
}
interface PdbReport {
  certname: string;
  status: string;
  transaction_uuid: string;
  configuration_version: string;
  noop: boolean;
}

describe('real Puppet infrastructure (PostgreSQL, PuppetDB, Puppet server)', { skip }, () => {
  const fileStart = Date.now();
  const timings: Record<string, number> = {};
  let pki: TestPki;
  let codedir: string;
  let managedDir: string;
  let pg: TestPostgres | undefined;
  let pdb: TestPuppetdb | undefined;
  let server: TestPuppetserver | undefined;
  let node1: PuppetAgentNode | undefined;
  let firstRun: PuppetRun;

  before(
    async () => {
      pki = await makePki();
      codedir = mkdtempSync(join(tmpdir(), 'baton-code-'));
      managedDir = mkdtempSync(join(tmpdir(), 'baton-managed-'));
      writeManifest(
        codedir,
        'production',
        `node default {\n  file { '${join(managedDir, 'motd')}': content => "compiled by the Puppet server for \${trusted['certname']}\\n" }\n}\n`,
      );
      // The server only needs PuppetDB's URL to start; the two JVMs start side by side.
      const pdbPort = await freePort();
      const t0 = Date.now();
      const results = await Promise.allSettled([
        startPuppetserver({ pki, codedir, puppetdbUrl: `https://127.0.0.1:${pdbPort}` }).then((s) => {
          server = s;
          timings.puppetserverMs = s.startupMs;
        }),
        (async () => {
          const tp = Date.now();
          pg = await startPostgres();
          timings.postgresMs = Date.now() - tp;
          pdb = await startPuppetdb({ pki, postgres: pg, port: pdbPort });
          timings.puppetdbMs = pdb.startupMs;
        })(),
      ]);
      timings.stackMs = Date.now() - t0;
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      node1 = await puppetAgentNode(pki, 'node1', server!);
      firstRun = await node1.run();
      timings.agentRunMs = firstRun.ms;
    },
    { timeout: STACK_START_TIMEOUT_MS },
  );

  after(
    async () => {
    await Promise.allSettled([server?.stop(), pdb?.stop()]);
    await pg?.stop();
    node1?.remove();
    pki?.remove();
    for (const d of [codedir, managedDir]) if (d) rmSync(d, { recursive: true, force: true });
    timings.fileMs = Date.now() - fileStart;
    process.stderr.write(`puppet-infra timings (ms): ${JSON.stringify(timings)}\n`);
  }, { timeout: 120_000 });

  it('puppet agent --test applies the catalog the Puppet server compiled for node1', () => {
    assert.equal(firstRun.code, 2, `exit code ${firstRun.code} (2 = changes applied)\n${firstRun.stdout}\n${firstRun.stderr}`);
    assert.equal(readFileSync(join(managedDir, 'motd'), 'utf8'), 'compiled by the Puppet server for node1\n');
  });

  it('PuppetDB has node1, its facts and the report of that run', async () => {
    const lastReport = readFileSync(join(node1!.vardir, 'state', 'last_run_report.yaml'), 'utf8');
    // Puppet's YAML quotes a UUID that could read as another type (one that starts with digits, say).
    const transactionUuid = /^transaction_uuid: (['"]?)([0-9a-f-]{36})\1$/m.exec(lastReport)?.[2];
    assert.ok(transactionUuid, 'the agent wrote its report with a transaction_uuid');

    const nodes = await pdb!.waitFor<PdbNode[]>('nodes[certname, report_environment, latest_report_status] { certname = "node1" }', (rows) => rows[0]?.latest_report_status != null);
    assert.deepEqual(nodes, [{ certname: 'node1', report_environment: 'production', latest_report_status: 'changed' }]);

    const facts = await pdb!.query<PdbFact[]>('facts[name, value] { certname = "node1" and name in ["clientcert", "kernel"] }');
    assert.deepEqual(
      facts.sort((a, b) => a.name.localeCompare(b.name)),
      [
        { name: 'clientcert', value: 'node1' },
        { name: 'kernel', value: 'Linux' },
      ],
    );

    const reports = await pdb!.query<PdbReport[]>('reports[certname, status, transaction_uuid, configuration_version, noop] { certname = "node1" }');
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.transaction_uuid, transactionUuid);
    assert.equal(reports[0]!.status, 'changed');
    assert.equal(reports[0]!.noop, false);
    assert.match(reports[0]!.configuration_version, /^\d+$/);

    const resources = await pdb!.query<{ title: string }[]>('resources[title] { certname = "node1" and type = "File" }');
    assert.deepEqual(resources, [{ title: join(managedDir, 'motd') }]);
  });
});
