// The files of a local fleet (`baton up`): the dev CA and certificates, a copy of the sample code, the admin
// token, and each program's JSON config. Made once and reused; configs are written on every start
// (ports may change).
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { projectPath } from '../../lib/paths.ts';
import { tokenFilePath } from '../client.ts';
import { masterlessPuppet, type PuppetAgentConfig } from './masterless-puppet.ts';

export const LOCAL_ALT_NAMES = ['localhost', '127.0.0.1'];
/** The Chef face's organization of a local fleet (holding every node) and its client. */
export const CHEF_ORG = 'baton';
export const CHEF_CLIENT_NAME = 'baton-admin';
export const CHEF_KEY_BITS = 2048;
export const TOKEN_BYTES = 24;

/** Commands the local agents run for `baton push run` (exact, or /regex/ whose groups become $1..$n). */
export const SAMPLE_COMMAND_WHITELIST: Record<string, string> = {
  uptime: 'uptime',
  hostname: 'hostname',
  date: 'date',
  '/^echo (.+)$/': 'echo "$1"',
  '/^sleep ([0-9]{1,3})$/': 'sleep "$1"',
  false: 'false',
};

/** The sample code (environments/production/modules/sample/tasks), shipped beside this file. */
export const sampleCodeDir = (): string => projectPath('cli', 'up', 'sample-code');
const SAMPLE_TASKS_DIR = ['environments', 'production', 'modules', 'sample', 'tasks'];

export interface FleetPaths {
  root: string;
  pki: string;
  code: string;
  redis: string;
  /** The Puppet server's dirs (`baton up --puppetserver`). */
  puppetserver: string;
  logs: string;
  brokerConfig: string;
  orchestratorConfig: string;
  tokensFile: string;
  /** The Chef client of organization `baton`: its private key (for knife) and public key (for the orchestrator). */
  chefClient: { name: string; key: string; publicKey: string };
  agent(name: string): { dir: string; config: string; spool: string; cache: string; puppet: string };
}

export function fleetPaths(root: string): FleetPaths {
  return {
    root,
    pki: join(root, 'pki'),
    code: join(root, 'code'),
    redis: join(root, 'redis'),
    puppetserver: join(root, 'puppetserver'),
    logs: join(root, 'logs'),
    brokerConfig: join(root, 'broker', 'broker.json'),
    orchestratorConfig: join(root, 'orchestrator', 'orchestrator.json'),
    tokensFile: join(root, 'orchestrator', 'tokens.json'),
    chefClient: { name: CHEF_CLIENT_NAME, key: join(root, 'chef', `${CHEF_CLIENT_NAME}.pem`), publicKey: join(root, 'chef', `${CHEF_CLIENT_NAME}.pub.pem`) },
    agent: (name) => {
      const dir = join(root, 'agents', name);
      return { dir, config: join(dir, 'agent.json'), spool: join(dir, 'spool'), cache: join(dir, 'cache'), puppet: join(dir, 'puppet') };
    },
  };
}

/** How the local agents run Puppet (`baton up --puppet`). */
export const PuppetMode = {
  /** Masterless: `puppet apply` of the fleet's codedir, with private Puppet dirs per agent (the default). */
  apply: 'apply',
  /** `puppet agent --onetime` with the machine's own Puppet settings and Puppet server. */
  agent: 'agent',
} as const;
export type PuppetMode = (typeof PuppetMode)[keyof typeof PuppetMode];
export const PUPPET_MODES: readonly PuppetMode[] = Object.values(PuppetMode);

/**
 * The Puppet keys of a local agent's config: in `apply` mode, its own Puppet dirs in `puppetDir`
 * (made here) and the fleet's codedir; in `agent` mode none (the agent's defaults: `puppet agent`).
 */
export function agentPuppetConfig(mode: PuppetMode, puppetDir: string, codedir: string, certname: string): Partial<PuppetAgentConfig> {
  if (mode === PuppetMode.agent) return {};
  return masterlessPuppet({ root: puppetDir, codedir, certname }).config;
}

export const agentNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `agent${i + 1}.local`);

/** Whether a certificate file lists every one of `names` as a subject alternative name. */
function hasAltNames(certFile: string, names: string[]): boolean {
  try {
    const san = new X509Certificate(readFileSync(certFile)).subjectAltName ?? '';
    return names.every((n) => san.includes(n));
  } catch {
    return false;
  }
}

/** The dev CA (made once) and a certificate for each name that lacks one. */
export async function ensurePki(dir: string, servers: string[], clients: string[]): Promise<void> {
  const { initCa, issueCert, pkiPaths } = await import('../../lib/pki.ts');
  const paths = pkiPaths(dir);
  if (!existsSync(paths.caCert)) await initCa(dir, { commonName: 'Baton dev CA' });
  for (const name of servers) {
    // Servers are reached as 127.0.0.1: an older certificate without that name is made again.
    if (!existsSync(paths.cert(name)) || !hasAltNames(paths.cert(name), LOCAL_ALT_NAMES)) await issueCert(dir, name, { altNames: LOCAL_ALT_NAMES, force: true });
  }
  for (const name of clients) if (!existsSync(paths.cert(name))) await issueCert(dir, name);
}

/** A copy of the sample code (tasks sample::echo, check, sleep, fail; plan sample::check_and_preview); files there already are kept. */
export function ensureSampleCode(codedir: string): void {
  cpSync(sampleCodeDir(), codedir, { recursive: true, force: false, errorOnExist: false });
}

/** The tasks of the sample module, as `sample::name`. */
export function sampleTaskNames(codedir: string): string[] {
  try {
    return readdirSync(join(codedir, ...SAMPLE_TASKS_DIR)).filter((f) => f.endsWith('.json')).map((f) => `sample::${f.slice(0, -5)}`).sort();
  } catch {
    return []; // the sample module was removed
  }
}

/** Permission bits a token file may have: the owner's read and write, nothing for anyone else. */
export const TOKEN_FILE_MODE = 0o600;

/**
 * The admin token in ~/.baton/token (0600): made once, random. A token file that others could read
 * or write (mode looser than 0600) is made 0600; `tightenedFrom` is then its old mode.
 */
export function ensureToken(): { token: string; file: string; tightenedFrom?: number } {
  const file = tokenFilePath();
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 16) {
      const mode = statSync(file).mode & 0o777;
      if ((mode & ~TOKEN_FILE_MODE) === 0) return { token, file };
      chmodSync(file, TOKEN_FILE_MODE);
      return { token, file, tightenedFrom: mode };
    }
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const token = randomBytes(TOKEN_BYTES).toString('hex');
  writeFileSync(file, `${token}\n`, { mode: TOKEN_FILE_MODE });
  chmodSync(file, TOKEN_FILE_MODE);
  return { token, file };
}

export function writeJson(path: string, value: unknown, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`, { mode });
  chmodSync(path, mode);
}

/**
 * The Chef client's RSA key pair (made once): the private key 0600 for knife-style tools, the
 * public key for the orchestrator's `chef` config.
 */
export function ensureChefClient(client: FleetPaths['chefClient']): void {
  if (existsSync(client.key) && existsSync(client.publicKey)) return;
  mkdirSync(dirname(client.key), { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: CHEF_KEY_BITS });
  writeFileSync(client.key, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  chmodSync(client.key, 0o600);
  writeFileSync(client.publicKey, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
}

/** The orchestrator's `chef` config of a local fleet: organization `baton`, every node, one client. */
export function fleetChefConfig(client: FleetPaths['chefClient']): { organizations: Record<string, { clients: Record<string, string>; nodes: string[] }> } {
  return { organizations: { [CHEF_ORG]: { clients: { [client.name]: client.publicKey }, nodes: ['*'] } } };
}
