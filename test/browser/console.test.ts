// The web console in a real browser (Debian's chromium, driven by playwright-core) against a real
// fleet: Redis, broker, orchestrator and two agents over TLS. Every wait is for a DOM state or a
// log line; each page's screenshot goes to a folder printed as `# screenshots: DIR`.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ADMIN_TOKEN, startOrchestratorProcess, stopStack, VIEWER_TOKEN, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { skipUnlessInstalled } from '../helpers/packages.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { chromiumMissing, copyReadmeShots, launchChromium, makeConsoleCodedir, newPage, pathOf, screenshotDir, SESSION_TOKEN, signIn, storedToken, writeConsoleTokens, XSS_PAYLOAD } from './console-helpers.ts';

const NODES = ['node1', 'node2'];
const README_SHOTS = ['jobs.png', 'job.png', 'run.png', 'fleet.png'] as const;
const EXPIRED_MESSAGE = 'Your session ended: the token is no longer valid. Sign in again.';
const JOB_URL = /\/console\/jobs\/([^/?#]+)$/;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const skip = skipUnlessInstalled(chromiumMissing());

describe('web console in a browser', { skip }, () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let orch: OrchestratorProcess | undefined;
  const agents: AgentProcess[] = [];
  let browser: Browser | undefined;
  let codedir: string;
  let tokensFile: string;
  let brokerUri: string;
  let shots: string;
  let base: string;

  const startOrch = async (port?: number) => {
    orch = await startOrchestratorProcess({
      pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, ...(port ? { port } : {}),
      config: { 'tokens-file': tokensFile, 'node-reconnect-grace': 2 },
    });
    return orch;
  };
  const api = (path: string, body?: unknown) => orch!.api(path, body === undefined ? {} : { body });
  const submitTask = async (body: Json): Promise<string> => {
    const res = await api('/orchestrator/v1/command/task', body);
    assert.equal(res.status, 202, res.text);
    return res.json.job.name as string;
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(shots, name), fullPage: true });
  const admin = async () => {
    const p = await newPage(browser!);
    await signIn(p.page, base, ADMIN_TOKEN);
    return p;
  };

  before(async () => {
    shots = screenshotDir();
    pki = await makePki(NODES);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, logLevel: 'info' });
    brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    codedir = makeConsoleCodedir();
    tokensFile = writeConsoleTokens(join(mkdtempSync(join(tmpdir(), 'baton-console-tokens-')), 'tokens.json'));
    await startOrch();
    base = orch!.url('');
    for (const name of NODES) agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [base] }));
    await waitForConnected(orch!, NODES.length);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await stopStack({ agents, orch, broker, redis, pki });
    // BATON_CONSOLE_README_SHOTS=1 refreshes the README's screenshots; otherwise the tree is left as it was.
    if (shots && process.env.BATON_CONSOLE_README_SHOTS === '1') process.stdout.write(`screenshots copied to docs/console/: ${copyReadmeShots(shots, README_SHOTS).join(', ') || 'none'}\n`);
  });

  it('refuses a wrong token at sign-in with the API message, and signs in with a good one', async () => {
    const { context, page } = await newPage(browser!);
    try {
      await page.goto(`${base}/console/`);
      await page.waitForURL(/\/console\/signin/);
      await page.getByTestId('signin-token').fill('not-a-token-at-all');
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('signin-error').filter({ hasText: 'the token is not valid' }).waitFor();
      await shot(page, 'signin.png');
      assert.equal(await storedToken(page), null);
      await page.getByTestId('signin-token').fill(ADMIN_TOKEN);
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('whoami').filter({ hasText: 'admin' }).waitFor();
      assert.equal(await storedToken(page), ADMIN_TOKEN);
      await page.goto(`${base}/console/jobs`); // a reload keeps the session
      await page.getByTestId('whoami').filter({ hasText: 'admin' }).waitFor();
    } finally {
      await context.close();
    }
  });

  it('runs a task from the form with a typed parameter; the node bar reaches all finished without a reload', async () => {
    const { context, page } = await admin();
    try {
      await page.getByTestId('nav-run').click();
      await page.waitForURL(/\/console\/run/);
      await page.getByTestId('run-task').selectOption('sample::typed');
      const count = page.getByTestId('param-count');
      await count.fill('3');
      await page.getByTestId('run-target-kind').selectOption('nodes');
      await page.getByTestId('run-target-nodes').fill(NODES.join(', '));
      await shot(page, 'run.png');
      await page.getByTestId('run-submit').click();
      await page.waitForURL(JOB_URL);
      const id = JOB_URL.exec(page.url())![1]!;
      await page.evaluate(() => ((globalThis as Json).__samePage = true));
      await page.getByTestId('job-state').filter({ hasText: /^\s*finished\s*$/ }).waitFor();
      await page.getByTestId('job-bar-label').filter({ hasText: '2 finished' }).waitFor();
      const segments = await page.getByTestId('job-bar-segment').evaluateAll((els) => els.map((e) => [e.getAttribute('data-state'), e.getAttribute('data-count')]));
      assert.deepEqual(segments.filter(([, n]) => n !== '0'), [['finished', '2']]);
      assert.equal(await page.evaluate(() => (globalThis as Json).__samePage), true, 'the page was not reloaded');
      assert.equal(await page.locator('[data-testid=node-row][data-state=finished]').count(), 2);
      await page.locator('[data-testid=node-row][data-node=node1]').getByTestId('node-summary').filter({ hasText: 'count 3' }).waitFor();
      await shot(page, 'job.png');
      const job = (await api(`/orchestrator/v1/jobs/${id}`)).json;
      assert.equal(job.options.params.count, 3, 'the parameter went as an Integer');
      await page.getByTestId('nav-jobs').click();
      await page.locator(`[data-testid=jobs-row][data-job="${id}"][data-state=finished]`).waitFor();
      await shot(page, 'jobs.png');
      await page.goto(`${base}/console/run?task=sample::typed`);
      assert.equal(await page.getByTestId('param-count').getAttribute('type'), 'number', 'an Integer parameter is a number input');
    } finally {
      await context.close();
    }
  });

  it('refuses malformed parameter input with the API message and submits nothing', async () => {
    // Well-formed JSON of the wrong type: only the API can refuse it (the browser's own number checks cannot).
    const expected = await api('/orchestrator/v1/command/task', { environment: 'production', task: 'sample::typed', params: { count: 3, tags: [1, 2] }, scope: { nodes: ['node1'] } });
    assert.equal(expected.status, 400, expected.text);
    const before = (await api('/orchestrator/v1/jobs?limit=1')).json.pagination?.total;
    const { context, page } = await admin();
    try {
      await page.goto(`${base}/console/run?task=sample::typed`);
      await page.getByTestId('param-count').fill('3');
      await page.getByTestId('param-tags').fill('[1, 2]');
      await page.getByTestId('run-target-kind').selectOption('nodes');
      await page.getByTestId('run-target-nodes').fill('node1');
      await page.getByTestId('run-submit').click();
      await page.getByTestId('run-error').filter({ hasText: expected.json.msg as string }).waitFor();
      assert.match(pathOf(page), /^\/console\/run/, 'still on the form');
      assert.equal((await api('/orchestrator/v1/jobs?limit=1')).json.pagination?.total, before, 'no job was made');
    } finally {
      await context.close();
    }
  });

  it('shows a failing node with its error, and Re-run failed runs only the failed node', async () => {
    const id = await submitTask({ environment: 'production', task: 'sample::fail_under', params: { root: agents[1]!.dirs.root }, scope: { nodes: NODES } });
    await waitForJobEnd(orch!, id);
    const { context, page } = await admin();
    try {
      await page.goto(`${base}/console/jobs/${id}`);
      await page.getByTestId('job-state').filter({ hasText: /^\s*failed\s*$/ }).waitFor();
      const failed = page.locator('[data-testid=node-row][data-node=node2]');
      assert.equal(await failed.getAttribute('data-state'), 'failed');
      await failed.getByTestId('node-summary').filter({ hasText: 'exit code 4' }).waitFor();
      await failed.getByTestId('node-expand').click();
      await page.getByTestId('node-detail').filter({ hasText: 'puppetlabs.tasks/task-error' }).waitFor();
      await page.getByTestId('job-bar-label').filter({ hasText: '1 finished · 1 failed' }).waitFor();
      await page.getByTestId('job-rerun-failed').click();
      await page.getByTestId('confirm-dialog').waitFor();
      await page.getByTestId('confirm-ok').click();
      await page.waitForURL((u) => JOB_URL.test(u.pathname) && JOB_URL.exec(u.pathname)![1] !== id);
      const rerun = JOB_URL.exec(new URL(page.url()).pathname)![1]!;
      await page.getByTestId('job-state').filter({ hasText: /^\s*failed\s*$/ }).waitFor();
      const nodes = (await api(`/orchestrator/v1/jobs/${rerun}/nodes`)).json.items as Json[];
      assert.deepEqual(nodes.map((n) => n.name), ['node2'], 'only the failed node');
      const job = (await api(`/orchestrator/v1/jobs/${rerun}`)).json;
      assert.equal(job.options.task, 'sample::fail_under');
      assert.deepEqual(job.options.params, { root: agents[1]!.dirs.root });
      assert.deepEqual((await page.getByTestId('node-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-node')))), ['node2']);
    } finally {
      await context.close();
    }
  });

  it('stops a running job from its page', async () => {
    const id = await submitTask({ environment: 'production', task: 'sample::sleep', params: { seconds: 600 }, scope: { nodes: ['node1'] } });
    const { context, page } = await admin();
    try {
      await page.goto(`${base}/console/jobs/${id}`);
      await page.locator('[data-testid=node-row][data-node=node1][data-state=running]').waitFor();
      assert.equal(await page.getByTestId('job-rerun-failed').isDisabled(), true, 'no node failed');
      await page.getByTestId('job-stop-force').click();
      await page.getByTestId('confirm-dialog').waitFor();
      await page.getByTestId('confirm-ok').click();
      await page.getByTestId('job-state').filter({ hasText: /^\s*stopped\s*$/ }).waitFor();
      assert.equal((await api(`/orchestrator/v1/jobs/${id}`)).json.state, 'stopped');
    } finally {
      await context.close();
    }
  });

  it('shows task output, a job description and a node name holding HTML as text, never as markup', async () => {
    const nodeName = '<b>ghost<i>'; // node names allow no spaces or slashes
    const id = await submitTask({ environment: 'production', task: 'sample::xss', scope: { nodes: ['node1', nodeName] }, description: XSS_PAYLOAD });
    await waitForJobEnd(orch!, id);
    const { context, page } = await admin();
    try {
      await page.goto(`${base}/console/jobs/${id}`);
      await page.getByTestId('job-state').filter({ hasText: /^\s*failed\s*$/ }).waitFor();
      const row = page.locator('[data-testid=node-row][data-node=node1]');
      await row.getByTestId('node-summary').filter({ hasText: XSS_PAYLOAD }).waitFor();
      await row.getByTestId('node-expand').click();
      await page.getByTestId('node-detail').filter({ hasText: XSS_PAYLOAD }).first().waitFor();
      await page.getByTestId('node-row').filter({ hasText: nodeName }).waitFor();
      await page.goto(`${base}/console/jobs`);
      await page.locator(`[data-testid=jobs-row][data-job="${id}"]`).waitFor();
      await page.goto(`${base}/console/jobs/${id}`);
      await page.getByTestId('node-row').filter({ hasText: nodeName }).waitFor();
      assert.equal(await page.evaluate(() => (globalThis as Json).__xss), undefined);
      assert.equal(await page.locator('img[src="x"]').count(), 0, 'no <img> made from API data');
      assert.equal(await page.locator('[data-testid=node-row] b, [data-testid=node-row] i').count(), 0, 'no <b>/<i> made from a node name');
    } finally {
      await context.close();
    }
  });

  it('shows a viewer no Run, no Stop and no Re-run', async () => {
    const id = await submitTask({ environment: 'production', task: 'sample::echo', params: { message: 'seen' }, scope: { nodes: ['node1'] } });
    await waitForJobEnd(orch!, id);
    const { context, page } = await newPage(browser!);
    try {
      await signIn(page, base, VIEWER_TOKEN);
      await page.getByTestId('whoami').filter({ hasText: 'viewer' }).waitFor();
      await page.getByTestId('nav-jobs').waitFor();
      assert.equal(await page.getByTestId('nav-run').count(), 0);
      await page.goto(`${base}/console/jobs/${id}`);
      await page.getByTestId('job-state').filter({ hasText: /^\s*finished\s*$/ }).waitFor();
      for (const t of ['job-stop', 'job-stop-force', 'job-rerun', 'job-rerun-failed']) assert.equal(await page.getByTestId(t).count(), 0, `${t} hidden`);
      await page.goto(`${base}/console/run`);
      await page.getByTestId('not-permitted').waitFor();
      assert.equal(await page.getByTestId('run-submit').count(), 0);
    } finally {
      await context.close();
    }
  });

  it('lists the fleet with counts and a node\'s facts', async () => {
    const { context, page } = await admin();
    try {
      await page.getByTestId('nav-fleet').click();
      await page.locator('[data-testid=fleet-row][data-node=node2][data-connected=true]').waitFor();
      await page.getByTestId('fleet-counts').filter({ hasText: '2 connected' }).waitFor();
      await page.locator('[data-testid=fleet-row][data-node=node1]').getByTestId('fleet-facts-button').click();
      await page.getByTestId('fleet-facts').waitFor();
      await shot(page, 'fleet.png');
      await page.getByTestId('fleet-filter-name').fill('node2');
      await page.waitForURL(/name=node2/);
      await page.locator('[data-testid=fleet-row][data-node=node1]').waitFor({ state: 'detached' });
    } finally {
      await context.close();
    }
  });

  it('promotes a canary from the deployment page', async () => {
    const reg = await orch!.api('/v1/jobs', { method: 'PUT', body: { Job: { ID: 'web-canary', TaskGroups: [{ Name: 'web', Scope: { nodes: NODES }, Task: { task: 'sample::echo', params: { message: 'v1' } }, Update: { Canary: 1, AutoPromote: false, MaxParallel: 1, MinHealthyTime: '100ms' } }] } } });
    assert.equal(reg.status, 200, reg.text);
    const dep = (await api('/v1/job/web-canary/deployment')).json as Json;
    const { context, page } = await admin();
    try {
      await page.getByTestId('nav-deployments').click();
      await page.locator(`[data-testid=deployment-row][data-deployment="${dep.ID}"]`).waitFor();
      await page.goto(`${base}/console/deployments/${dep.ID}`);
      await page.locator('[data-testid=deployment-group][data-group=web]').waitFor();
      // The canary runs and turns healthy; then the deployment waits for a promotion.
      for (let index = 0; ;) {
        const res = await orch!.api(`/v1/deployment/${dep.ID}?index=${index}&wait=20s`);
        if (res.json.StatusDescription === 'Deployment is running but requires manual promotion') break;
        index = Number(res.headers['x-nomad-index']);
      }
      await shot(page, 'deployment.png');
      await page.getByTestId('deployment-promote').click();
      // A confirmation is optional here: answer it if it comes, else the promotion is under way.
      const promoted = (async () => {
        for (let index = 0; ;) {
          const res = await orch!.api(`/v1/deployment/${dep.ID}?index=${index}&wait=20s`);
          if (res.json.TaskGroups.web.Promoted === true) return;
          index = Number(res.headers['x-nomad-index']);
        }
      })();
      const confirm = page.getByTestId('confirm-ok');
      await Promise.race([promoted, confirm.waitFor().then(() => confirm.click())]);
      await promoted;
      await page.getByTestId('nav-deployments').click();
      await page.locator(`[data-testid=deployment-row][data-deployment="${dep.ID}"][data-status=successful]`).waitFor();
      const errors = await page.getByTestId('deployment-error').allTextContents();
      assert.deepEqual(errors.filter((t) => t.trim() !== ''), [], 'no error shown');
    } finally {
      await context.close();
    }
  });

  it('shows the offline banner while the orchestrator is down, and drops it once it is back', async () => {
    const { context, page } = await admin();
    try {
      await page.goto(`${base}/console/jobs`);
      await page.getByTestId('jobs-filter-type').waitFor();
      const port = orch!.port;
      await orch!.stop('SIGKILL'); // a crash: gone at once, connections reset
      await page.getByTestId('offline-banner').filter({ hasText: 'Cannot reach the orchestrator' }).waitFor();
      await startOrch(port);
      await page.getByTestId('offline-banner').waitFor({ state: 'hidden' });
      assert.match(pathOf(page), /^\/console\/jobs/);
    } finally {
      await context.close();
    }
  });

  it('returns a session whose token was revoked to sign-in with the message', async () => {
    const { context, page } = await newPage(browser!);
    try {
      await signIn(page, base, SESSION_TOKEN);
      await page.goto(`${base}/console/jobs`);
      await page.getByTestId('jobs-filter-type').waitFor();
      const port = orch!.port;
      await orch!.stop(); // a graceful restart, as an operator revoking a token does it
      writeConsoleTokens(tokensFile, false);
      await startOrch(port);
      await page.waitForURL(/\/console\/signin\?reason=expired/);
      await page.getByTestId('signin-error').filter({ hasText: EXPIRED_MESSAGE }).waitFor();
      assert.equal(await storedToken(page), null);
    } finally {
      await context.close();
    }
  });
});
