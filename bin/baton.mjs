#!/usr/bin/env node
// The `baton` command. It runs the bundle in dist/ (built by `npm ci` and `npm run build`) when
// that is at least as new as every source file, and the TypeScript sources through tsx otherwise
// (while developing), so it never runs stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

const SOURCE_DIRS = ['cli', 'schemas', 'protocol', 'lib', 'broker', 'pxp-agent', 'orchestrator'];
const root = new URL('../', import.meta.url);
const bundle = new URL('dist/baton.mjs', root);

function newestMtimeMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function bundleIsFresh() {
  if (!existsSync(bundle)) return false;
  const built = statSync(bundle).mtimeMs;
  return SOURCE_DIRS.every((d) => newestMtimeMs(new URL(d, root).pathname) <= built);
}

// An agent sits idle on every host: a small young generation keeps its footprint down.
if (process.argv[2] === 'agent') setFlagsFromString('--max-semi-space-size=1');

if (bundleIsFresh()) {
  await import(bundle.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('cli/main.ts', root).href);
}
