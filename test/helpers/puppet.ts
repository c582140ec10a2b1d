// A Puppet sandbox per agent: its own confdir, vardir, publicdir, codedir, logdir and rundir in a
// temporary directory, and agent config that runs `puppet apply` on
// `<codedir>/environments/<environment>/manifests/site.pp` (the masterless Puppet of `baton up`,
// cli/up/masterless-puppet.ts), so that tests run real Puppet without a Puppet server and
// without touching the machine's own Puppet.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestTarget, masterlessPuppet, type MasterlessPuppet, type MasterlessPuppetOptions } from '../../cli/up/masterless-puppet.ts';
import type { PcpClient } from '../../protocol/client/pcp-client.ts';
import { pxpRequest } from '../../protocol/pxp.ts';
import type { PuppetRunResults } from '../../pxp-agent/puppet-results.ts';
import { newTransactionId, type TaskRun } from './tasks.ts';

export type { PuppetRunResults };

export interface PuppetSandbox extends MasterlessPuppet {
  /** The directory that holds everything (unless codedir was given). */
  root: string;
  remove(): void;
}

export interface PuppetSandboxOptions extends Omit<MasterlessPuppetOptions, 'root' | 'manifest'> {
  /** The sandbox directory (created); a new temporary one by default. */
  root?: string;
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

/** Makes a sandbox (cli/up/masterless-puppet.ts) whose runs apply `<codedir>/environments/<env>/manifests/site.pp`. */
export function puppetSandbox(opts: PuppetSandboxOptions = {}): PuppetSandbox {
  let root: string;
  if (opts.root) mkdirSync((root = opts.root), { recursive: true });
  else root = mkdtempSync(join(tmpdir(), 'baton-puppet-'));
  const puppet = masterlessPuppet({ ...opts, root, manifest: ManifestTarget.sitePp });
  return { ...puppet, remove: () => rmSync(root, { recursive: true, force: true }) };
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
