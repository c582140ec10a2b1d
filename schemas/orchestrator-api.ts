// Bodies of the orchestrator's HTTP requests (Puppet orchestrator v1 face).

/** A certificate common name, as PCP has it: no `/`, `*`, white space or control characters. */
const nodeName = { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^/*\\s\\u0000-\\u001f\\u007f-\\u009f]+$' } as const;

/** Re-run scope: the nodes of an earlier job that ended in one of `states`. */
const rerunScope = {
  type: 'object',
  required: ['job'],
  additionalProperties: false,
  properties: {
    job: { anyOf: [{ type: 'string', pattern: '^[0-9]+$' }, { type: 'integer', minimum: 1 }] },
    states: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['finished', 'failed', 'errored', 'skipped'] } },
  },
} as const;

/** PuppetDB AST (an array) or PQL text. */
const query = { anyOf: [{ type: 'array', minItems: 1 }, { type: 'string', minLength: 1 }] } as const;

const taskScopeProperties = {
  nodes: { type: 'array', items: nodeName, maxItems: 100_000 },
  query,
  node_group: { type: 'string', minLength: 1 },
  job: rerunScope,
} as const;

export const commandDeployBodySchema = {
  $id: 'baton:api/puppet/command-deploy',
  type: 'object',
  required: ['environment'],
  additionalProperties: false,
  properties: {
    environment: { type: 'string', minLength: 1 },
    noop: { type: 'boolean' },
    concurrency: { type: 'integer', minimum: 1 },
    scope: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      properties: {
        ...taskScopeProperties,
        application: { type: 'string', minLength: 1 },
        whole_environment: { type: 'boolean' },
      },
    },
    enforce_environment: { type: 'boolean' },
    debug: { type: 'boolean' },
    trace: { type: 'boolean' },
    evaltrace: { type: 'boolean' },
    /** Deprecated: an application or application instance, as scope.application. */
    target: { type: 'string' },
    timeout: { type: 'integer', minimum: 1 },
    description: { type: 'string', maxLength: 4096 },
    userdata: { type: 'object' },
  },
} as const;

export const commandTaskBodySchema = {
  $id: 'baton:api/puppet/command-task',
  type: 'object',
  required: ['task', 'scope'],
  additionalProperties: false,
  properties: {
    environment: { type: 'string', minLength: 1 },
    task: { type: 'string', minLength: 1, maxLength: 256 },
    params: { type: 'object' },
    scope: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      properties: taskScopeProperties,
    },
    noop: { type: 'boolean' },
    timeout: { type: 'integer', minimum: 1 },
    concurrency: { type: 'integer', minimum: 1 },
    description: { type: 'string', maxLength: 4096 },
    userdata: { type: 'object' },
  },
} as const;

export const commandStopBodySchema = {
  $id: 'baton:api/puppet/command-stop',
  type: 'object',
  required: ['job'],
  additionalProperties: false,
  properties: {
    job: { anyOf: [{ type: 'string', pattern: '^[0-9]+$' }, { type: 'integer', minimum: 1 }] },
    force: { type: 'boolean' },
  },
} as const;

export const inventoryBodySchema = {
  $id: 'baton:api/puppet/inventory',
  type: 'object',
  required: ['nodes'],
  additionalProperties: false,
  properties: { nodes: { type: 'array', items: nodeName, maxItems: 100_000 } },
} as const;

export const tokensFileSchema = {
  $id: 'baton:config/tokens',
  type: 'array',
  items: {
    type: 'object',
    required: ['token', 'login', 'permissions'],
    additionalProperties: false,
    properties: {
      token: { type: 'string', minLength: 16 },
      login: { type: 'string', minLength: 1 },
      permissions: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
  },
} as const;

/** Chef Push Jobs: POST /organizations/:org/pushy/jobs. */
/** `PUT /organizations/:org/pushy/jobs/:id`: abort the job. */
export const chefAbortBodySchema = {
  $id: 'baton:api/chef/abort',
  type: 'object',
  additionalProperties: false,
  required: ['status'],
  properties: { status: { type: 'string', const: 'abort' } },
} as const;

export const chefJobBodySchema = {
  $id: 'baton:api/chef/job',
  type: 'object',
  required: ['command', 'nodes'],
  additionalProperties: false,
  properties: {
    command: { type: 'string', minLength: 1, maxLength: 65_536 },
    nodes: { type: 'array', minItems: 1, maxItems: 100_000, items: nodeName },
    run_timeout: { type: 'integer', minimum: 1 },
    quorum: { type: 'integer', minimum: 0 },
    user: { type: 'string', minLength: 1, maxLength: 255 },
    dir: { type: 'string', minLength: 1, maxLength: 4096 },
    env: { type: 'object', additionalProperties: { type: 'string' }, propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
    file: { type: 'string', pattern: '^(raw|base64):' },
    capture_output: { type: 'boolean' },
  },
} as const;

/** A Nomad-style duration: nanoseconds (as Nomad's API sends them) or text such as "10s", "5m", "500ms". */
const nomadDuration = { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h)$' }] } as const;

/** Nomad face: a service spec registered with PUT /v1/jobs ({Job: spec}). */
export const nomadJobSchema = {
  $id: 'baton:api/nomad/job',
  type: 'object',
  required: ['ID', 'TaskGroups'],
  additionalProperties: false,
  properties: {
    ID: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' },
    Name: { type: 'string' },
    TaskGroups: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['Name', 'Scope'],
        additionalProperties: false,
        properties: {
          Name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$' },
          Scope: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            maxProperties: 1,
            properties: { nodes: { type: 'array', minItems: 1, items: nodeName }, query, node_group: { type: 'string', minLength: 1 } },
          },
          Task: {
            type: 'object',
            required: ['task'],
            additionalProperties: false,
            properties: { task: { type: 'string', minLength: 1 }, params: { type: 'object' }, environment: { type: 'string', minLength: 1 } },
          },
          Puppet: {
            type: 'object',
            required: ['environment'],
            additionalProperties: false,
            properties: { environment: { type: 'string', minLength: 1 }, noop: { type: 'boolean' } },
          },
          Update: {
            type: 'object',
            additionalProperties: false,
            properties: {
              MaxParallel: { type: 'integer', minimum: 1 },
              Canary: { type: 'integer', minimum: 0 },
              AutoPromote: { type: 'boolean' },
              AutoRevert: { type: 'boolean' },
              MinHealthyTime: nomadDuration,
              HealthyDeadline: nomadDuration,
              ProgressDeadline: nomadDuration,
              HealthCheck: { enum: ['task_states', 'manual'] },
            },
          },
        },
      },
    },
  },
} as const;

export const nomadRegisterBodySchema = {
  $id: 'baton:api/nomad/register',
  type: 'object',
  required: ['Job'],
  additionalProperties: false,
  properties: { Job: nomadJobSchema, EnforceIndex: { type: 'boolean' }, JobModifyIndex: { type: 'integer' } },
} as const;
