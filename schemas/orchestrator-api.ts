// Bodies of the orchestrator's HTTP requests (Puppet orchestrator v1 face).

const nodeName = { type: 'string', minLength: 1, maxLength: 255, pattern: '^[^/*\\s]+$' } as const;

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
      properties: {
        nodes: { type: 'array', items: nodeName, maxItems: 100_000 },
        query: {},
        node_group: { type: 'string' },
      },
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
