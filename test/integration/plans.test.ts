// YAML plans on a real fleet (Redis, broker, orchestrators and agents as processes): a step's
// result feeds the next step's targets; a failing step fails the plan unless it catches errors;
// batches stop after max_failures; a plan job survives the SIGKILL of its orchestrator during step 2
// (it finishes, step 1 is not run again); stop_plan stops the running step and no later step
// starts; a one-off schedule_plan starts a plan job linked to its schedule; bad input is refused
// in the Puppet face's error format with nothing created.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ECHO_ONLY_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

const NODES = ['p1', 'p2', 'p3'];
const WAIT_BOUND_MS = 40_000;
const LOCK_DURATION_MS = 3_000;
const API = '/orchestrator/v1';

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_BOUND_MS)))]).finally(() => clearTimeout(timer));
}

/** The agent's own directory, as a task sees it from its spool: `<root>/spool/<transaction>`. */
const ROOT = 'root=$(dirname "$(dirname "$(pwd -P)")")';

/** Module `plantest`: tasks that mark their runs per agent, and the plans of these tests. */
function addPlantest(codedir: string): void {
  const mod = join(codedir, 'environments', 'production', 'modules', 'plantest');
  for (const d of ['tasks', 'plans', 'files']) mkdirSync(join(mod, d), { recursive: true });
  const task = (name: string, script: string, parameters: object) => {
    writeFileSync(join(mod, 'tasks', `${name}.sh`), `#!/bin/sh\n${ROOT}\n${script}`);
    chmodSync(join(mod, 'tasks', `${name}.sh`), 0o755);
    writeFileSync(join(mod, 'tasks', `${name}.json`), JSON.stringify({ parameters }));
  };
  task('check', 'if [ -f "$root/bad" ]; then echo "$root is bad" >&2; exit 1; fi\nprintf \'{"root":"%s"}\' "$root"\n', {});
  task('mark', 'echo "$root $PT_word" >> "$PT_dir/marks"\necho marked\n', { dir: { type: 'String[1]' }, word: { type: 'String[1]' } });
  task('gate', 'echo "$root waiting" >> "$PT_dir/marks"\nwhile [ ! -f "$PT_gate" ]; do sleep 0.05; done\necho "$root $PT_word" >> "$PT_dir/marks"\necho passed\n', { dir: { type: 'String[1]' }, gate: { type: 'String[1]' }, word: { type: 'String[1]' } });
  writeFileSync(join(mod, 'files', 'report.sh'), '#!/bin/sh\necho "report $1 $2"\n');
  const plan = (name: string, yaml: string) => writeFileSync(join(mod, 'plans', `${name}.yaml`), yaml);
  plan('three', `description: Check the nodes, then act and report on those whose check passed
parameters:
  targets:
    type: TargetSpec
  word:
    type: String[1]
    default: hello
steps:
  - name: check
    task: plantest::check
    targets: $targets
    catch_errors: true
  - name: act
    command: echo acted
    targets: $check.ok_targets
  - name: report
    script: plantest/report.sh
    arguments: [$word, "two words"]
    targets: $act.ok_targets
return: $check.ok_targets
`);
  plan('strict', `parameters:
  targets:
    type: TargetSpec
  dir:
    type: String[1]
steps:
  - name: check
    task: plantest::check
    targets: $targets
  - task: plantest::mark
    targets: $check.ok_targets
    parameters:
      dir: $dir
      word: after
`);
  plan('rolling', `parameters:
  targets:
    type: TargetSpec
steps:
  - name: roll
    task: plantest::check
    targets: $targets
    batch_size: 1
    max_failures: 0
return: $roll
`);
  plan('slow', `parameters:
  targets:
    type: TargetSpec
  dir:
    type: String[1]
  gate:
    type: String[1]
steps:
  - name: first
    task: plantest::mark
    targets: $targets
    parameters: { dir: $dir, word: first }
  - name: second
    task: plantest::gate
    targets: $targets
    parameters: { dir: $dir, gate: $gate, word: second }
  - name: third
    plan: plantest::sub
    parameters: { nodes: $second.ok_targets, dir: $dir }
`);
  plan('sub', `parameters:
  nodes:
    type: TargetSpec
  dir:
    type: String[1]
steps:
  - task: plantest::mark
    targets: $nodes
    parameters: { dir: $dir, word: third }
return: done
`);
  plan('secret', `parameters:
  targets:
    type: TargetSpec
  dir:
    type: String[1]
  password:
    type: String[1]
    sensitive: true
steps:
  - task: plantest::mark
    targets: $targets
    parameters: { dir: $dir, word: $password }
`);
  plan('broken_yaml', 'steps:\n  - task: plantest::check\n    targets: [p1, p2\n');
  plan('unknown_key', 'steps:\n  - task: plantest::check\n    targets: p1\n    retries: 3\n');
  plan('unknown_task', 'steps:\n  - task: plantest::check\n    targets: p1\n  - task: plantest::nope\n    targets: p1\n');
  plan('unknown_var', 'steps:\n  - task: plantest::check\n    targets: $nodes\n');
  plan('bad_task_params', 'steps:\n  - task: plantest::mark\n    targets: p1\n    parameters:\n      dir: 3\n      word: x\n');
}

interface PlanJob {
  name: string;
  state: string;
  result: unknown;
  steps: { name: string | null; path: string; state: string; type: string; jobs: { name: string }[]; result: Record<string, unknown> | null; error?: { kind: string } }[];
  scheduled_job?: { name: string };
}

describe('plans', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let a: OrchestratorProcess;
  let k: OrchestratorProcess | undefined;
  let brokerUri: string;
  let codedir: string;
  const agents: AgentProcess[] = [];
  const work = mkdtempSync(join(tmpdir(), 'baton-plans-'));

  before(async () => {
    pki = await makePki(NODES);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, config: { 'controller-cns': ['orch-*'] } });
    brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    codedir = makeCodedir();
    addPlantest(codedir);
    a = await startOrchestratorProcess({ pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, keyPrefix: `plan${process.pid}`, name: 'orch-a' });
    for (const name of NODES) agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${a.port}`] }));
    await waitForConnected(a, NODES.length);
  });

  after(async () => {
    await k?.stop();
    await stopStack({ agents, orch: a, broker, redis, pki });
  });

  const run = (o: OrchestratorProcess, body: Record<string, unknown>, token?: string) => o.api(`${API}/command/plan_run`, { body, ...(token ? { token } : {}) });

  /** Waits (on the orchestrator's word, bounded) until the plan job has ended; returns it. */
  async function planEnd(o: OrchestratorProcess, id: string): Promise<PlanJob> {
    for (;;) {
      const ended = o.waitForNextLog((l) => typeof l.msg === 'string' && /^plan job (succeeded|failed|stopped)$/.test(l.msg) && l.plan_job === id);
      const res = await o.api(`${API}/plan_jobs/${id}`);
      assert.equal(res.status, 200, res.text);
      if (['success', 'failure', 'stopped'].includes(res.json.state as string)) return res.json as PlanJob;
      await bounded(ended, `plan job ${id} to end`);
    }
  }

  const rootOf = (name: string) => agents[NODES.indexOf(name)]!.dirs.root;

  it('a three-step plan: the check result feeds the next steps’ targets; a caught failure does not fail the plan', async () => {
    const bad = join(rootOf('p3'), 'bad');
    writeFileSync(bad, '');
    try {
      const res = await run(a, { plan_name: 'plantest::three', params: { targets: NODES, word: 'w1' }, description: 'three steps' });
      assert.equal(res.status, 202, res.text);
      assert.match(res.json.id as string, /\/orchestrator\/v1\/plan_jobs\/[0-9]+$/);
      const job = await planEnd(a, res.json.name as string);
      assert.equal(job.state, 'success', JSON.stringify(job));
      assert.deepEqual(job.result, ['p1', 'p2']);
      const [check, act, report] = job.steps;
      assert.equal(check!.state, 'failure');
      assert.deepEqual(check!.result!.failed_targets, ['p3']);
      assert.deepEqual(act!.result!.targets, ['p1', 'p2']);
      assert.deepEqual((act!.result!.results as Record<string, { _output: string }>).p1!._output, 'acted\n');
      assert.equal(report!.state, 'success');
      assert.equal((report!.result!.results as Record<string, { _output: string }>).p2!._output, 'report w1 two words\n');
      // Every step is an ordinary job, linked to its plan job.
      const stepJob = await a.api(`${API}/jobs/${act!.jobs[0]!.name}`);
      assert.equal(stepJob.json.plan_job.name, res.json.name);
      assert.equal(stepJob.json.plan_job.step, 'act');
      const events = await a.api(`${API}/plan_jobs/${res.json.name}/events?start=1`);
      const types = (events.json.items as { type: string }[]).map((e) => e.type);
      for (const t of ['task_start', 'command_start', 'script_start', 'plan_finished']) assert.ok(types.includes(t), `${t} in ${types.join(',')}`);
      const later = await a.api(`${API}/plan_jobs/${res.json.name}/events?start=${events.json['next-events'].event}`);
      assert.deepEqual(later.json.items, []);
      const list = await a.api(`${API}/plan_jobs?limit=1`);
      assert.equal(list.json.items[0].name, res.json.name);
    } finally {
      writeFileSync(bad, '');
    }
  });

  it('a failing step without catch_errors fails the plan; later steps never start', async () => {
    const dir = mkdtempSync(join(work, 'strict-'));
    const res = await run(a, { plan_name: 'plantest::strict', params: { targets: NODES, dir } });
    assert.equal(res.status, 202, res.text);
    const job = await planEnd(a, res.json.name as string);
    assert.equal(job.state, 'failure');
    assert.equal((job.result as { kind: string }).kind, 'bolt/run-failure');
    assert.equal(job.steps.length, 1, 'the second step has no record: it never started');
    assert.ok(!existsSync(join(dir, 'marks')));
  });

  it('batches stop after max_failures: later batches are not run', async () => {
    const res = await run(a, { plan_name: 'plantest::rolling', params: { targets: ['p1', 'p3', 'p2'] } });
    assert.equal(res.status, 202, res.text);
    const job = await planEnd(a, res.json.name as string);
    assert.equal(job.state, 'failure');
    const roll = job.steps[0]!;
    assert.equal(roll.jobs.length, 2, 'two batches ran, the third did not');
    assert.deepEqual(roll.result!.ok_targets, ['p1']);
    assert.deepEqual(roll.result!.failed_targets, ['p3', 'p2']);
  });

  it('stop_plan stops the running step; no later step starts', async () => {
    const dir = mkdtempSync(join(work, 'stop-'));
    const res = await run(a, { plan_name: 'plantest::slow', params: { targets: ['p1'], dir, gate: join(dir, 'never') } });
    const id = res.json.name as string;
    // Wait until step 2 runs on the node (its marker is written as it starts).
    await bounded(a.waitForLog((l) => l.msg === 'plan step started' && l.plan_job === id && l.path === '2'), 'step 2');
    await bounded(untilFile(a, join(dir, 'marks'), 'waiting'), 'the gate task to run');
    const stop = await a.api(`${API}/command/stop_plan`, { body: { plan_job: id, force: true } });
    assert.equal(stop.status, 202, stop.text);
    const job = await planEnd(a, id);
    assert.equal(job.state, 'stopped');
    assert.equal(job.steps.length, 2);
    assert.ok(!readMarks(dir).includes('third'));
    assert.equal((await a.api(`${API}/command/stop_plan`, { body: { plan_job: '99999' } })).status, 404);
  });

  it('survives the SIGKILL of its orchestrator during step 2: it finishes, step 1 is not run again', async () => {
    const common = { pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir, keyPrefix: `plank${process.pid}`, name: 'orch-k', config: { 'node-run-lock-duration': LOCK_DURATION_MS } };
    k = await startOrchestratorProcess(common);
    await waitForConnected(k, NODES.length);
    const dir = mkdtempSync(join(work, 'kill-'));
    const gate = join(dir, 'gate');
    const res = await run(k, { plan_name: 'plantest::slow', params: { targets: NODES, dir, gate } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.name as string;
    await bounded(k.waitForLog((l) => l.msg === 'plan step started' && l.plan_job === id && l.path === '2'), 'step 2');
    await bounded(untilFile(k, join(dir, 'marks'), 'waiting', NODES.length), 'step 2 to run on every node');
    k.proc.kill('SIGKILL');
    await k.exited;
    k = await startOrchestratorProcess(common);
    await bounded(k.waitForLog((l) => l.msg === 'plan job resumed' && l.plan_job === id), 'the plan job to be taken over');
    writeFileSync(gate, '');
    const job = await planEnd(k, id);
    assert.equal(job.state, 'success', JSON.stringify(job));
    const marks = readMarks(dir).trim().split('\n');
    const count = (w: string) => marks.filter((m) => m.endsWith(` ${w}`)).length;
    assert.equal(count('first'), NODES.length, `step 1 ran once per node: ${marks.join('; ')}`);
    assert.equal(count('waiting'), NODES.length, 'step 2 was not started again');
    assert.equal(count('second'), NODES.length);
    assert.equal(count('third'), NODES.length);
    assert.equal(job.steps.find((s) => s.path === '3')!.result as unknown, 'done');
    assert.equal(job.steps.find((s) => s.path === '1')!.jobs.length, 1);
  });

  it('a one-off schedule_plan starts a plan job linked to the schedule', async () => {
    const dir = mkdtempSync(join(work, 'sched-'));
    const started = a.waitForNextLog((l) => typeof l.msg === 'string' && l.msg.startsWith('scheduled job started'));
    const res = await a.api(`${API}/command/schedule_plan`, { body: { plan_name: 'plantest::strict', params: { targets: ['p1'], dir }, scheduled_time: new Date(Date.now() + 1_500).toISOString() } });
    assert.equal(res.status, 202, res.text);
    const line = await bounded(started, 'the schedule to fire');
    assert.equal(line.kind, 'plan_job');
    const job = await planEnd(a, line.job as string);
    assert.equal(job.state, 'success');
    assert.equal(job.scheduled_job!.name, res.json.scheduled_job.name);
    const sched = await a.api(`${API}/scheduled_jobs/${res.json.scheduled_job.name}`);
    assert.match(sched.json.last_run.job.id as string, /\/plan_jobs\//);
    const badSched = await a.api(`${API}/command/schedule_plan`, { body: { plan_name: 'plantest::nope', scheduled_time: new Date(Date.now() + 60_000).toISOString() } });
    assert.equal(badSched.status, 404, badSched.text);
  });

  it('a sensitive plan parameter is masked in the plan job and in the step jobs that carry it', async () => {
    const dir = mkdtempSync(join(work, 'secret-'));
    const secret = 'hunter2-plan-secret';
    const res = await run(a, { plan_name: 'plantest::secret', params: { targets: ['p1'], dir, password: secret } });
    assert.equal(res.status, 202, res.text);
    const job = await planEnd(a, res.json.name as string);
    assert.equal(job.state, 'success', JSON.stringify(job));
    assert.match(readFileSync(join(dir, 'marks'), 'utf8'), new RegExp(`${secret}\n$`), 'the task got the real value');
    const shown = await a.api(`${API}/plan_jobs/${job.name}`);
    assert.ok(!shown.text.includes(secret), shown.text);
    for (const step of job.steps) {
      const stepJob = await a.api(`${API}/jobs/${step.jobs[0]!.name}`);
      assert.equal(stepJob.status, 200, stepJob.text);
      assert.ok(!stepJob.text.includes(secret), `step ${step.path}'s job shows the secret: ${stepJob.text}`);
    }
  });

  it('refuses bad input (400/403/404, with the line and the reason) and creates nothing', async () => {
    const before = (await a.api(`${API}/plan_jobs?limit=0`)).json.pagination.total as number;
    const expect = async (body: Record<string, unknown>, status: number, kind: string, line?: number, token?: string) => {
      const res = await run(a, body, token);
      assert.equal(res.status, status, res.text);
      assert.equal(res.json.kind, `puppetlabs.orchestrator/${kind}`, res.text);
      if (line !== undefined) assert.equal(res.json.details.line, line, res.text);
      return res;
    };
    await expect({ plan_name: 'plantest::nothere' }, 404, 'unknown-plan');
    await expect({ plan_name: 'plantest::broken_yaml' }, 400, 'invalid-plan', 4);
    const key = await expect({ plan_name: 'plantest::unknown_key' }, 400, 'invalid-plan', 4);
    assert.match(key.json.msg as string, /retries/);
    await expect({ plan_name: 'plantest::unknown_task' }, 404, 'unknown-task', 4);
    await expect({ plan_name: 'plantest::unknown_var' }, 400, 'unknown-variable', 3);
    await expect({ plan_name: 'plantest::bad_task_params' }, 400, 'invalid-plan-parameters', 2);
    await expect({ plan_name: 'plantest::three', params: { targets: 3 } }, 400, 'invalid-plan-parameters');
    await expect({ plan_name: 'plantest::three', params: { targets: 'p1', colour: 'red' } }, 400, 'invalid-plan-parameters');
    await expect({ plan_name: 'plantest::strict', params: { targets: 'p1' } }, 400, 'invalid-plan-parameters');
    await expect({ plan_name: 'plantest::three', params: { targets: 'p1' } }, 403, 'not-permitted', undefined, ECHO_ONLY_TOKEN);
    await expect({ plan_name: 'plantest::three', environment: 'nowhere' }, 404, 'unknown-environment');
    await expect({ plan_name: 'plantest::three', bogus: 1 }, 400, 'validation-error');
    assert.equal((await a.api(`${API}/plan_jobs?limit=0`)).json.pagination.total, before, 'nothing was created');
    for (const path of ['/plan_jobs/99999', '/plan_jobs/99999/events', '/plans/plantest/nothere']) {
      const res = await a.api(`${API}${path}`);
      assert.equal(res.status, 404, `${path}: ${res.text}`);
    }
    // Malformed path segments are refused before any work: 400 by the face's path rules (or 404 as no such thing).
    for (const path of ['/plan_jobs/abc', '/plans/Bad/x']) {
      const res = await a.api(`${API}${path}`);
      assert.ok([400, 404].includes(res.status), `${path}: ${res.text}`);
      assert.match(res.json.kind as string, /^puppetlabs\.orchestrator\//);
    }
    const plans = await a.api(`${API}/plans`);
    assert.ok((plans.json.items as { name: string }[]).some((p) => p.name === 'plantest::three'));
    const shown = await a.api(`${API}/plans/plantest/three`);
    assert.equal(shown.status, 200, shown.text);
    assert.equal(shown.json.metadata.parameters.targets.type, 'TargetSpec');
    assert.deepEqual((shown.json.steps as { type: string }[]).map((s) => s.type), ['task', 'command', 'script']);
    const broken = await a.api(`${API}/plans/plantest/broken_yaml`);
    assert.equal(broken.status, 400, broken.text);
  });
});

function readMarks(dir: string): string {
  try {
    return readFileSync(join(dir, 'marks'), 'utf8');
  } catch {
    return '';
  }
}

/**
 * Resolves once `file` holds `count` lines ending in ` word`: read again at each log line of the
 * orchestrator (node runs report through it), bounded by the caller.
 */
async function untilFile(o: OrchestratorProcess, file: string, word: string, count = 1): Promise<void> {
  const has = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.endsWith(` ${word}`)).length >= count : false);
  while (!has()) await Promise.race([o.waitForNextLog(() => true), new Promise((r) => setTimeout(r, 200))]);
}
