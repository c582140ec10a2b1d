// compose.yaml and the Dockerfile, checked without a Docker engine: Compose's own validation
// (`docker compose config`, or Debian's docker-compose, which .ci/run installs), the structure,
// every BATON_* variable against the program's config schema, and `$` interpolation.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { envName } from '../../lib/config.ts';
import { agentConfigSchema } from '../../schemas/agent-config.ts';
import { brokerConfigSchema } from '../../schemas/broker-config.ts';
import { orchestratorConfigSchema } from '../../schemas/orchestrator-config.ts';

const root = new URL('../../', import.meta.url);
const text = readFileSync(new URL('compose.yaml', root), 'utf8');

interface Service {
  build?: string;
  image?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  user?: string;
}

const compose = parse(text, { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const schemaOf: Record<string, { properties: Record<string, unknown>; required: readonly string[] }> = { broker: brokerConfigSchema, orchestrator: orchestratorConfigSchema, agent: agentConfigSchema };

/** `docker compose` when the plugin is there, else Debian's `docker-compose`. */
function composeCommand(): string[] {
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    return ['docker', 'compose'];
  } catch {
    return ['docker-compose'];
  }
}

describe('compose.yaml', () => {
  it('is valid for compose config', () => {
    const [cmd, ...args] = composeCommand();
    const out = execFileSync(cmd!, [...args, '-f', 'compose.yaml', 'config', '-q'], { cwd: new URL('.', root).pathname, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(out.trim(), '');
  });

  it('has Redis with an append-only volume, a one-shot pki, a broker, the orchestrator and three agents', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['agent1', 'agent2', 'agent3', 'broker', 'orchestrator', 'pki', 'redis']);
    const redis = compose.services.redis!;
    assert.ok(redis.command!.includes('--appendonly') && redis.command!.includes('yes'));
    assert.ok(redis.volumes!.some((v) => v.endsWith(':/data')));
    for (const [name, s] of Object.entries(compose.services)) {
      if (name === 'redis') continue;
      assert.equal(s.build, '.', `${name} is built from the one Dockerfile`);
      assert.equal(s.image, 'baton:local');
      for (const v of s.volumes ?? []) assert.ok(v.split(':')[0]! in compose.volumes, `${name}: volume ${v} is declared`);
      for (const dep of Object.keys(s.depends_on ?? {})) assert.ok(dep in compose.services, `${name} depends on ${dep}`);
    }
    assert.match(compose.services.pki!.command!.join('\n'), /baton pki init --dir \/pki/);
    for (const n of ['broker', 'orchestrator', 'agent1.local', 'agent2.local', 'agent3.local']) assert.match(compose.services.pki!.command!.join('\n'), new RegExp(n.replaceAll('.', '\\.')));
    assert.equal(compose.services.orchestrator!.depends_on!.pki!.condition, 'service_completed_successfully');
    assert.equal(compose.services.orchestrator!.depends_on!.redis!.condition, 'service_healthy');
  });

  describe('secrets: each service sees only its own key, no service but pki the CA key', () => {
    /** A service's volume mounts: volume name, mount point, read-only. Bind mounts are none here. */
    const mounts = (s: Service) =>
      (s.volumes ?? []).map((v) => {
        const [volume, target, mode] = v.split(':');
        return { volume: volume!, target: target!, readOnly: mode === 'ro' };
      });
    const pkiScript = compose.services.pki!.command!.join('\n');
    const pkiMounts = mounts(compose.services.pki!);
    /** `share VOLUME NAME` lines of the pki script: NAME's certificate and key go to /export/VOLUME. */
    const shares = new Map([...pkiScript.matchAll(/^\s*share (\S+) (\S+)$/gm)].map((m) => [`/export/${m[1]}`, m[2]!]));
    const programs = Object.entries(compose.services).filter(([name]) => name !== 'pki' && name !== 'redis');
    const secretVolumes = new Set(pkiMounts.map((m) => m.volume));

    it('the CA, its key included, is in a volume only the pki service mounts, where the CA is made', () => {
      const ca = pkiMounts.find((m) => m.target === '/pki')!;
      assert.ok(ca, 'the pki service mounts its CA volume on /pki');
      assert.match(pkiScript, /baton pki init --dir \/pki /);
      for (const [name, s] of Object.entries(compose.services)) if (name !== 'pki') assert.ok(!mounts(s).some((m) => m.volume === ca.volume), `${name} does not mount ${ca.volume}`);
    });

    it('every program mounts one secrets volume, its own, read-only, which no other program mounts', () => {
      const owner = new Map<string, string>();
      for (const [name, s] of programs) {
        const secrets = mounts(s).filter((m) => secretVolumes.has(m.volume));
        assert.equal(secrets.length, 1, `${name} mounts exactly one volume the pki service fills`);
        const [own] = secrets;
        assert.ok(own!.readOnly, `${name} mounts ${own!.volume} read-only`);
        assert.ok(!owner.has(own!.volume), `${own!.volume} is ${name}'s, not also ${owner.get(own!.volume)}'s`);
        owner.set(own!.volume, name);
      }
    });

    it("the pki service puts in a program's volume the CA certificate and that program's certificate and key, and the program's BATON_* paths point there", () => {
      for (const [name, s] of programs) {
        const own = mounts(s).find((m) => secretVolumes.has(m.volume))!;
        const exported = pkiMounts.find((m) => m.volume === own.volume)!;
        const cn = shares.get(exported.target);
        assert.ok(cn, `the pki script shares a certificate into ${exported.target} (${own.volume})`);
        const env = s.environment ?? {};
        assert.equal(env.BATON_SSL_CERT, `${own.target}/certs/${cn}.pem`, `${name}: its certificate`);
        assert.equal(env.BATON_SSL_KEY, `${own.target}/private_keys/${cn}.pem`, `${name}: its key, and no other`);
        assert.equal(env.BATON_SSL_CA_CERT, `${own.target}/certs/ca.pem`, `${name}: the CA certificate`);
        if (env.BATON_TOKENS_FILE) assert.equal(env.BATON_TOKENS_FILE, `${own.target}/tokens.json`);
      }
      // each key is shared once, into one volume
      assert.equal(new Set(shares.values()).size, shares.size);
      assert.match(pkiScript, /install [^\n]*-m 0600 \/pki\/private_keys\/\$\$2\.pem \$\$d\/private_keys\/\$\$2\.pem/, 'a key is copied as it is named, mode 0600');
      const keySources = pkiScript.split('\n').filter((l) => l.includes('/pki/private_keys/') || l.includes('ca_key'));
      assert.equal(keySources.length, 1, `no other key is copied: ${keySources.join(' | ')}`);
    });

    it('only the orchestrator gets the tokens', () => {
      const orchestrator = mounts(compose.services.orchestrator!).find((m) => secretVolumes.has(m.volume))!;
      const exported = pkiMounts.find((m) => m.volume === orchestrator.volume)!.target;
      const tokenCopies = pkiScript.split('\n').filter((l) => /tokens\.json|admin-token/.test(l) && /^\s*(install|cp) /.test(l));
      assert.deepEqual(tokenCopies.map((l) => l.trim().split(/\s+/).at(-1)!.replace(/\/$/, '')), [exported]);
      for (const [name, s] of programs) if (name !== 'orchestrator') assert.ok(!('BATON_TOKENS_FILE' in (s.environment ?? {})), name);
    });

    it('the pki service runs as root to give the files to node (uid 1000), as whom the programs run', () => {
      assert.equal(compose.services.pki!.user, '0:0');
      for (const [name, s] of programs) assert.equal(s.user, undefined, `${name} runs as the image's user`);
      assert.match(readFileSync(new URL('Dockerfile', root), 'utf8'), /^USER node$/m);
    });
  });

  it('configures each program with BATON_* variables that name its config keys, required ones included', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      const program = s.command?.[0];
      if (!program || !(program in schemaOf)) continue;
      const schema = schemaOf[program]!;
      const known = new Map(Object.keys(schema.properties).map((k) => [envName(k), k]));
      const env = s.environment ?? {};
      for (const v of Object.keys(env)) assert.ok(known.has(v), `${name}: ${v} is not a ${program} config key`);
      for (const key of schema.required) assert.ok(envName(key) in env, `${name}: ${program} needs ${key} (${envName(key)})`);
    }
    const whitelist = JSON.parse(compose.services.agent1!.environment!.BATON_COMMAND_WHITELIST!.replaceAll('$$', '$')) as Record<string, string>;
    assert.equal(whitelist['/^echo (.+)$/'], 'echo "$1"');
  });

  it('writes every literal $ as $$ (compose interpolates the others)', () => {
    const yamlText = text.replace(/^\s*#.*$/gm, ''); // comments are not interpolated
    const bad = [...yamlText.matchAll(/\$(?!\$|\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\})/g)].filter((m) => yamlText[m.index - 1] !== '$');
    assert.deepEqual(bad.map((m) => yamlText.slice(m.index - 10, m.index + 10)), []);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');

  it('builds on node:20-bookworm-slim with npm ci and the build, and runs bin/baton.mjs', () => {
    assert.match(dockerfile, /^FROM node:20-bookworm-slim$/m);
    assert.match(dockerfile, /npm ci /);
    assert.match(dockerfile, /npm run build/);
    assert.match(dockerfile, /^ENTRYPOINT \["node", "\/opt\/baton\/bin\/baton\.mjs"\]$/m);
  });
});
