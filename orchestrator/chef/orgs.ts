// Chef organizations: which clients (by public key) may sign requests for an organization, which
// nodes belong to it, and what each client may do. Built once from the `chef` config; pure lookups.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, ConfigErrorCode } from '../../lib/config.ts';
import { compileGlobList, type GlobMatcher } from '../../lib/glob.ts';
import { Permission, type Principal } from '../auth.ts';

/** Chef's organization names: lowercase letters, digits, `-` and `_`, at most 255. */
export const ORG_NAME = /^[a-z0-9_-]{1,255}$/;

/** What a signing client may do when its organization does not say (Chef's org members read and run jobs). */
export const DEFAULT_CLIENT_PERMISSIONS: readonly string[] = [Permission.jobsView, Permission.jobsRun, Permission.jobsStop, Permission.inventoryView];

export interface ChefOrgConfig {
  clients: Record<string, string>;
  nodes: readonly string[];
  permissions?: Record<string, readonly string[]>;
}

export interface ChefConfig {
  organizations: Record<string, ChefOrgConfig>;
}

interface Org {
  name: string;
  keys: Map<string, KeyObject>;
  hasNode: GlobMatcher;
  permissions: Record<string, readonly string[]>;
}

/**
 * The organizations. Without a `chef` config every well-formed organization name is served to
 * token holders and holds every node (jobs are still kept apart by organization), and no signed
 * request is accepted, since no client key is known.
 */
export class ChefOrgs {
  private readonly orgs = new Map<string, Org>();

  constructor(private readonly configured: boolean, orgs: Org[]) {
    for (const o of orgs) this.orgs.set(o.name, o);
  }

  static fromConfig(config: ChefConfig | undefined, read: (path: string) => Buffer = readFileSync): ChefOrgs {
    if (!config) return new ChefOrgs(false, []);
    const orgs: Org[] = [];
    for (const [name, o] of Object.entries(config.organizations)) {
      if (!ORG_NAME.test(name)) throw new ConfigError(ConfigErrorCode.invalid, `config key 'chef.organizations': '${name}' is not an organization name (lowercase letters, digits, - and _)`);
      const keys = new Map<string, KeyObject>();
      for (const [client, path] of Object.entries(o.clients)) {
        const where = `config key 'chef.organizations.${name}.clients.${client}'`;
        let pem: Buffer;
        try {
          pem = read(path);
        } catch (cause) {
          throw new ConfigError(ConfigErrorCode.unreadable, `${where}: cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause });
        }
        let key: KeyObject;
        try {
          key = createPublicKey(pem);
        } catch (cause) {
          throw new ConfigError(ConfigErrorCode.invalid, `${where}: ${path} holds no public key in PEM: ${(cause as Error).message}`, { cause });
        }
        if (key.asymmetricKeyType !== 'rsa') throw new ConfigError(ConfigErrorCode.invalid, `${where}: ${path} is a ${key.asymmetricKeyType} key; Chef signs with RSA keys`);
        keys.set(client, key);
      }
      orgs.push({ name, keys, hasNode: compileGlobList(o.nodes), permissions: o.permissions ?? {} });
    }
    return new ChefOrgs(true, orgs);
  }

  /** Whether the organization is served (configured, or any well-formed name without a `chef` config). */
  exists(org: string): boolean {
    return ORG_NAME.test(org) && (!this.configured || this.orgs.has(org));
  }

  /** The public key of a client of the organization, or null when it is not one of its clients. */
  publicKey(org: string, client: string): KeyObject | null {
    return this.orgs.get(org)?.keys.get(client) ?? null;
  }

  /** The principal of a client whose signature verified. */
  clientPrincipal(org: string, client: string): Principal {
    return { login: client, permissions: this.orgs.get(org)?.permissions[client] ?? DEFAULT_CLIENT_PERMISSIONS };
  }

  /** Whether a node belongs to the organization. */
  hasNode(org: string, node: string): boolean {
    if (!this.configured) return true;
    return this.orgs.get(org)?.hasNode(node) ?? false;
  }
}
