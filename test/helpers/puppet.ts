// A Puppet sandbox per agent: its own confdir, vardir, publicdir, codedir, logdir and rundir in a
// temporary directory, and agent config that runs `puppet apply` on
// `<codedir>/environments/<environment>/manifests/site.pp`, so that tests run real Puppet
// without a Puppet server and without touching the machine's own Puppet.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import type { PuppetRunResults } from '../../pxp-agent/puppet-results.ts';
import { newTransactionId, type TaskRun } from './tasks.ts';

export type { PuppetRunResults };

export interface PuppetSandbox {
  /** The directory that holds everything below (unless codedir was given). */
  root: string;
  confdir: string;
  vardir: string;
  publicdir: string;
  codedir: string;
  logdir: string;
  rundir: string;
  /** Keys to merge into the agent's config: puppet-bin, puppet-settings, puppet-command. */
  config: { 'puppet-bin': string; 'puppet-settings': string[]; 'puppet-command': string[] };
  /** Where Puppet writes the files the puppet module reads (the state directory exists). */
  lastRunReport: string;
  lastRunSummary: string;
  disabledLockfile: string;
  runLockfile: string;
  remove(): void;
}

export interface PuppetSandboxOptions {
  /** The sandbox directory (created); a new temporary one by default. */
  root?: string;
  /** Puppet's codedir; `<root>/code` by default. Pass another (an orchestrator's) to run its manifests. */
  codedir?: string;
  /** `--certname`: the node name in reports and catalogs (the host's name by default). */
  certname?: string;
  /** `puppet-bin`; `puppet` by default. */
  bin?: string;
}

/** Whether `puppet` can be run here (tests skip themselves otherwise). */
export function puppetAvailable(bin = 'puppet'): boolean {
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore', timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes a sandbox. The run's environment reaches `puppet apply` both as `--environment` and in
 * the manifest path, so that the report names the environment whose manifest ran.
 */
export function puppetSandbox(opts: PuppetSandboxOptions = {}): PuppetSandbox {
  let root: string;
  if (opts.root) mkdirSync((root = opts.root), { recursive: true });
  else root = mkdtempSync(join(tmpdir(), 'baton-puppet-'));
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
      'puppet-command': ['apply', '--verbose', '--environment', '{environment}', join(codedir, 'environments', '{environment}', 'manifests', 'site.pp')],
    },
    lastRunReport: join(vardir, 'state', 'last_run_report.yaml'),
    lastRunSummary: join(publicdir, 'last_run_summary.yaml'),
    disabledLockfile: join(vardir, 'state', 'agent_disabled.lock'),
    runLockfile: join(vardir, 'state', 'agent_catalog_run.lock'),
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Writes `<codedir>/environments/<environment>/manifests/site.pp`; returns its path. */
export function writeManifest(codedir: string, environment: string, text: string): string {
  const manifests = join(codedir, 'environments', environment, 'manifests');
  mkdirSync(manifests, { recursive: true });
  const path = join(manifests, 'site.pp');
  writeFileSync(path, text);
  return path;
}

/** Disables Puppet in a sandbox as `puppet agent --disable "<message>"` does. */
export function disablePuppet(sandbox: PuppetSandbox, message: string): void {
  writeFileSync(sandbox.disabledLockfile, JSON.stringify({ disabled_message: message }));
}

export function enablePuppet(sandbox: PuppetSandbox): void {
  rmSync(sandbox.disabledLockfile, { force: true });
}

/** Sends a non-blocking `puppet run` and waits for the provisional response (or a refusal). */
export async function runPuppet(
  ctl: PcpClient,
  target: string,
  params: { flags: string[]; job?: string; env?: string[] },
  opts: { transactionId?: string; outcomeTimeoutMs?: number } = {},
): Promise<TaskRun> {
  const transactionId = opts.transactionId ?? newTransactionId('puppet');
  const outcome = ctl.expectTransaction(transactionId, opts.outcomeTimeoutMs ?? 60_000);
  const provisional = await ctl.request(pxpRequest(target, { transaction_id: transactionId, module: 'puppet', action: 'run', params, notify_outcome: true }, false));
  return { transactionId, provisional, outcome };
}
