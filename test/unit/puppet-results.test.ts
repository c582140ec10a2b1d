// Puppet run results from Puppet's report and summary (pxp-agent/puppet-results.ts), and the
// puppet module's flag whitelist and command line (pxp-agent/modules/puppet.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFlags, puppetArgs, puppetEnvironment, type PuppetModuleConfig } from '../../pxp-agent/modules/puppet.ts';
import {
  disabledMessage,
  errorResults,
  lastLine,
  parseConfigPrint,
  parseYamlObject,
  runResults,
  transactionStatus,
  type RunEvidence,
} from '../../pxp-agent/puppet-results.ts';

// As Puppet 7 writes it: Ruby tags on the document and on nested objects, metrics as [name, label, value].
const REPORT = `--- !ruby/object:Puppet::Transaction::Report
host: node1
time: '2026-11-21T13:42:04.030902788+00:00'
configuration_version: 1795268523
transaction_uuid: ad0cd31c-9657-4750-8e9b-7b9253623c66
report_format: 12
puppet_version: 7.23.0
status: changed
transaction_completed: true
noop: false
noop_pending: false
environment: production
logs:
- !ruby/object:Puppet::Util::Log
  level: !ruby/sym notice
  message: "defined 'message' as 'hi'"
  source: Notify[hi]
metrics:
  resources: !ruby/object:Puppet::Util::Metric
    name: resources
    label: Resources
    values:
    - - total
      - Total
      - 8
    - - changed
      - Changed
      - 1
  events:
    name: events
    label: Events
    values:
    - - success
      - Success
      - 1
resource_statuses: {}
`;

const SUMMARY = `---
version:
  config: 1795268523
  puppet: 7.23.0
resources:
  changed: 1
  failed: 0
  total: 8
time:
  total: 0.025
  last_run: 1795268524
changes:
  total: 1
events:
  failure: 0
  success: 1
  total: 1
`;

const evidence = (e: Partial<RunEvidence> = {}): RunEvidence => ({
  exitcode: 0,
  stdout: '',
  stderr: '',
  reportPath: '/var/state/last_run_report.yaml',
  report: REPORT,
  summary: SUMMARY,
  ...e,
});

describe('puppet results', () => {
  it('take time, uuid, configuration version, environment and status from the report, metrics from the summary, kind = status', () => {
    assert.deepEqual(runResults(evidence()), {
      kind: 'changed',
      time: '2026-11-21T13:42:04.030902788+00:00',
      transaction_uuid: 'ad0cd31c-9657-4750-8e9b-7b9253623c66',
      configuration_version: '1795268523',
      environment: 'production',
      status: 'changed',
      metrics: {
        resources: { changed: 1, failed: 0, total: 8 },
        time: { total: 0.025, last_run: 1795268524 },
        changes: { total: 1 },
        events: { failure: 0, success: 1, total: 1 },
      },
      exitcode: 0,
      version: 1,
    });
  });

  it('take metrics from the report itself when there is no summary of this run', () => {
    assert.deepEqual(runResults(evidence({ summary: null })).metrics, { resources: { total: 8, changed: 1 }, events: { success: 1 } });
    assert.deepEqual(runResults(evidence({ summary: 'not: [valid' })).metrics, { resources: { total: 8, changed: 1 }, events: { success: 1 } });
  });

  it('say no_last_run_report when this run wrote no report and exited 0', () => {
    const r = runResults(evidence({ report: null }));
    assert.equal(r.error_type, 'no_last_run_report');
    assert.match(r.error!, /last_run_report\.yaml was not written by this run/);
    assert.equal(r.status, 'unknown');
    assert.equal(r.kind, 'unknown');
    assert.deepEqual(r.metrics, {});
  });

  it('say agent_failure, with the last line of stderr, when it wrote no report and exited non-zero', () => {
    const r = runResults(evidence({ report: null, exitcode: 1, stderr: '\u001b[1;31mWarning: x\u001b[0m\n\u001b[1;31mError: Could not parse for environment production: Syntax error\u001b[0m\n\n' }));
    assert.equal(r.error_type, 'agent_failure');
    assert.equal(r.error, 'Error: Could not parse for environment production: Syntax error');
    assert.equal(r.exitcode, 1);
    assert.equal(runResults(evidence({ report: null, exitcode: 3 })).error, 'puppet exited with code 3 without writing /var/state/last_run_report.yaml');
  });

  it('say agent_already_running when Puppet skipped the run for another one', () => {
    const r = runResults(evidence({ report: null, exitcode: 1, stdout: 'Notice: Run of Puppet configuration client already in progress; skipping  (/x/agent_catalog_run.lock exists)\n' }));
    assert.equal(r.error_type, 'agent_already_running');
    assert.match(r.error!, /already in progress; skipping/);
  });

  it('say invalid_last_run_report for a report that does not parse or is no map', () => {
    assert.equal(runResults(evidence({ report: 'status: [unclosed' })).error_type, 'invalid_last_run_report');
    assert.equal(runResults(evidence({ report: '- a\n- b\n' })).error_type, 'invalid_last_run_report');
  });

  it('say agent_exit_non_zero for a non-zero exit the report does not explain, and nothing more for a failed run', () => {
    const odd = runResults(evidence({ exitcode: 2, stderr: 'boom\n' }));
    assert.equal(odd.error_type, 'agent_exit_non_zero');
    assert.equal(odd.error, 'puppet exited with code 2: boom');
    assert.equal(odd.status, 'changed');
    const failed = runResults(evidence({ exitcode: 1, report: REPORT.replace('status: changed', 'status: failed') }));
    assert.equal(failed.error_type, undefined);
    assert.equal(failed.status, 'failed');
  });

  it('make the transaction a failure for an error or a failed run, else a success', () => {
    assert.equal(transactionStatus(runResults(evidence())), 'success');
    assert.equal(transactionStatus(runResults(evidence({ report: REPORT.replace('status: changed', 'status: unchanged') }))), 'success');
    assert.equal(transactionStatus(runResults(evidence({ report: REPORT.replace('status: changed', 'status: failed') }))), 'failure');
    assert.equal(transactionStatus(errorResults(-1, 'agent_disabled', 'x')), 'failure');
  });

  it('read YAML with Ruby tags and aliases as plain data', () => {
    const doc = parseYamlObject('--- !ruby/object:Foo\na: &x !ruby/sym b\nc: *x\nd: !ruby/hash:Bar {e: 1}\n');
    assert.deepEqual(doc, { a: 'b', c: 'b', d: { e: 1 } });
  });

  it('read `puppet config print` output and the disabled lockfile', () => {
    assert.deepEqual(parseConfigPrint('lastrunfile = /a b/summary.yaml\nlastrunreport = /r.yaml\nnoise\n'), { lastrunfile: '/a b/summary.yaml', lastrunreport: '/r.yaml' });
    assert.equal(disabledMessage('{"disabled_message":"maintenance"}'), 'maintenance');
    assert.equal(disabledMessage('{}'), null);
    assert.equal(disabledMessage('not json'), null);
    assert.equal(lastLine('a\nb\n\n'), 'b');
  });
});

describe('puppet flags', () => {
  it('accept whitelisted flags, negations and values as the next element or after =', () => {
    assert.deepEqual(parseFlags(['--noop', '--no-use_cached_catalog', '--tags', 'a,b::c', '--environment=staging', '--log_level', 'debug', '--http_read_timeout=5m']), {
      args: ['--noop', '--no-use_cached_catalog', '--tags', 'a,b::c', '--environment', 'staging', '--log_level', 'debug', '--http_read_timeout', '5m'],
      environment: 'staging',
    });
    assert.deepEqual(parseFlags([]), { args: [], environment: null });
  });

  const refusals: [string[], RegExp][] = [
    [['--server', 'x'], /flag '--server' is not permitted/],
    [['--onetime'], /flag '--onetime' is not permitted/],
    [['--no-daemonize'], /flag '--no-daemonize' is not permitted/],
    [['--exec=/bin/sh'], /flag '--exec' is not permitted/],
    [['--no-debug'], /flag '--no-debug' is not permitted/],
    [['--constructor'], /flag '--constructor' is not permitted/],
    [['--noop', 'true'], /'true' is not a flag/],
    [['-v'], /'-v' is not a flag/],
    [['--noop=false'], /flag '--noop' takes no value/],
    [['--tags'], /flag '--tags' needs a value/],
    [['--tags='], /flag '--tags' needs a value/],
    [['--tags', '--noop'], /flag '--tags' needs a value, not '--noop'/],
    [['--tags', 'a b'], /flag '--tags' has a value with characters/],
    [['--environment', 'Prod'], /flag '--environment' needs an environment name matching/],
    [['--environment', '../etc'], /flag '--environment' has a value with characters|needs an environment name/],
  ];
  for (const [flags, expected] of refusals) {
    it(`refuse ${JSON.stringify(flags)}`, () => {
      assert.throws(() => parseFlags(flags), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'puppet/invalid-flag');
        assert.match(err.message, expected);
        return true;
      });
    });
  }
});

describe('puppet command line', () => {
  const config: PuppetModuleConfig = {
    bin: 'puppet',
    command: ['agent', '--onetime', '--no-daemonize', '--verbose'],
    settings: ['--confdir', '/c'],
    environment: 'production',
  };

  it('is the command, the settings, the flags, then --job-id for puppet agent', () => {
    assert.deepEqual(puppetArgs(config, ['--noop'], 'production', '42'), ['agent', '--onetime', '--no-daemonize', '--verbose', '--confdir', '/c', '--noop', '--job-id', '42']);
    assert.deepEqual(puppetArgs(config, [], 'production', undefined), ['agent', '--onetime', '--no-daemonize', '--verbose', '--confdir', '/c']);
  });

  it('puts the environment into {environment} and leaves --job-id out of puppet apply', () => {
    const apply = { ...config, command: ['apply', '/code/environments/{environment}/manifests/site.pp'] };
    assert.deepEqual(puppetArgs(apply, ['--environment', 'staging'], 'staging', '42'), ['apply', '/code/environments/staging/manifests/site.pp', '--confdir', '/c', '--environment', 'staging']);
  });

  it('runs with the agent environment less BATON_ variables, plus the request\'s KEY=VALUE strings', () => {
    process.env.BATON_SECRET_FOR_TEST = 'x';
    try {
      const env = puppetEnvironment(['FACTER_role=web', 'EMPTY=', 'WITH_EQ=a=b']);
      assert.equal(env.BATON_SECRET_FOR_TEST, undefined);
      assert.equal(env.FACTER_role, 'web');
      assert.equal(env.EMPTY, '');
      assert.equal(env.WITH_EQ, 'a=b');
      assert.equal(env.PATH, process.env.PATH);
    } finally {
      delete process.env.BATON_SECRET_FOR_TEST;
    }
  });
});
