// API tokens: a JSON file of {token, login, permissions}. Permissions: jobs:view, jobs:run,
// jobs:stop, tasks:view, tasks:run:<task glob>, inventory:view, or * for everything.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FromSchema } from 'json-schema-to-ts';
import { ConfigError, ConfigErrorCode } from '../lib/config.ts';
import { compileGlob } from '../lib/glob.ts';
import { compile, describeErrors } from '../protocol/validate.ts';
import { tokensFileSchema } from '../schemas/orchestrator-api.ts';

export type TokensFile = FromSchema<typeof tokensFileSchema>;

export const Permission = {
  jobsView: 'jobs:view',
  jobsRun: 'jobs:run',
  jobsStop: 'jobs:stop',
  tasksView: 'tasks:view',
  inventoryView: 'inventory:view',
} as const;

export interface Principal {
  login: string;
  permissions: readonly string[];
}

const validateTokens = compile<TokensFile>(tokensFileSchema);

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class TokenStore {
  private readonly byDigest = new Map<string, Principal & { digest: Buffer }>();

  constructor(entries: TokensFile) {
    for (const e of entries) {
      const d = digest(e.token);
      this.byDigest.set(d.toString('hex'), { login: e.login, permissions: e.permissions, digest: d });
    }
  }

  static fromFile(path: string): TokenStore {
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (cause) {
      throw new ConfigError(ConfigErrorCode.unreadable, `config key 'tokens-file': cannot read ${path}: ${(cause as Error).message}`, { cause });
    }
    if (!validateTokens(value)) throw new ConfigError(ConfigErrorCode.invalid, `config key 'tokens-file': ${describeErrors(validateTokens.errors, path)}`);
    return new TokenStore(value);
  }

  /** The principal of a token, or null. */
  authenticate(token: string | undefined): Principal | null {
    if (!token) return null;
    const d = digest(token);
    const found = this.byDigest.get(d.toString('hex'));
    return found && timingSafeEqual(found.digest, d) ? { login: found.login, permissions: found.permissions } : null;
  }
}

/** Whether a principal holds a permission; `tasks:run:<glob>` patterns match task names. */
export function permits(p: Principal, permission: string): boolean {
  return p.permissions.some((granted) => granted === '*' || granted === permission || (granted.includes('*') && compileGlob(granted)(permission)));
}
