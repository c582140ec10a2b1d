// Masterless Puppet for one agent: its own confdir, vardir, publicdir, logdir and rundir under one
// directory (never the machine's /etc/puppet or ~/.puppetlabs), and the agent config keys
// (puppet-bin, puppet-settings, puppet-command) that make a `puppet run` a `puppet apply` of
// `<codedir>/environments/<environment>/manifests` with that environment's modules. `baton up`
// gives each local agent one; the tests use it too (test/helpers/puppet.ts).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** What `puppet apply` is given: the environment's manifests directory, or only its site.pp. */
export const ManifestTarget = {
  directory: 'directory',
  sitePp: 'site.pp',
} as const;
export type ManifestTarget = (typeof ManifestTarget)[keyof typeof ManifestTarget];

/** The agent's `puppet-command` stands for the run's environment with this (pxp-agent/modules/puppet.ts). */
export const ENVIRONMENT_PLACEHOLDER = '{environment}';

export interface MasterlessPuppetOptions {
  /** The directory that holds the Puppet dirs (created). */
  root: string;
  /** Puppet's codedir (its `environments/` is the environmentpath); `<root>/code` by default. */
  codedir?: string;
  /** `--certname`: the node name in reports and catalogs (`$trusted['certname']`); the host's name by default. */
  certname?: string;
  /** `puppet-bin`; `puppet` (looked up in PATH) by default. */
  bin?: string;
  /** `directory` by default: every `.pp` file in `manifests/`, as Puppet's default `manifest` setting. */
  manifest?: ManifestTarget;
}

/** The agent config keys of a masterless Puppet. */
// A type, not an interface: callers merge it into configs typed as records.
export type PuppetAgentConfig = {
  'puppet-bin': string;
  'puppet-settings': string[];
  'puppet-command': string[];
};

export interface MasterlessPuppet {
  root: string;
  confdir: string;
  vardir: string;
  publicdir: string;
  codedir: string;
  logdir: string;
  rundir: string;
  /** Keys to merge into the agent's config. */
  config: PuppetAgentConfig;
  /** Where Puppet writes the files the puppet module reads (the state directory exists). */
  lastRunReport: string;
  lastRunSummary: string;
  disabledLockfile: string;
  runLockfile: string;
}

/**
 * Makes the Puppet dirs (kept when they exist) and returns them with the agent config. The run's
 * environment reaches `puppet apply` both as `--environment` and in the manifest path, so the
 * environment a deploy names is the one whose manifests apply and whose modules are on the
 * modulepath, and the report names it.
 */
export function masterlessPuppet(opts: MasterlessPuppetOptions): MasterlessPuppet {
  const { root } = opts;
  const dir = (name: string) => {
    const d = join(root, name);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const confdir = dir('conf');
  const vardir = dir('var');
  const publicdir = dir('public');
  const logdir = dir('log');
  const rundir = dir('run');
  const codedir = opts.codedir ?? dir('code');
  mkdirSync(join(codedir, 'environments'), { recursive: true });
  mkdirSync(join(vardir, 'state'), { recursive: true });
  const settings = ['--confdir', confdir, '--vardir', vardir, '--publicdir', publicdir, '--codedir', codedir, '--logdir', logdir, '--rundir', rundir];
  if (opts.certname) settings.push('--certname', opts.certname);
  const manifests = join(codedir, 'environments', ENVIRONMENT_PLACEHOLDER, 'manifests');
  const target = (opts.manifest ?? ManifestTarget.directory) === ManifestTarget.sitePp ? join(manifests, 'site.pp') : manifests;
  return {
    root,
    confdir,
    vardir,
    publicdir,
    codedir,
    logdir,
    rundir,
    config: {
      'puppet-bin': opts.bin ?? 'puppet',
      'puppet-settings': settings,
      'puppet-command': ['apply', '--verbose', '--environment', ENVIRONMENT_PLACEHOLDER, target],
    },
    lastRunReport: join(vardir, 'state', 'last_run_report.yaml'),
    lastRunSummary: join(publicdir, 'last_run_summary.yaml'),
    disabledLockfile: join(vardir, 'state', 'agent_disabled.lock'),
    runLockfile: join(vardir, 'state', 'agent_catalog_run.lock'),
  };
}
