// Schedules on a real fleet: two orchestrators on one Redis share them (one job per occurrence,
// whichever orchestrator is up), deletion stops them, an occurrence missed while every
// orchestrator was down runs once, late, when one comes back; bad input is refused in the
// Puppet face's error format.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentProcess, type AgentProcess } from '../helpers/agent.ts';
import { runCli } from '../helpers/cli.ts';
import { startBrokerProcess, type BrokerProcess } from '../helpers/broker.ts';
import { ADMIN_TOKEN, ECHO_ONLY_TOKEN, makeCodedir, startOrchestratorProcess, stopStack, waitForConnected, waitForJobEnd, type OrchestratorProcess } from '../helpers/orchestrator.ts';
import { makePki, type TestPki } from '../helpers/pki.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { SCHEDULE_LATE_AFTER_MS } from '../../orchestrator/schedules/defaults.ts';
import { REDACTED } from '../../protocol/rerun.ts';

const NODES = ['s1'];
const INTERVAL_S = 2;
/** The longest any wait on the orchestrators may take before the test fails. */
const WAIT_BOUND_MS = 30_000;

/** Resolves once Date.now() has passed `ms` (a bounded wait for a time, never a guessed sleep). */
async function untilPast(ms: number): Promise<void> {
  assert.ok(ms - Date.now() < WAIT_BOUND_MS, 'waiting for a time too far ahead');
  while (Date.now() <= ms) await new Promise((r) => setTimeout(r, Math.max(1, Math.min(200, ms - Date.now() + 1))));
}

/** Fails after WAIT_BOUND_MS. */
function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_BOUND_MS)))]).finally(() => clearTimeout(timer));
}

const started = (id: string) => (l: Record<string, unknown>) => typeof l.msg === 'string' && l.msg.startsWith('scheduled job started') && l.schedule === id;

describe('schedules', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let broker: BrokerProcess;
  let a: OrchestratorProcess;
  let b: OrchestratorProcess | undefined;
  let common: Parameters<typeof startOrchestratorProcess>[0];
  const agents: AgentProcess[] = [];
  const work = mkdtempSync(join(tmpdir(), 'baton-schedules-'));

  before(async () => {
    pki = await makePki(NODES);
    redis = await startRedis();
    broker = await startBrokerProcess({ pki, config: { 'controller-cns': ['orch-*'] } });
    const brokerUri = `wss://127.0.0.1:${broker.port}/pcp2/`;
    common = { pki, brokerUris: [brokerUri], redisUrl: redis.url, codedir: makeCodedir(), keyPrefix: `sch${process.pid}`, name: 'orch-a' };
    a = await startOrchestratorProcess(common);
    b = await startOrchestratorProcess({ ...common, name: 'orch-b' });
    for (const name of NODES) agents.push(await startAgentProcess({ pki, name, brokerUris: [brokerUri], masterUris: [`https://127.0.0.1:${a.port}`] }));
    await waitForConnected(a, NODES.length);
    await waitForConnected(b, NODES.length);
  });

  after(async () => {
    await b?.stop();
    await stopStack({ agents, orch: a, broker, redis, pki });
  });

  const scheduleTask = (o: OrchestratorProcess, body: Record<string, unknown>, token?: string) =>
    o.api('/orchestrator/v1/command/schedule_task', { body: { scope: { nodes: NODES }, ...body }, ...(token ? { token } : {}) });

  /** The jobs a schedule started, by their link back to it. */
  async function jobsOf(o: OrchestratorProcess, scheduleId: string): Promise<{ name: string; scheduled_job: { scheduled_for: string; late: boolean } }[]> {
    const list = (await o.api('/orchestrator/v1/jobs?limit=0')).json.items as { name: string; scheduled_job?: { name: string; scheduled_for: string; late: boolean } }[];
    return list.filter((j) => j.scheduled_job?.name === scheduleId) as never;
  }

  it('refuses bad input in the Puppet face error format', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const cron = await scheduleTask(a, { task: 'sample::echo', params: { message: 'x' }, schedule_options: { cron: '61 3 * * *' } });
    assert.equal(cron.status, 400, cron.text);
    assert.equal(cron.json.kind, 'puppetlabs.orchestrator/validation-error');
    assert.equal(cron.json.details.reason, 'invalid-cron');
    const tz = await scheduleTask(a, { task: 'sample::echo', params: { message: 'x' }, schedule_options: { cron: '0 3 * * *', timezone: 'Mars/Olympus_Mons' } });
    assert.equal(tz.status, 400, tz.text);
    assert.equal(tz.json.details.reason, 'unknown-timezone');
    const past = await scheduleTask(a, { task: 'sample::echo', params: { message: 'x' }, scheduled_time: new Date(Date.now() - 60_000).toISOString() });
    assert.equal(past.status, 400, past.text);
    assert.equal(past.json.details.reason, 'time-in-past');
    const forbidden = await scheduleTask(a, { task: 'sample::count', params: { file: '/dev/null' }, scheduled_time: future }, ECHO_ONLY_TOKEN);
    assert.equal(forbidden.status, 403, forbidden.text);
    assert.equal(forbidden.json.kind, 'puppetlabs.orchestrator/not-permitted');
    const unknownTask = await scheduleTask(a, { task: 'sample::nope', scheduled_time: future });
    assert.equal(unknownTask.status, 404, unknownTask.text);
    const badParams = await scheduleTask(a, { task: 'sample::echo', params: { message: 3 }, scheduled_time: future });
    assert.equal(badParams.status, 400, badParams.text);
    for (const method of ['GET', 'DELETE']) {
      const missing = await a.api('/orchestrator/v1/scheduled_jobs/987654', { method });
      assert.equal(missing.status, 404, missing.text);
      assert.equal(missing.json.kind, 'puppetlabs.orchestrator/not-found');
    }
    const none = await scheduleTask(a, { task: 'sample::echo', params: { message: 'x' } });
    assert.equal(none.status, 400, none.text);
    assert.equal(none.json.details.reason, 'invalid-time');
  });

  it('a cron schedule in a time zone shows its next run; sensitive parameters are never shown; delete answers 204', async () => {
    const res = await scheduleTask(a, { task: 'sample::secret', params: { password: 'hunter2-sched' }, schedule_options: { cron: '0 3 * * *', timezone: 'Europe/Berlin' } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.scheduled_job.name as string;
    const shown = await b!.api(`/orchestrator/v1/scheduled_jobs/${id}`);
    assert.equal(shown.status, 200, shown.text);
    assert.equal(shown.json.params.password, REDACTED);
    assert.notEqual(shown.json.params.password, 'hunter2-sched');
    assert.ok(!shown.text.includes('hunter2-sched'));
    const next = new Date(shown.json.next_run as string);
    const berlinHour = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(next);
    assert.equal(berlinHour, '03:00');
    assert.ok(next.getTime() > Date.now() && next.getTime() <= Date.now() + 86_400_000 + 3_600_000);
    const list = await a.api('/orchestrator/v1/scheduled_jobs?type=task');
    assert.ok((list.json.items as { name: string }[]).some((s) => s.name === id));
    assert.equal(typeof list.json.pagination.total, 'number');
    // An update changes the cron expression; the next run follows.
    const patched = await a.api(`/orchestrator/v1/scheduled_jobs/${id}`, { method: 'PATCH', body: { schedule_options: { cron: '30 4 * * *', timezone: 'Europe/Berlin' } } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(patched.json.next_run as string)), '04:30');
    const badPatch = await a.api(`/orchestrator/v1/scheduled_jobs/${id}`, { method: 'PATCH', body: { schedule_options: { cron: 'not a cron' } } });
    assert.equal(badPatch.status, 400, badPatch.text);
    const del = await a.api(`/orchestrator/v1/scheduled_jobs/${id}`, { method: 'DELETE' });
    assert.equal(del.status, 204, del.text);
    assert.equal((await b!.api(`/orchestrator/v1/scheduled_jobs/${id}`)).status, 404);
    for (const o of [a, b!]) assert.ok(!o.logs.some((l) => JSON.stringify(l).includes('hunter2-sched')), 'the sensitive value is never logged');
  });

  it('a repeating schedule with two orchestrators up starts one job per occurrence; delete stops it', async () => {
    const file = join(work, 'repeat');
    const res = await scheduleTask(a, { task: 'sample::count', params: { file }, schedule_options: { interval: { units: 'seconds', value: INTERVAL_S } } });
    assert.equal(res.status, 202, res.text);
    const id = res.json.scheduled_job.name as string;
    const count = () => a.logs.filter(started(id)).length + b!.logs.filter(started(id)).length;
    while (count() < 3) await bounded(Promise.race([a.waitForNextLog(started(id)), b!.waitForNextLog(started(id))]), 'occurrences');
    const del = await b!.api(`/orchestrator/v1/scheduled_jobs/${id}`, { method: 'DELETE' });
    assert.equal(del.status, 204, del.text);
    const deletedAt = Date.now();
    const startedBefore = count();
    // Two intervals after the deletion, nothing more has started.
    await untilPast(deletedAt + 2 * INTERVAL_S * 1000 + 500);
    assert.equal(count(), startedBefore, 'no occurrence after the delete');
    const jobs = await jobsOf(a, id);
    assert.equal(jobs.length, startedBefore, 'one job per started occurrence');
    const times = jobs.map((j) => Date.parse(j.scheduled_job.scheduled_for)).sort((x, y) => x - y);
    assert.equal(new Set(times).size, times.length, 'each occurrence time once');
    for (let i = 1; i < times.length; i++) assert.equal((times[i]! - times[i - 1]!) % (INTERVAL_S * 1000), 0, 'occurrences on the interval grid');
    for (const j of jobs) await bounded(waitForJobEnd(a, j.name), `job ${j.name}`);
    // The agent ran the task once per job (its own marks, not Baton's records).
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, jobs.length * NODES.length);
    const shown = await a.api(`/orchestrator/v1/jobs/${jobs[0]!.name}`);
    assert.equal(shown.json.scheduled_job.late, false);
  });

  it('baton schedule task, list and delete', async () => {
    const env = { ...process.env, BATON_URL: `https://127.0.0.1:${a.port}`, BATON_TOKEN: ADMIN_TOKEN, BATON_CA: pki.ca };
    const made = await runCli(['schedule', 'task', 'sample::echo', 'message=later', '--nodes', NODES.join(','), '--cron', '15 2 * * 1', '--timezone', 'America/New_York', '--json'], { env });
    assert.equal(made.code, 0, made.stderr);
    const id = (JSON.parse(made.stdout) as { scheduled_job: { name: string } }).scheduled_job.name;
    const list = await runCli(['schedule', 'list'], { env });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^${id} +task sample::echo +cron '15 2 \\* \\* 1' America/New_York`, 'm'));
    const bad = await runCli(['schedule', 'task', 'sample::echo', 'message=x', '--nodes', NODES[0]!, '--cron', '99 * * * *'], { env });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /cron/);
    const del = await runCli(['schedule', 'delete', id], { env });
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await a.api(`/orchestrator/v1/scheduled_jobs/${id}`)).status, 404);
  });

  it('occurrences missed while every orchestrator was down run once, late, when one comes back', async () => {
    const once = join(work, 'once');
    const repeat = join(work, 'missed');
    const t0 = Date.now() + 3_000;
    const one = await scheduleTask(a, { task: 'sample::count', params: { file: once }, scheduled_time: new Date(t0).toISOString() });
    assert.equal(one.status, 202, one.text);
    const rep = await scheduleTask(a, { task: 'sample::count', params: { file: repeat }, scheduled_time: new Date(t0).toISOString(), schedule_options: { interval: { units: 'seconds', value: INTERVAL_S } } });
    assert.equal(rep.status, 202, rep.text);
    const oneId = one.json.scheduled_job.name as string;
    const repId = rep.json.scheduled_job.name as string;
    await a.stop('SIGKILL');
    await b!.stop('SIGKILL');
    b = undefined;
    // Several occurrences of the repeating schedule pass, and the one-off's time, beyond lateness.
    await untilPast(t0 + 3 * INTERVAL_S * 1000 + SCHEDULE_LATE_AFTER_MS);
    assert.equal(existsSync(once), false, 'nothing ran while every orchestrator was down');
    const backAt = Date.now();
    a = await startOrchestratorProcess(common);
    await bounded(a.waitForLog(started(oneId)), 'the missed one-off');
    while (a.logs.filter(started(repId)).length < 2) await bounded(a.waitForNextLog(started(repId)), 'the repeating schedule');
    assert.equal((await a.api(`/orchestrator/v1/scheduled_jobs/${repId}`, { method: 'DELETE' })).status, 204);

    const oneJobs = await jobsOf(a, oneId);
    assert.equal(oneJobs.length, 1, 'the one-off ran once');
    assert.equal(oneJobs[0]!.scheduled_job.late, true);
    assert.equal(Date.parse(oneJobs[0]!.scheduled_job.scheduled_for), t0);
    const oneShown = (await a.api(`/orchestrator/v1/scheduled_jobs/${oneId}`)).json;
    assert.equal(oneShown.last_run.late, true);
    assert.equal(oneShown.last_run.job.name, oneJobs[0]!.name);
    assert.equal(oneShown.next_run, null);

    const repJobs = await jobsOf(a, repId);
    const missed = repJobs.filter((j) => Date.parse(j.scheduled_job.scheduled_for) < backAt);
    assert.equal(missed.length, 1, `the missed occurrences ran once, not once each: ${JSON.stringify(repJobs.map((j) => j.scheduled_job))}`);
    assert.equal(missed[0]!.scheduled_job.late, true);
    assert.ok(repJobs.filter((j) => Date.parse(j.scheduled_job.scheduled_for) >= backAt).every((j) => j.scheduled_job.late === false), 'later occurrences are on time');
    for (const j of [...oneJobs, ...repJobs]) await bounded(waitForJobEnd(a, j.name), `job ${j.name}`);
    assert.equal(readFileSync(once, 'utf8').trim().split('\n').length, 1);
  });
});
