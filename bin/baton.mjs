#!/usr/bin/env node
// The `baton` command. It runs the bundle in dist/ (built by `npm ci` and `npm run build`) when
// that is at least as new as every source file, and the TypeScript sources through tsx otherwise
// (while developing, with a warning), so it never runs stale code.
import { setFlagsFromString } from 'node:v8';
import { BUNDLE, bundleIsFresh } from '../scripts/freshness.mjs';

// An agent sits idle on every host: a small young generation keeps its footprint down.
if (process.argv[2] === 'agent') setFlagsFromString('--max-semi-space-size=1');

if (bundleIsFresh()) {
  await import(BUNDLE.href);
} else {
  process.stderr.write('baton: dist/ is older than the sources; running them through tsx (npm run build makes dist/ again)\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../cli/main.ts', import.meta.url).href);
}
