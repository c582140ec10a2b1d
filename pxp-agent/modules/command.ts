// `command commit|run|output`: the node side of Chef Push Jobs. `commit` {job_id, command, dir?,
// user?, file?, env?, run_timeout?, capture_output?} answers {ack: true} or {ack: false, reason,
// code} and holds the node for the job; `run` (same params) runs the whitelisted command line as
// `/bin/sh -c <line> baton-command <captures…>`, one run at a time, results {exitcode, stdout,
// stderr, timed_out?} as every process action; `release` {job_id} lets go of a commitment whose job
// will not run (its quorum failed); `output` reads a transaction's spooled stdout and
// stderr from byte offsets while it runs and after. The rules are in ../command-whitelist.ts.
import { decodeJobFile } from '../../protocol/job-file.ts';
import { chmodSync, chownSync, closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { BatonError } from '../../protocol/errors.ts';
import { compile } from '../../protocol/validate.ts';
import { commandJobParamsSchema, commandOutputParamsSchema, commandReleaseParamsSchema } from '../../schemas/pxp.ts';
import {
  compileWhitelist,
  envProblem,
  matchCommand,
  resolveRunUser,
  shellArgs,
  type CommandMatch,
  type PasswdEntry,
  type RunUser,
} from '../command-whitelist.ts';
import { COMMAND_OUTPUT_MAX_BYTES, SWITCHED_USER_ENV_KEPT, SWITCHED_USER_PATH } from '../defaults.ts';
import { agentEnvironment, type ProcessSpec } from '../process-runner.ts';
import type { TransactionMetadata } from '../spool.ts';
import type { Transactions } from '../transactions.ts';
import type { PxpModule } from './types.ts';

export const COMMAND_MODULE = 'command';

/** Why a job was refused: the `code` of a nack, and `command/<code>` of a refused run. */
export const CommandNack = {
  busy: 'busy',
  notWhitelisted: 'not_whitelisted',
  badDir: 'bad_dir',
  badUser: 'bad_user',
  badFile: 'bad_file',
  badEnv: 'bad_env',
} as const;
export type CommandNack = (typeof CommandNack)[keyof typeof CommandNack];

export class CommandRefused extends BatonError {
  constructor(
    readonly nack: CommandNack,
    reason: string,
  ) {
    super(`command/${nack}`, `command run: ${reason}; nothing was run`);
  }
}

export interface CommandModuleConfig {
  transactions: Transactions;
  /** CHEF_PUSH_NODE_NAME: the agent certificate's common name. */
  nodeName: string;
  /** `command-whitelist`. */
  whitelist: Readonly<Record<string, string>>;
  /** `allowed-overwritable-env-vars`. */
  allowedEnv: readonly string[];
  /** `command-env-allowlist` (empty: any name that is not protected or already set). */
  envAllowlist?: readonly string[];
  /** `command-commit-ttl`, seconds. */
  commitTtlS: number;
}

interface JobParams {
  job_id: string;
  command: string;
  dir?: string;
  user?: string;
  file?: string;
  env?: Record<string, string>;
  run_timeout?: number;
  capture_output?: boolean;
}

interface OutputParams {
  transaction_id: string;
  stdout_offset?: number;
  stderr_offset?: number;
  max_bytes?: number;
}

/** A job that passed every check: what its run needs. */
interface Plan {
  match: CommandMatch;
  user: RunUser;
  file: Buffer | null;
  cwd: string;
}

type Checked = { ok: true; plan: Plan } | { ok: false; code: CommandNack; reason: string };

/** What a run leaves in its spool directory, for whoever sees it end (this agent or a restarted one). */
const RUN_STATE_FILE = 'command-run.json';
const JOB_FILE = 'job-file';

interface RunState {
  job_id: string;
  /** A private directory outside the spool holding the job file of a run as another user. */
  job_file_dir?: string;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function selfUser(): PasswdEntry {
  const uid = process.getuid?.() ?? -1;
  try {
    const u = userInfo();
    return { name: u.username, uid, gid: process.getgid?.() ?? -1, home: u.homedir };
  } catch {
    return { name: String(uid), uid, gid: process.getgid?.() ?? -1, home: '/' };
  }
}

/** At most `maxBytes` of a file from byte `offset` (nothing when there is no file or no more). */
function readChunk(path: string, offset: number, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const n = Math.max(0, Math.min(fstatSync(fd).size - offset, maxBytes));
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const r = readSync(fd, buf, got, n - got, offset + got);
      if (r === 0) break;
      got += r;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** What a run as another user starts with: a standard PATH, its own identity, the locale. */
function switchedUserEnvironment(own: NodeJS.ProcessEnv, user: RunUser): Record<string, string> {
  const env: Record<string, string> = { PATH: SWITCHED_USER_PATH, HOME: user.home, USER: user.name, LOGNAME: user.name };
  for (const k of SWITCHED_USER_ENV_KEPT) if (own[k] !== undefined) env[k] = own[k]!;
  return env;
}

function readRunState(dir: string): RunState | null {
  try {
    return JSON.parse(readFileSync(join(dir, RUN_STATE_FILE), 'utf8')) as RunState;
  } catch {
    return null;
  }
}

export function createCommandModule(config: CommandModuleConfig): PxpModule {
  const whitelist = compileWhitelist(config.whitelist);
  const { transactions } = config;
  const spool = transactions.spool;
  const self = selfUser();
  let committed: { jobId: string; untilMs: number } | null = null;
  /** The command run in progress, found in the spool at start (it may have outlived an agent restart). */
  let running: { transactionId: string; jobId: string } | null = null;
  for (const meta of spool.list()) {
    if (meta.module === COMMAND_MODULE && meta.action === 'run' && meta.status === 'running') {
      running = { transactionId: meta.transaction_id, jobId: readRunState(spool.files(meta.transaction_id).dir)?.job_id ?? '(unknown)' };
    }
  }

  transactions.on('completed', (meta: TransactionMetadata) => {
    if (meta.module !== COMMAND_MODULE || meta.action !== 'run') return;
    if (running?.transactionId === meta.transaction_id) running = null;
    const dir = readRunState(spool.files(meta.transaction_id).dir)?.job_file_dir;
    if (dir) {
      rmSync(join(dir, JOB_FILE), { force: true }); // the one file, never a recursive delete
      try {
        rmdirSync(dir);
      } catch {
        // gone already
      }
    }
  });

  function check(p: JobParams): Checked {
    const match = matchCommand(whitelist, p.command);
    if (!match) return { ok: false, code: CommandNack.notWhitelisted, reason: `'${p.command}' is not in this node's command-whitelist` };
    if (p.dir !== undefined && !(isAbsolute(p.dir) && isDirectory(p.dir))) {
      return { ok: false, code: CommandNack.badDir, reason: `'${p.dir}' is not an absolute path of a directory on this node` };
    }
    const user = resolveRunUser(p.user, self, () => readFileSync('/etc/passwd', 'utf8'));
    if (typeof user === 'string') return { ok: false, code: CommandNack.badUser, reason: user };
    let file: Buffer | null = null;
    if (p.file !== undefined) {
      const decoded = decodeJobFile(p.file);
      if ('problem' in decoded) return { ok: false, code: CommandNack.badFile, reason: decoded.problem };
      file = decoded.content;
    }
    const envWrong = envProblem(p.env ?? {}, config.allowedEnv, { existing: process.env, allowlist: config.envAllowlist ?? [] });
    if (envWrong) return { ok: false, code: CommandNack.badEnv, reason: envWrong };
    const cwd = p.dir ?? (isDirectory(user.home) ? user.home : '/');
    return { ok: true, plan: { match, user, file, cwd } };
  }

  /** Why the node cannot take `jobId` now, or null. */
  function busy(jobId: string): string | null {
    if (running && spool.read(running.transactionId)?.status !== 'running') running = null; // missed its end
    if (running) return `the node is running job ${running.jobId} (transaction ${running.transactionId})`;
    if (committed && committed.untilMs <= Date.now()) committed = null;
    if (committed && committed.jobId !== jobId) {
      return `the node is committed to job ${committed.jobId} for ${Math.ceil((committed.untilMs - Date.now()) / 1000)} more seconds`;
    }
    return null;
  }

  /** Writes the job file where the run user, and only it, can read it; returns its path. */
  function writeJobFile(content: Buffer, spoolDir: string, user: RunUser, state: RunState): string {
    if (!user.switched) {
      const path = join(spoolDir, JOB_FILE);
      writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
      return path;
    }
    // The spool is the agent's alone (no other user may even pass through it), so the file of a
    // run as another user goes to a private directory of that user, removed when the run ends.
    // The directory stays the agent's (0711: the user can reach the file by name, and put nothing in
    // it), so that removing it never follows anything the user made.
    const dir = mkdtempSync(join(tmpdir(), 'baton-command-'));
    chmodSync(dir, 0o711);
    state.job_file_dir = dir;
    writeFileSync(join(spoolDir, RUN_STATE_FILE), JSON.stringify(state), { mode: 0o600 });
    const path = join(dir, JOB_FILE);
    writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
    chownSync(path, user.uid, user.gid);
    return path;
  }

  const validateJob = compile(commandJobParamsSchema);
  return {
    name: COMMAND_MODULE,
    actions: {
      commit: {
        kind: 'instant',
        validate: validateJob,
        run(raw, ctx) {
          const p = raw as unknown as JobParams;
          const checked = check(p);
          const reason = checked.ok ? busy(p.job_id) : checked.reason;
          if (!checked.ok || reason !== null) {
            const code = checked.ok ? CommandNack.busy : checked.code;
            ctx.log.info({ job: p.job_id, command: p.command, code, reason }, 'command commit refused');
            return { ack: false, reason: reason!, code };
          }
          committed = { jobId: p.job_id, untilMs: Date.now() + config.commitTtlS * 1000 };
          ctx.log.info({ job: p.job_id, command: p.command, ttl_s: config.commitTtlS }, 'command committed');
          return { ack: true };
        },
      },
      run: {
        kind: 'process',
        validate: validateJob,
        async prepare(raw, ctx): Promise<ProcessSpec> {
          const p = raw as unknown as JobParams;
          const checked = check(p);
          if (!checked.ok) throw new CommandRefused(checked.code, checked.reason);
          const reason = busy(p.job_id);
          if (reason !== null) throw new CommandRefused(CommandNack.busy, reason);
          // Taken before anything can wait, so that no second run slips in; the commitment is used up.
          running = { transactionId: ctx.transactionId, jobId: p.job_id };
          committed = null;

          const { match, user, file, cwd } = checked.plan;
          const state: RunState = { job_id: p.job_id };
          writeFileSync(join(ctx.files.dir, RUN_STATE_FILE), JSON.stringify(state), { mode: 0o600 });
          const env: Record<string, string> = {
            // Another user gets a plain environment, not the agent's (credentials, sockets, …).
            ...(user.switched ? switchedUserEnvironment(process.env, user) : agentEnvironment(process.env)),
            ...p.env,
            CHEF_PUSH_NODE_NAME: config.nodeName,
            CHEF_PUSH_JOB_ID: p.job_id,
          };
          if (file) {
            // The Push Jobs API names it CHEF_PUSH_JOB_FILE; its own example command uses PUSHY_JOB_FILE.
            env.CHEF_PUSH_JOB_FILE = writeJobFile(file, ctx.files.dir, user, state);
            env.PUSHY_JOB_FILE = env.CHEF_PUSH_JOB_FILE;
          }
          ctx.log.info({ job: p.job_id, command: p.command, whitelist_key: match.key, user: user.name, cwd }, 'starting a command');
          return {
            command: '/bin/sh',
            args: shellArgs(match),
            env,
            cwd,
            ...(p.run_timeout ? { timeoutS: p.run_timeout } : {}),
            ...(user.switched ? { uid: user.uid, gid: user.gid } : {}),
          };
        },
      },
      release: {
        kind: 'instant',
        validate: compile(commandReleaseParamsSchema),
        run(raw, ctx) {
          const { job_id: jobId } = raw as { job_id: string };
          const released = committed?.jobId === jobId;
          if (released) committed = null;
          ctx.log.info({ job: jobId, released }, 'command commitment released');
          return { released };
        },
      },
      output: {
        kind: 'instant',
        validate: compile(commandOutputParamsSchema),
        run(raw) {
          const p = raw as unknown as OutputParams;
          const max = Math.min(p.max_bytes ?? COMMAND_OUTPUT_MAX_BYTES, COMMAND_OUTPUT_MAX_BYTES);
          // The status first: once it says ended, the chunks read after it hold everything.
          const status = spool.read(p.transaction_id)?.status ?? 'unknown';
          const files = spool.files(p.transaction_id);
          const out = status === 'unknown' ? Buffer.alloc(0) : readChunk(files.stdout, p.stdout_offset ?? 0, max);
          const err = status === 'unknown' ? Buffer.alloc(0) : readChunk(files.stderr, p.stderr_offset ?? 0, max);
          return {
            status,
            stdout: out.toString('base64'),
            stdout_offset: (p.stdout_offset ?? 0) + out.length,
            stderr: err.toString('base64'),
            stderr_offset: (p.stderr_offset ?? 0) + err.length,
          };
        },
      },
    },
  };
}
