// `npm run build` (also run by `npm ci` through `prepare`, and before `npm test`): bundles the
// `baton` command and its dependencies into dist/ with esbuild, one chunk per command family, so
// that an agent loads only what it runs (idle RSS is a target) and nothing is compiled at start.
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
rmSync(`${root}dist`, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['cli/main.ts'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outdir: 'dist',
  splitting: true,
  entryNames: 'baton',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  // Optional native helpers of ws, loaded at run time when installed.
  external: ['bufferutil', 'utf-8-validate'],
  // CommonJS dependencies inside an ES module bundle still need require().
  banner: { js: "import { createRequire as __batonCreateRequire } from 'node:module'; const require = __batonCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
});
process.stdout.write('built dist/baton.mjs\n');

// The web console (console/): one script and one stylesheet, no inline code (its CSP forbids it),
// served by the orchestrator from dist/console/.
await build({
  absWorkingDir: root,
  entryPoints: { app: 'console/src/main.tsx' },
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2020',
  outdir: 'dist/console/assets',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  legalComments: 'none',
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
});
mkdirSync(`${root}dist/console`, { recursive: true });
copyFileSync(`${root}console/index.html`, `${root}dist/console/index.html`);
process.stdout.write('built dist/console/\n');
