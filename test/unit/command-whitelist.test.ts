import { agentEnvironment } from '../../pxp-agent/process-runner.ts';
import { decodeJobFile } from '../../protocol/job-file.ts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../lib/config.ts';
import {
  COMMAND_ARG0,
  compileWhitelist,
  envProblem,
  findPasswdEntry,
  matchCommand,
  resolveRunUser,
  shellArgs,
} from '../../pxp-agent/command-whitelist.ts';

const scratch = mkdtempSync(join(tmpdir(), 'baton-command-unit-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const WHITELIST = {
  'chef-client': 'chef-client',
  '/^echo (.+)$/': 'printf "%s\\n" "$1"',
  '/^copy ([a-z]+) to ([a-z]+)(?: as (root))?$/': 'echo "$1>$2>$3"',
  '/^CHEF-client$/i': 'echo shouting',
  '/^echo exact$/': 'echo from the expression',
  'echo exact': 'echo from the exact key',
};

describe('command-whitelist matching', () => {
  const wl = compileWhitelist(WHITELIST);

  it('an exact key runs its line with no positional parameters', () => {
    const m = matchCommand(wl, 'chef-client');
    assert.deepEqual(m, { key: 'chef-client', line: 'chef-client', captures: [] });
    assert.deepEqual(shellArgs(m!), ['-c', 'chef-client', COMMAND_ARG0]);
  });

  it('an exact key wins over an expression that matches too', () => {
    assert.equal(matchCommand(wl, 'echo exact')?.line, 'echo from the exact key');
  });

  it('a /regex/ key passes its groups as $1..$n, a group that took no part as empty', () => {
    const m = matchCommand(wl, 'copy abc to def');
    assert.deepEqual(m?.captures, ['abc', 'def', '']);
    assert.deepEqual(shellArgs(m!), ['-c', 'echo "$1>$2>$3"', COMMAND_ARG0, 'abc', 'def', '']);
    assert.deepEqual(matchCommand(wl, 'copy a to b as root')?.captures, ['a', 'b', 'root']);
  });

  it('honours flags after the closing slash, and anchors only as written', () => {
    assert.equal(matchCommand(wl, 'chef-CLIENT')?.line, 'echo shouting');
    const unanchored = compileWhitelist({ '/uptime/': 'uptime' });
    assert.equal(matchCommand(unanchored, 'x uptime y')?.line, 'uptime');
  });

  it('matches nothing else: no prefix, no suffix, no NUL', () => {
    assert.equal(matchCommand(wl, 'chef-client --once'), null);
    assert.equal(matchCommand(wl, ' chef-client'), null);
    assert.equal(matchCommand(wl, 'rm -rf /'), null);
    assert.equal(matchCommand(wl, 'echo a\0b'), null);
    assert.equal(matchCommand(compileWhitelist({}), 'chef-client'), null);
  });

  it('a capture with shell syntax reaches the line as data and never runs', () => {
    const marker = join(scratch, 'pwned');
    const m = matchCommand(wl, `echo hi; touch ${marker} $(touch ${marker}) \`touch ${marker}\``)!;
    const res = spawnSync('/bin/sh', shellArgs(m), { encoding: 'utf8' });
    assert.equal(res.stdout, `hi; touch ${marker} $(touch ${marker}) \`touch ${marker}\`\n`);
    assert.equal(existsSync(marker), false);
  });

  it('a key that looks like an expression but is none stops the agent with a config error naming it', () => {
    assert.throws(() => compileWhitelist({ '/^(unclosed$/': 'x' }), (err: unknown) => err instanceof ConfigError && /command-whitelist.*'\/\^\(unclosed\$\/'/.test(err.message));
  });
});

describe('job env rules', () => {
  it('accepts ordinary variables', () => {
    assert.equal(envProblem({ GREETING: 'hi', _x1: '' }, []), null);
  });

  it('refuses CHEF_PUSH_* always, even when listed as overwritable', () => {
    assert.match(envProblem({ CHEF_PUSH_JOB_ID: 'x' }, ['CHEF_PUSH_JOB_ID'])!, /CHEF_PUSH_JOB_ID is set by the agent/);
    assert.match(envProblem({ CHEF_PUSH_ANYTHING: 'x' }, [])!, /CHEF_PUSH_\*/);
  });

  it('refuses protected variables unless allowed-overwritable-env-vars lists them', () => {
    assert.match(envProblem({ PATH: '/tmp' }, [])!, /PATH is protected/);
    assert.equal(envProblem({ PATH: '/tmp' }, ['PATH']), null);
    assert.match(envProblem({ LD_PRELOAD: '/tmp/x.so' }, ['PATH'])!, /LD_PRELOAD is protected/);
    assert.match(envProblem({ BASH_ENV: '/tmp/x' }, [])!, /BASH_ENV is protected/);
  });

  it('refuses the tools\' own hook variables, which would run code inside a whitelisted command', () => {
    for (const k of ['GIT_CONFIG_COUNT', 'GIT_SSH_COMMAND', 'TAR_OPTIONS', 'RSYNC_RSH', 'RUBYOPT', 'PYTHONPATH', 'PERL5OPT', 'NODE_OPTIONS', 'SSH_AUTH_SOCK', 'BASH_FUNC_x%%', 'LD_AUDIT']) {
      const problem = envProblem({ [k]: 'x' }, []);
      assert.ok(problem && /protected|not a valid/.test(problem), `${k}: ${String(problem)}`);
    }
  });

  it('refuses overriding what the agent\'s own environment holds, unless allowed', () => {
    const existing = { HTTP_PROXY: 'http://proxy:3128', GREETING: undefined };
    assert.match(envProblem({ HTTP_PROXY: 'http://evil' }, [], { existing })!, /HTTP_PROXY is already set in the agent's environment/);
    assert.equal(envProblem({ HTTP_PROXY: 'http://other' }, ['HTTP_PROXY'], { existing }), null);
    assert.equal(envProblem({ GREETING: 'hi' }, [], { existing }), null);
  });

  it('with command-env-allowlist, only the names it matches', () => {
    assert.equal(envProblem({ PUSH_TARGET: 'a', PUSH_X: 'b' }, [], { allowlist: ['PUSH_*'] }), null);
    assert.match(envProblem({ GREETING: 'hi' }, [], { allowlist: ['PUSH_*'] })!, /GREETING is not in this node's command-env-allowlist/);
    assert.match(envProblem({ CHEF_PUSH_JOB_ID: 'x' }, [], { allowlist: ['*'] })!, /set by the agent/);
  });

  it('refuses invalid names and NUL in values', () => {
    assert.match(envProblem({ '1X': 'a' }, [])!, /'1X' is not a valid environment variable name/);
    assert.match(envProblem({ 'A=B': 'a' }, [])!, /not a valid/);
    assert.match(envProblem({ A: 'a\0b' }, [])!, /NUL/);
  });

  it('the agent environment loses BATON_* settings and keeps the rest', () => {
    assert.deepEqual(agentEnvironment({ BATON_SSL_KEY: '/k', HOME: '/root', LANG: undefined }), { HOME: '/root' });
  });
});

describe('job file decoding', () => {
  it('raw: is the text as UTF-8', () => {
    assert.deepEqual(decodeJobFile('raw:héllo\n'), { content: Buffer.from('héllo\n') });
    assert.deepEqual(decodeJobFile('raw:'), { content: Buffer.alloc(0) });
  });

  it('base64: is decoded, line breaks ignored', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255, 10]);
    assert.deepEqual(decodeJobFile(`base64:${bytes.toString('base64')}`), { content: bytes });
    assert.deepEqual(decodeJobFile('base64:aGVs\nbG8='), { content: Buffer.from('hello') });
  });

  it('refuses other prefixes and invalid base64', () => {
    assert.match((decodeJobFile('hello') as { problem: string }).problem, /must start with raw: or base64:/);
    assert.match((decodeJobFile('text:hello') as { problem: string }).problem, /must start with raw: or base64:/);
    for (const bad of ['base64:abc', 'base64:ab!d', 'base64:a===', 'base64:ab=c']) {
      assert.match((decodeJobFile(bad) as { problem: string }).problem, /not valid base64/, bad);
    }
  });
});

describe('run user', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nbad:x:zz:1::/:/bin/sh\n';
  const root = { name: 'root', uid: 0, gid: 0, home: '/root' };
  const alice = { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice' };

  it('reads /etc/passwd lines', () => {
    assert.deepEqual(findPasswdEntry(passwd, 'nobody'), { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent' });
    assert.equal(findPasswdEntry(passwd, 'nobod'), null);
    assert.equal(findPasswdEntry(passwd, 'bad'), null);
  });

  it('no user, or the agent\'s own, runs as the agent', () => {
    assert.deepEqual(resolveRunUser(undefined, alice, () => passwd), { ...alice, switched: false });
    assert.deepEqual(resolveRunUser('alice', alice, () => passwd), { ...alice, switched: false });
  });

  it('an agent running as root switches to a user of passwd, and refuses an unknown one', () => {
    assert.deepEqual(resolveRunUser('nobody', root, () => passwd), { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent', switched: true });
    assert.match(resolveRunUser('ghost', root, () => passwd) as string, /there is no user 'ghost'/);
  });

  it('an agent not running as root refuses any other user, without reading passwd', () => {
    const res = resolveRunUser('nobody', alice, () => assert.fail('passwd was read'));
    assert.match(res as string, /the agent runs as alice, not as root, so it cannot run commands as nobody/);
  });
});
