import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { durationMs } from '../../lib/duration.ts';
import { backoffDelayMs } from '../../protocol/client/backoff.ts';
import { PcpClientError, sessionUrl } from '../../protocol/client/broker-uri.ts';
import { selectExecutable, taskEnvironment } from '../../pxp-agent/modules/task.ts';
import { readCapped, startProcess } from '../../pxp-agent/process-runner.ts';
import { Spool, type TransactionMetadata } from '../../pxp-agent/spool.ts';
import { Transactions } from '../../pxp-agent/transactions.ts';
import { safeRelativePath, TaskCache, taskFileUrl } from '../../pxp-agent/task-cache.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'baton-agent-unit-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('reconnection backoff', () => {
  const opts = { initialMs: 2_000, maxMs: 30_000, jitter: 0.5 };
  it('doubles from about 2 s up to a 30 s cap, with jitter below the nominal delay', () => {
    assert.equal(backoffDelayMs(0, opts, () => 0), 2_000);
    assert.equal(backoffDelayMs(1, opts, () => 0), 4_000);
    assert.equal(backoffDelayMs(3, opts, () => 0), 16_000);
    assert.equal(backoffDelayMs(4, opts, () => 0), 30_000);
    assert.equal(backoffDelayMs(100, opts, () => 0), 30_000);
    assert.equal(backoffDelayMs(0, opts, () => 1), 1_000);
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelayMs(2, opts)));
    assert.ok(seen.size > 10, 'jittered');
    for (const d of seen) assert.ok(d >= 4_000 && d <= 8_000);
  });
});

describe('broker URIs', () => {
  it('completes pxp-agent style URIs with the client type', () => {
    assert.equal(sessionUrl('wss://b:8142/pcp2/', 'agent'), 'wss://b:8142/pcp2/agent');
    assert.equal(sessionUrl('wss://b:8142/pcp2', 'controller'), 'wss://b:8142/pcp2/controller');
    assert.equal(sessionUrl('wss://b:8142', 'agent'), 'wss://b:8142/pcp2/agent');
    assert.equal(sessionUrl('wss://b:8142/pcp/v2.0/', 'agent'), 'wss://b:8142/pcp/v2.0/agent');
    assert.equal(sessionUrl('wss://b:8142/pcp2/web', 'agent'), 'wss://b:8142/pcp2/web');
  });
  it('refuses plain ws, v1 endpoints and garbage', () => {
    for (const bad of ['ws://b:8142/pcp2/', 'wss://b:8142/pcp/', 'not a url']) {
      assert.throws(() => sessionUrl(bad, 'agent'), PcpClientError, bad);
    }
  });
});

describe('durations', () => {
  it('reads 14d, 12h, 30m and 45s, and names the key otherwise', () => {
    assert.equal(durationMs('14d', 'k'), 14 * 86_400_000);
    assert.equal(durationMs('45s', 'k'), 45_000);
    assert.throws(() => durationMs('2 weeks', 'spool-dir-purge-ttl'), /config key 'spool-dir-purge-ttl' must be a duration/);
  });
});

describe('task files', () => {
  it('accepts relative names inside the task and refuses escapes', () => {
    assert.equal(safeRelativePath('init.sh'), 'init.sh');
    assert.equal(safeRelativePath('mymod/files/lib.rb'), 'mymod/files/lib.rb');
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a\\..\\b', '.', 'x\0y']) assert.throws(() => safeRelativePath(bad), /relative path/, bad);
  });

  it('builds URLs on the master only', () => {
    assert.equal(
      taskFileUrl('https://puppet:8140', { path: '/puppet/v3/file_content/tasks/m/init.sh', params: { environment: 'production' } }).toString(),
      'https://puppet:8140/puppet/v3/file_content/tasks/m/init.sh?environment=production',
    );
    assert.equal(taskFileUrl('https://o:8143/base/', { path: '/f' }).toString(), 'https://o:8143/base/f');
    for (const path of ['//evil/x', 'https://evil/x', 'relative/x', '/\\evil']) {
      assert.throws(() => taskFileUrl('https://puppet:8140', { path }), /downloads only come from master-uris/, path);
    }
  });

  it('PT_ variables carry strings as they are and everything else as JSON', () => {
    assert.deepEqual(taskEnvironment({ a: 's', b: 1, c: [1], d: { e: true }, _task: 'm::t' }), {
      PT_a: 's', PT_b: '1', PT_c: '[1]', PT_d: '{"e":true}', PT__task: 'm::t',
    });
  });

  it('selects the first implementation whose requirements the agent meets', () => {
    const files = [{ filename: 'x.ps1' }, { filename: 'x.sh' }].map((f) => ({ ...f, uri: { path: '/' }, sha256: '0'.repeat(64), size_bytes: 1 }));
    const base = { task: 'm::x', input: {}, files };
    assert.equal(selectExecutable(base).file.filename, 'x.ps1', 'no metadata: the first file');
    const meta = { implementations: [{ name: 'x.ps1', requirements: ['powershell'] }, { name: 'x.sh', requirements: ['shell'] }] };
    assert.equal(selectExecutable({ ...base, metadata: meta }).file.filename, 'x.sh');
    assert.throws(() => selectExecutable({ ...base, metadata: { implementations: [{ name: 'x.ps1', requirements: ['powershell'] }] } }), /no implementation of task m::x fits this agent/);
  });

  it('purges cached files unused for longer than the TTL', () => {
    const dir = tmp();
    const cache = new TaskCache(dir, [], { ca: Buffer.alloc(0), cert: Buffer.alloc(0), key: Buffer.alloc(0) }, pino({ level: 'silent' }));
    for (const [sha, ageMs] of [['a'.repeat(64), 20 * 86_400_000], ['b'.repeat(64), 1_000]] as const) {
      mkdirSync(join(dir, sha));
      writeFileSync(join(dir, sha, 't.sh'), 'x');
      const when = new Date(Date.now() - ageMs);
      utimesSync(join(dir, sha, 't.sh'), when, when);
    }
    assert.equal(cache.purge(14 * 86_400_000), 1);
    assert.ok(!existsSync(join(dir, 'a'.repeat(64))));
    assert.ok(existsSync(join(dir, 'b'.repeat(64))));
  });
});

describe('spool', () => {
  const meta = (id: string, over: Partial<TransactionMetadata> = {}): TransactionMetadata => ({
    transaction_id: id, request_id: 'r', requester: 'pcp://c/controller', module: 'task', action: 'run', blocking: false,
    notify_outcome: true, kind: 'process', status: 'running', started_at: '', started_ms: Date.now(), results_sent: false, ...over,
  });

  it('creates a transaction exactly once and replaces metadata atomically', () => {
    const spool = new Spool(tmp());
    assert.equal(spool.create(meta('t1')), true);
    assert.equal(spool.create(meta('t1')), false, 'a second create of the same id loses');
    spool.update('t1', { status: 'success', results: { exitcode: 0 } });
    assert.equal(spool.read('t1')?.status, 'success');
    assert.equal(existsSync(`${spool.files('t1').metadata}.tmp`), false);
    assert.equal(spool.read('missing'), null);
  });

  it('reads an interrupted metadata write as the previous complete version', () => {
    const spool = new Spool(tmp());
    spool.create(meta('t2'));
    writeFileSync(`${spool.files('t2').metadata}.tmp`, '{"transaction_id":"t2","sta'); // a crash mid-write
    assert.equal(spool.read('t2')?.status, 'running');
  });

  it('purges ended transactions after the TTL, never running ones', () => {
    const spool = new Spool(tmp());
    const old = Date.now() - 20 * 86_400_000;
    spool.create(meta('old-done', { status: 'success', started_ms: old, completed_ms: old }));
    spool.create(meta('old-running', { started_ms: old }));
    spool.create(meta('new-done', { status: 'failure', completed_ms: Date.now() }));
    assert.equal(spool.purge(14 * 86_400_000), 1);
    assert.deepEqual(spool.list().map((m) => m.transaction_id).sort(), ['new-done', 'old-running']);
  });

  it('after a crash, forgets what never started and keeps what may have run', () => {
    const spool = new Spool(tmp());
    mkdirSync(spool.files('debris').dir); // died between creating the directory and its metadata
    spool.create(meta('accepted')); // died while preparing: no output files, no pid
    spool.create(meta('spawning'));
    writeFileSync(spool.files('spawning').stdout, ''); // died right after opening its output, before it started the process
    spool.create(meta('wrote'));
    writeFileSync(spool.files('wrote').stdout, 'partial output\n'); // no pid recorded, but it ran and wrote
    const transactions = new Transactions(spool, pino({ level: 'silent' }));
    const ended: string[] = [];
    transactions.on('completed', (m) => ended.push(`${m.transaction_id}:${m.status}`));
    transactions.reattach();
    assert.equal(spool.exists('debris'), false);
    assert.equal(spool.exists('accepted'), false, 'sent again, it will run once');
    assert.equal(spool.exists('spawning'), false, 'no wrapper, no exit code, no output since boot: it never ran, and is sent again');
    assert.deepEqual(ended, ['wrote:failure'], 'what wrote output is never run again: reported as died with the agent');
    assert.match(spool.read('wrote')!.error!, /died with the agent/);
  });

  it('after a crash, re-attaches to a process whose pid it never recorded, found by its wrapper', async () => {
    const spool = new Spool(tmp());
    spool.create(meta('unrecorded'));
    const files = spool.files('unrecorded');
    const child = startProcess({ command: '/bin/sh', args: ['-c', 'sleep 0.5; echo done'], env: { PATH: process.env.PATH ?? '' } }, files);
    child.unref();
    const transactions = new Transactions(spool, pino({ level: 'silent' }));
    const completed = new Promise<TransactionMetadata>((resolve) => transactions.once('completed', resolve));
    transactions.reattach();
    assert.equal(spool.read('unrecorded')!.pid, child.pid, 'the pid found by its command line is recorded');
    const m = await completed;
    assert.equal(m.status, 'success');
    assert.equal(readFileSync(files.stdout, 'utf8'), 'done\n');
  });

  it('reads at most the cap of an output file, decoding invalid UTF-8 to U+FFFD', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'out'), Buffer.from([0x61, 0xff, 0x62, 0x63, 0x64]));
    assert.deepEqual(readCapped(join(dir, 'out'), 3), { text: 'a\uFFFDb', truncated: true, bytes: 5 });
    assert.deepEqual(readCapped(join(dir, 'none'), 3), { text: '', truncated: false, bytes: 0 });
    assert.equal(readFileSync(join(dir, 'out')).length, 5);
  });
});
