// Pure parts of deploys: application ordering and cycles, Puppet flags, per-node actions and the
// Puppet results → node state rules.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findCycle, instancesOf, loadApplications, orderInstances } from '../../orchestrator/deploy/applications.ts';
import { nodeAction } from '../../orchestrator/engine/engine.ts';
import { puppetOutcome } from '../../orchestrator/engine/results.ts';
import { deployFlags } from '../../orchestrator/http/puppet/deploy.ts';

function envDir(applications: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-apps-'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'applications.json'), JSON.stringify(applications));
  return dir;
}

const wordpress = {
  applications: {
    'Wordpress_app[demo]': {
      components: {
        'Wordpress_app::Db[demo]': { nodes: ['db1'] },
        'Wordpress_app::Web[demo]': { nodes: ['web1', 'web2'], requires: ['Wordpress_app::Db[demo]'] },
        'Wordpress_app::Lb[demo]': { nodes: ['lb1'], requires: ['Wordpress_app::Web[demo]'] },
      },
    },
    'Wordpress_app[blog]': { components: { 'Wordpress_app::Db[blog]': { nodes: ['db2'] } } },
    'Other_app[x]': { components: { 'Other_app::Thing[x]': { nodes: ['o1'] } } },
  },
};

describe('applications', () => {
  it('orders the nodes of an instance by its components', () => {
    const apps = loadApplications(envDir(wordpress));
    const o = orderInstances(apps, ['Wordpress_app[demo]']);
    assert.deepEqual(o.nodes, ['db1', 'lb1', 'web1', 'web2']);
    assert.deepEqual(o.deps, { web1: ['db1'], web2: ['db1'], lb1: ['web1', 'web2'] });
  });

  it('a type names all its instances; an unknown name none', () => {
    const apps = loadApplications(envDir(wordpress));
    assert.deepEqual(instancesOf(apps, 'Wordpress_app'), ['Wordpress_app[blog]', 'Wordpress_app[demo]']);
    assert.deepEqual(instancesOf(apps, 'Wordpress_app[demo]'), ['Wordpress_app[demo]']);
    assert.deepEqual(instancesOf(apps, 'Wordpress_app[nope]'), []);
    assert.deepEqual(instancesOf(apps, 'Nope'), []);
  });

  it('refuses a cycle among components, naming it', () => {
    const apps = loadApplications(envDir({
      applications: { 'Loop[a]': { components: { 'A[a]': { nodes: ['n1'], requires: ['B[a]'] }, 'B[a]': { nodes: ['n2'], requires: ['A[a]'] } } } },
    }));
    assert.throws(() => orderInstances(apps, ['Loop[a]']), (err: Error & { code?: string }) => err.code === 'dependency-cycle' && /A\[a\] -> B\[a\] -> A\[a\]/.test(err.message));
  });

  it('refuses components that put nodes in a cycle', () => {
    const apps = loadApplications(envDir({
      applications: {
        'X[a]': {
          components: {
            'P[a]': { nodes: ['n1'] },
            'Q[a]': { nodes: ['n2'], requires: ['P[a]'] },
            'R[a]': { nodes: ['n1'], requires: ['Q[a]'] },
          },
        },
      },
    }));
    assert.throws(() => orderInstances(apps, ['X[a]']), /n1 -> n2 -> n1|n2 -> n1 -> n2/);
  });

  it('refuses a bad file with the problem named', () => {
    assert.throws(() => loadApplications(envDir({ applications: { 'A[a]': { components: { 'B[a]': { nodes: ['n'], requires: ['C[a]'] } } } } })), /requires C\[a\], which is not a component/);
    assert.throws(() => loadApplications(envDir({ applications: { lower: {} } })), /applications/);
  });

  it('findCycle finds none in a DAG', () => {
    assert.equal(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', []]])), null);
  });
});

describe('deploy flags and per-node actions', () => {
  it('maps the request keys to Puppet flags', () => {
    assert.deepEqual(deployFlags({ environment: 'production' }), ['--environment', 'production']);
    assert.deepEqual(deployFlags({ environment: 'production', enforce_environment: false, noop: true, debug: true, trace: true, evaltrace: true }), ['--noop', '--debug', '--trace', '--evaltrace']);
    assert.deepEqual(deployFlags({ environment: 'staging', noop: false }), ['--environment', 'staging', '--no-noop']);
  });

  it('adds a node\'s own flags and the job id to Puppet runs only', () => {
    const a = { module: 'puppet', action: 'run', params: { flags: ['--noop'], env: [] }, node_flags: { web2: ['--environment', 'staging'] } };
    assert.deepEqual(nodeAction(a, 'web2', '7'), { module: 'puppet', action: 'run', params: { flags: ['--noop', '--environment', 'staging'], env: [], job: '7' } });
    assert.deepEqual(nodeAction(a, 'web1', '7'), { module: 'puppet', action: 'run', params: { flags: ['--noop'], env: [], job: '7' } });
    const t = { module: 'task', action: 'run', params: { task: 'x' } };
    assert.deepEqual(nodeAction(t, 'web1', '7'), t);
  });
});

describe('Puppet results → node state', () => {
  const base = { time: '2026-11-21T00:00:00Z', transaction_uuid: 'b732bbc0-8140-4f5f-9e0d-b5acff97a935', environment: 'production', metrics: { resources: { failed: 0 } }, exitcode: 0, version: 1 };
  it('finished, failed and errored', () => {
    assert.equal(puppetOutcome({ ...base, kind: 'changed', status: 'changed' }).state, 'finished');
    const failed = puppetOutcome({ ...base, kind: 'failed', status: 'failed' });
    assert.equal(failed.state, 'failed');
    assert.equal(failed.details.transaction_uuid, base.transaction_uuid);
    const errored = puppetOutcome({ ...base, status: 'unchanged', error_type: 'agent_disabled', error: 'maintenance' });
    assert.equal(errored.state, 'errored');
    assert.equal(errored.details.message, 'agent_disabled: maintenance');
  });
  it('reads results from status query stdout, and errors without any', () => {
    assert.equal(puppetOutcome({ exitcode: 0, stdout: JSON.stringify({ ...base, status: 'unchanged' }), stderr: '' }).state, 'finished');
    assert.equal(puppetOutcome({ exitcode: 1, stdout: 'garbage', stderr: '' }).state, 'errored');
  });
});
