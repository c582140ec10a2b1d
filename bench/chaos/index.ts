// `npm run chaos`: every chaos scenario in sequence, one JSON line each;
// `npm run chaos -- --scenario storm --agents 10000` runs one. Scenarios are modules of this
// folder exporting `run(opts)`; a missing one is reported as {scenario, error: 'not available'}.
import { spawnSync } from 'node:child_process';
import { Command, InvalidArgumentError } from 'commander';
import { bundleIsFresh } from '../../scripts/freshness.mjs';

export const SCENARIOS = ['broker', 'agents', 'redis-kill', 'redis-stall', 'orchestrator', 'orchestrators', 'storm', 'fuzz'] as const;

type Run = (opts: { agents?: number; concurrency?: number; taskSeconds?: number }) => Promise<Record<string, unknown>>;

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
};

async function load(scenario: string): Promise<Run | null> {
  const url = new URL(`./${scenario}.ts`, import.meta.url);
  try {
    const mod = (await import(url.href)) as { run?: Run };
    return typeof mod.run === 'function' ? mod.run : null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Only the scenario's own module missing means "not available"; anything else is its error.
    if (e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(url.pathname.split('/').pop()!)) return null;
    throw err;
  }
}

/**
 * The stacks run the built `baton`: build it when the sources are newer, with the build's output
 * on stderr, so that stdout holds nothing but the JSON lines (the helpers' own check then finds
 * it fresh and prints nothing).
 */
function buildIfStale(): void {
  if (bundleIsFresh()) return;
  const built = spawnSync(process.execPath, ['--import', 'tsx', new URL('../../scripts/build.ts', import.meta.url).pathname], { stdio: ['ignore', 2, 2] });
  if (built.status !== 0) throw new Error('npm run build failed');
}

async function runOne(scenario: string, opts: { agents?: number; concurrency?: number; taskSeconds?: number }): Promise<Record<string, unknown>> {
  let run: Run | null;
  try {
    buildIfStale();
    run = await load(scenario);
  } catch (err) {
    return { scenario, error: `cannot load: ${(err as Error).message}` };
  }
  if (!run) return { scenario, error: 'not available' };
  try {
    return await run(opts);
  } catch (err) {
    return { scenario, error: (err as Error).message };
  }
}

const program = new Command('chaos')
  .description('Faults on a private stack of real processes; one JSON line per scenario')
  .option('--scenario <name>', `one of ${SCENARIOS.join(', ')} (default: all, in that order)`)
  .option('--agents <n>', 'agents in the fleet', positiveInt)
  .option('--concurrency <n>', 'job concurrency', positiveInt)
  .option('--task-seconds <n>', 'seconds each task run sleeps', positiveInt)
  .parse();

const o = program.opts<{ scenario?: string; agents?: number; concurrency?: number; taskSeconds?: number }>();
if (o.scenario !== undefined && !(SCENARIOS as readonly string[]).includes(o.scenario)) program.error(`unknown scenario '${o.scenario}': expected one of ${SCENARIOS.join(', ')}`);
const opts = {
  ...(o.agents !== undefined ? { agents: o.agents } : {}),
  ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
  ...(o.taskSeconds !== undefined ? { taskSeconds: o.taskSeconds } : {}),
};
let failed = false;
for (const scenario of o.scenario ? [o.scenario] : SCENARIOS) {
  const result = await runOne(scenario, opts);
  if (result.error !== undefined && result.error !== 'not available') failed = true;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
process.exitCode = failed ? 1 : 0;
