// Helpers for the web console's browser tests and bench: Debian's chromium driven by
// playwright-core (no browser download), a codedir with the console's own sample tasks, a tokens
// file the tests can rewrite, and screenshots into a folder of their own.
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { ADMIN_TOKEN, makeCodedir, VIEWER_TOKEN } from '../helpers/orchestrator.ts';

export const CHROMIUM = '/usr/bin/chromium';
/** A token the revocation test takes away by restarting the orchestrator without it. */
export const SESSION_TOKEN = 'session-token-0123456789abcdef';
export const XSS_PAYLOAD = '<img src=x onerror=window.__xss=1>';
/** Every wait for a DOM state gives up after this long (a failure, not a pause). */
export const WAIT_MS = 20_000;

/** Why the browser tests cannot run here, or false. */
export function chromiumMissing(): string | false {
  return existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (Debian package chromium)`;
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

export async function newPage(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  return { context, page };
}

/** Signs in at `base` (https://127.0.0.1:PORT) with `token` and waits for the signed-in layout. */
export async function signIn(page: Page, base: string, token: string): Promise<void> {
  await page.goto(`${base}/console/signin`);
  await page.getByTestId('signin-token').fill(token);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('whoami').waitFor();
}

/** Writes a tokens file: admin, viewer and the session token (unless `withSession` is false). */
export function writeConsoleTokens(path: string, withSession = true): string {
  writeFileSync(path, JSON.stringify([
    { token: ADMIN_TOKEN, login: 'admin', permissions: ['*'] },
    { token: VIEWER_TOKEN, login: 'viewer', permissions: ['jobs:view', 'inventory:view', 'tasks:view'] },
    ...(withSession ? [{ token: SESSION_TOKEN, login: 'session', permissions: ['*'] }] : []),
  ]));
  return path;
}

/**
 * makeCodedir's sample tasks plus the console's: `typed` (an Integer and an Array parameter), `fail_under`
 * (fails on the agent whose directory is under `root`), `xss` (prints HTML).
 */
export function makeConsoleCodedir(): string {
  const dir = makeCodedir();
  const tasks = join(dir, 'environments', 'production', 'modules', 'sample', 'tasks');
  const task = (name: string, script: string, metadata: object) => {
    writeFileSync(join(tasks, `${name}.sh`), script);
    chmodSync(join(tasks, `${name}.sh`), 0o755);
    writeFileSync(join(tasks, `${name}.json`), JSON.stringify(metadata));
  };
  task('typed', '#!/bin/sh\necho "count $PT_count label $PT_label"\n', {
    description: 'Counts to a number',
    parameters: { count: { type: 'Integer[1, 10]', description: 'how far to count' }, label: { type: 'Optional[String]', default: 'plain' }, tags: { type: 'Optional[Array[String]]' } },
  });
  task('fail_under', '#!/bin/sh\ncase "$(pwd -P)" in "$PT_root"*) echo "boom on purpose" >&2; exit 4;; esac\necho fine\n', {
    description: 'Fails on one agent',
    parameters: { root: { type: 'String[1]' } },
  });
  task('xss', `#!/bin/sh\necho '${XSS_PAYLOAD}'\n`, { description: `Prints ${XSS_PAYLOAD}`, parameters: {} });
  return dir;
}

/** A folder for this run's screenshots, printed as a TAP comment. */
export function screenshotDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-console-shots-'));
  process.stdout.write(`screenshots: ${dir}\n`); // the test runner shows it as `# screenshots: DIR`
  return dir;
}

/** Copies the README's screenshots (those that were taken) from `dir` into docs/console/. */
export function copyReadmeShots(dir: string, names: readonly string[]): string[] {
  const docs = new URL('../../docs/console/', import.meta.url).pathname;
  mkdirSync(docs, { recursive: true });
  const copied = names.filter((n) => existsSync(join(dir, n)));
  for (const n of copied) copyFileSync(join(dir, n), join(docs, n));
  return copied;
}

/** The path part and query of the page's URL. */
export function pathOf(page: Page): string {
  const u = new URL(page.url());
  return u.pathname + u.search;
}

/** The token the console keeps in the tab's sessionStorage (null when signed out). */
export function storedToken(page: Page): Promise<string | null> {
  return page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('baton.token'));
}
