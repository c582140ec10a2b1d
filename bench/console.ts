// `npm run bench:console [-- --jobs N --loads L]`: the web console's weight and speed. The gzip size
// of every file in dist/console/assets/ (built by `npm run build`), and the time from navigation
// start to the first visible `jobs-row` of the Jobs page in Debian's chromium with N jobs in the
// store (written with the orchestrator's JobStore before it starts, already ended), median of L
// loads. Prints one JSON line with the targets beside the figures.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { JobStore } from '../orchestrator/engine/store.ts';
import { startBrokerProcess } from '../test/helpers/broker.ts';
import { ADMIN_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, type OrchestratorProcess } from '../test/helpers/orchestrator.ts';
import { makePki } from '../test/helpers/pki.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { launchChromium, newPage, signIn } from '../test/browser/console-helpers.ts';
import { round } from './harness.ts';

const TARGET_GZIP_BYTES = 150 * 1024;
const TARGET_FIRST_RENDER_MS = 1000;
const SUBMIT_BATCH = 50;
const KEY_PREFIX = 'bench-console';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '1000' }, loads: { type: 'string', default: '5' } } });
const jobCount = Number(args.jobs);
const loads = Number(args.loads);

function bundleSizes(): { total_gzip_bytes: number; files: Record<string, { bytes: number; gzip_bytes: number }> } {
  const dir = new URL('../dist/console/assets/', import.meta.url).pathname;
  const files: Record<string, { bytes: number; gzip_bytes: number }> = {};
  let total = 0;
  for (const name of readdirSync(dir).sort()) {
    const body = readFileSync(join(dir, name));
    const gz = gzipSync(body, { level: 9 }).length;
    files[name] = { bytes: body.length, gzip_bytes: gz };
    total += gz;
  }
  return { total_gzip_bytes: total, files };
}

/** Writes `n` ended jobs with the orchestrator's own JobStore (before it starts: nothing to run). */
async function makeJobs(redisUrl: string, n: number): Promise<number> {
  const redis = new Redis(redisUrl);
  const store = new JobStore(redis, KEY_PREFIX);
  const start = Date.now();
  try {
    for (let i = 0; i < n; i += SUBMIT_BATCH) {
      await Promise.all(Array.from({ length: Math.min(SUBMIT_BATCH, n - i) }, async (_, k) => {
        const message = `job ${i + k}`;
        const job = await store.createJob({
          type: 'task', environment: 'production', task: 'sample::echo', params: { message }, sensitive: [],
          options: { concurrency: 0, noop: false, timeout_s: 60, description: `bench ${message}` }, owner: 'admin',
          scope: { nodes: ['absent'] }, nodes: ['absent'], action: { module: 'task', action: 'run', params: { task: 'sample::echo', input: { message } } },
        });
        await store.setJobFields(job.id, { state: (i + k) % 7 === 0 ? 'failed' : 'finished', finished_ms: Date.now() });
      }));
    }
  } finally {
    redis.disconnect();
  }
  return Date.now() - start;
}

async function firstRenders(base: string, n: number): Promise<number[]> {
  const browser = await launchChromium();
  try {
    const { context, page } = await newPage(browser);
    await signIn(page, base, ADMIN_TOKEN); // the token stays in this tab's sessionStorage
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      await page.goto(`${base}/console/jobs`, { waitUntil: 'commit' });
      await page.getByTestId('jobs-row').first().waitFor();
      times.push(await page.evaluate(() => performance.now())); // ms since this navigation started
    }
    await context.close();
    return times;
  } finally {
    await browser.close();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const sizes = bundleSizes();
const pki = await makePki([]);
const redis = await startRedis();
const broker = await startBrokerProcess({ pki, logLevel: 'info' });
let orch: OrchestratorProcess | undefined;
try {
  const submitMs = await makeJobs(redis.url, jobCount);
  orch = await startOrchestratorProcess({ pki, brokerUris: [`wss://127.0.0.1:${broker.port}/pcp2/`], redisUrl: redis.url, codedir: makeCodedir(), keyPrefix: KEY_PREFIX, config: { 'log-level': 'info' } });
  const times = await firstRenders(orch.url(''), loads);
  const firstRenderMs = round(median(times), 1);
  process.stdout.write(`${JSON.stringify({
    bench: 'console',
    gzip: { total_bytes: sizes.total_gzip_bytes, target_bytes: TARGET_GZIP_BYTES, ok: sizes.total_gzip_bytes < TARGET_GZIP_BYTES, files: sizes.files },
    jobs_first_render: { jobs: jobCount, loads, median_ms: firstRenderMs, runs_ms: times.map((t) => round(t, 1)), target_ms: TARGET_FIRST_RENDER_MS, ok: firstRenderMs < TARGET_FIRST_RENDER_MS },
    setup: { store_ms: submitMs },
  })}\n`);
} finally {
  await stopStack({ agents: [], orch, broker, redis, pki });
}
