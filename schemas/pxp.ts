// JSON Schemas of PXP v1 (the data of PCP messages between controllers and agents) and of the
// params of the agent's modules.

/** Transaction ids name spool directories, so they are restricted to a safe alphabet. */
export const TRANSACTION_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';
const transactionId = { type: 'string', pattern: TRANSACTION_ID_PATTERN } as const;
const name = { type: 'string', minLength: 1, maxLength: 128 } as const;

export const blockingRequestDataSchema = {
  $id: 'baton:pxp/rpc_blocking_request.data',
  type: 'object',
  required: ['transaction_id', 'module', 'action'],
  additionalProperties: false,
  properties: { transaction_id: transactionId, module: name, action: name, params: { type: 'object' } },
} as const;

export const nonBlockingRequestDataSchema = {
  $id: 'baton:pxp/rpc_non_blocking_request.data',
  type: 'object',
  required: ['transaction_id', 'module', 'action', 'notify_outcome'],
  additionalProperties: false,
  properties: {
    transaction_id: transactionId,
    module: name,
    action: name,
    params: { type: 'object' },
    notify_outcome: { type: 'boolean' },
  },
} as const;

export const responseDataSchema = {
  $id: 'baton:pxp/response.data',
  type: 'object',
  required: ['transaction_id', 'results'],
  properties: { transaction_id: { type: 'string' }, results: {} },
} as const;

export const provisionalResponseDataSchema = {
  $id: 'baton:pxp/rpc_provisional_response.data',
  type: 'object',
  required: ['transaction_id'],
  properties: { transaction_id: { type: 'string' } },
} as const;

export const rpcErrorDataSchema = {
  $id: 'baton:pxp/rpc_error_message.data',
  type: 'object',
  required: ['transaction_id', 'id', 'description'],
  properties: { transaction_id: { type: 'string' }, id: { type: 'string' }, description: { type: 'string' } },
} as const;

// ── module params ──────────────────────────────────────────────────────────────────────────────

export const echoParamsSchema = {
  $id: 'baton:pxp/echo.echo.params',
  type: 'object',
  required: ['argument'],
  additionalProperties: false,
  properties: { argument: { type: 'string' } },
} as const;

export const emptyParamsSchema = { $id: 'baton:pxp/empty.params', type: 'object', additionalProperties: false, properties: {} } as const;

export const statusQueryParamsSchema = {
  $id: 'baton:pxp/status.query.params',
  type: 'object',
  required: ['transaction_id'],
  additionalProperties: false,
  properties: { transaction_id: { type: 'string', minLength: 1, maxLength: 128 } },
} as const;

export const taskFileSchema = {
  type: 'object',
  required: ['filename', 'uri', 'sha256', 'size_bytes'],
  additionalProperties: false,
  properties: {
    filename: { type: 'string', minLength: 1, maxLength: 1024 },
    uri: {
      type: 'object',
      required: ['path'],
      additionalProperties: false,
      properties: {
        path: { type: 'string', minLength: 1, maxLength: 4096 },
        params: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
    size_bytes: { type: 'integer', minimum: 0 },
  },
} as const;

export const taskRunParamsSchema = {
  $id: 'baton:pxp/task.run.params',
  type: 'object',
  required: ['task', 'input', 'files'],
  additionalProperties: false,
  properties: {
    task: { type: 'string', pattern: '^[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)?$' },
    input: { type: 'object' },
    files: { type: 'array', minItems: 1, maxItems: 1000, items: taskFileSchema },
    input_method: { enum: ['stdin', 'environment', 'both'] },
    metadata: { type: 'object' },
    /** Seconds; the whole process group is killed when it is exceeded. */
    timeout: { type: 'integer', minimum: 1 },
  },
} as const;

/** `puppet run`, as Puppet's pxp-module-puppet takes it: flags are checked against a whitelist by the module. */
export const puppetRunParamsSchema = {
  $id: 'baton:pxp/puppet.run.params',
  type: 'object',
  required: ['flags'],
  additionalProperties: false,
  properties: {
    flags: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 1024 } },
    /** The orchestrator's job id; `--job-id` of `puppet agent`. */
    job: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$' },
    /** `KEY=VALUE` strings added to the environment of the puppet process. */
    env: { type: 'array', maxItems: 100, items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*=', maxLength: 65536 } },
  },
} as const;

/** Job ids of the orchestrator (Chef Push Jobs' are 32 hex digits). */
const jobId = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$' } as const;

/**
 * `command commit` and `command run`: a Chef Push Jobs job on this node. Whether the command is
 * whitelisted, and whether dir, user, file and env are usable, is the module's to judge (a commit
 * answers {ack: false, code} rather than an error).
 */
export const commandJobParamsSchema = {
  $id: 'baton:pxp/command.job.params',
  type: 'object',
  required: ['job_id', 'command'],
  additionalProperties: false,
  properties: {
    job_id: jobId,
    /** Looked up in the agent's `command-whitelist`; never run as written. */
    command: { type: 'string', minLength: 1, maxLength: 4096 },
    /** Working directory (absolute); default: the run user's home, else `/`. */
    dir: { type: 'string', minLength: 1, maxLength: 4096 },
    /** The user the command runs as (needs an agent running as root unless it is the agent's own). */
    user: { type: 'string', minLength: 1, maxLength: 256 },
    /** `raw:<text>` or `base64:<data>`: written to a private file named by CHEF_PUSH_JOB_FILE. */
    file: { type: 'string', maxLength: 1_048_576 },
    /** Variables added to the command's environment (names and protected variables are the module's to check). */
    env: { type: 'object', maxProperties: 256, additionalProperties: { type: 'string', maxLength: 65_536 } },
    /** Seconds; the whole process group is killed when it is exceeded. */
    run_timeout: { type: 'integer', minimum: 1 },
    /** Whether the orchestrator keeps the output; the agent spools it either way. */
    capture_output: { type: 'boolean' },
  },
} as const;

/** `command output`: a chunk of a transaction's spooled stdout and stderr, from byte offsets. */
export const commandOutputParamsSchema = {
  $id: 'baton:pxp/command.output.params',
  type: 'object',
  required: ['transaction_id'],
  additionalProperties: false,
  properties: {
    transaction_id: transactionId,
    stdout_offset: { type: 'integer', minimum: 0 },
    stderr_offset: { type: 'integer', minimum: 0 },
    /** Per stream; larger values are capped (defaults.ts COMMAND_OUTPUT_MAX_BYTES). */
    max_bytes: { type: 'integer', minimum: 1 },
  },
} as const;

/** `command release`: the job a node committed to will not run (its quorum failed). */
export const commandReleaseParamsSchema = {
  $id: 'baton:pxp/command.release.params',
  type: 'object',
  required: ['job_id'],
  additionalProperties: false,
  properties: { job_id: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;
