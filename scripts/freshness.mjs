// Whether dist/ was built from the sources as they are now (used by bin/baton.mjs and tests).
import { existsSync, readdirSync, statSync } from 'node:fs';

export const SOURCE_DIRS = ['cli', 'schemas', 'protocol', 'lib', 'broker', 'pxp-agent', 'orchestrator', 'console'];
const root = new URL('../', import.meta.url);
export const BUNDLE = new URL('dist/baton.mjs', root);

function newestMtimeMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export function bundleIsFresh() {
  if (!existsSync(BUNDLE)) return false;
  const built = statSync(BUNDLE).mtimeMs;
  return SOURCE_DIRS.every((d) => newestMtimeMs(new URL(d, root).pathname) <= built);
}

/** Builds dist/ when it is older than the sources (tests and benchmarks run the built `baton`). */
export async function ensureBuilt() {
  if (bundleIsFresh()) return;
  const { spawnSync } = await import('node:child_process');
  const built = spawnSync(process.execPath, ['--import', 'tsx', new URL('build.ts', import.meta.url).pathname], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('npm run build failed');
}
