// Configuration of `baton orchestrator`.
import { logLevelSchema, nonEmptyString, tlsConfigProperties } from './common.ts';

/** A neighbour service over HTTPS (PuppetDB, a Puppet server): its URL and, optionally, other TLS files. */
const httpsServiceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', pattern: '^https://' },
    /** PEM files; each defaults to the orchestrator's own. */
    'ssl-ca-cert': nonEmptyString,
    'ssl-cert': nonEmptyString,
    'ssl-key': nonEmptyString,
  },
} as const;

/**
 * `task-source`: "codedir" or `{puppetserver: {url, ssl-*?}}`. Typed with an absent `type` as
 * well, so that it reads as a property schema to lib/config.ts (which coerces by `type`).
 */
const taskSourceAnyOf = {
  anyOf: [
    { type: 'string', enum: ['codedir'] },
    {
      type: 'object',
      additionalProperties: false,
      required: ['puppetserver'],
      properties: {
        puppetserver: httpsServiceSchema,
      },
    },
  ],
} as const;
const taskSourceSchema = taskSourceAnyOf as typeof taskSourceAnyOf & { readonly type?: undefined };

/** `chef`: the Chef face's organizations, their clients' public keys, nodes and permissions. */
const chefConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['organizations'],
  properties: {
    organizations: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['clients', 'nodes'],
        properties: {
          /** Client name → path to its RSA public key (PEM). */
          clients: { type: 'object', additionalProperties: nonEmptyString },
          /** Node name globs (`*`, `?`) of the organization's nodes. */
          nodes: { type: 'array', items: nonEmptyString },
          /** Client name → its permissions (as in the tokens file); default jobs:view, jobs:run, jobs:stop, inventory:view. */
          permissions: { type: 'object', additionalProperties: { type: 'array', items: nonEmptyString } },
        },
      },
    },
    /** Seconds a signed request's X-Ops-Timestamp may differ from the orchestrator's clock. */
    'clock-skew': { type: 'integer', minimum: 1 },
  },
} as const;

export const orchestratorConfigSchema = {
  $id: 'baton:config/orchestrator',
  type: 'object',
  additionalProperties: false,
  required: ['ssl-ca-cert', 'ssl-cert', 'ssl-key', 'broker-ws-uris', 'codedir', 'tokens-file'],
  properties: {
    host: nonEmptyString,
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    ...tlsConfigProperties,
    'broker-ws-uris': { type: 'array', minItems: 1, items: { type: 'string', pattern: '^wss://' } },
    /** PCP version of the broker session (as pxp-agent's): "2" (default) at `.../pcp2/`, "1" at `.../pcp/`. */
    'pcp-version': { type: 'string', enum: ['1', '2'] },
    /** redis://host:port[/db] */
    redis: { type: 'string', pattern: '^rediss?://' },
    /** Prefix of every Redis key (several orchestrators may share a Redis). */
    'key-prefix': { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    codedir: nonEmptyString,
    'tokens-file': nonEmptyString,
    /** JSON file of node groups ({groups: [{name, environment, rule}]}); none: no groups. */
    'classifier-file': nonEmptyString,
    /** Seconds a node's cached facts are used before they are asked for again. */
    'facts-ttl': { type: 'integer', minimum: 0 },
    /** Node runs in flight over all jobs. */
    'task-concurrency': { type: 'integer', minimum: 1 },
    /** Seconds a node run may take when the request gives no timeout. */
    'node-timeout': { type: 'integer', minimum: 1 },
    /** Milliseconds before a node run of a vanished orchestrator is picked up again. */
    'node-run-lock-duration': { type: 'integer', minimum: 1000 },
    /** Chef face: seconds nodes have to answer a job's commit before they count as unavailable. */
    'voting-timeout': { type: 'integer', minimum: 1 },
    /** Chef face: captured output kept per node and channel (bytes); the end is kept. */
    'max-output-bytes': { type: 'integer', minimum: 1024 },
    /** Chef face: seconds after a job completes during which its feed still replays every event. */
    'job-feed-linger': { type: 'integer', minimum: 0 },
    /** Chef face: seconds organisation feed events are kept. */
    'org-feed-expiration': { type: 'integer', minimum: 1 },
    /** Seconds the engine waits for a node that is away (or lost a request in flight) before it fails a run that never started. */
    'node-reconnect-grace': { type: 'integer', minimum: 0 },
    /** Milliseconds any one Redis command may take before it fails (the API then answers 503); also the bound of the health PING. */
    'redis-timeout': { type: 'integer', minimum: 100 },
    /** Milliseconds from accepting a connection to the end of its TLS handshake; a slower one is closed. */
    'tls-handshake-timeout': { type: 'integer', minimum: 10 },
    /** Milliseconds for a complete request head: from the end of the TLS handshake (first request) or from a request's first byte; a slower connection is closed. */
    'headers-timeout': { type: 'integer', minimum: 10 },
    /** Milliseconds for a whole request, body included, from its first byte; the response (an event stream, a blocking query) is not bounded by it. */
    'request-timeout': { type: 'integer', minimum: 10 },
    /** Open HTTPS connections, those in TLS handshake included (0: the process's open-file budget); more are closed at accept. */
    'max-connections': { type: 'integer', minimum: 0 },
    /** Connections without a complete request head that one source address may hold (0: unlimited); more are reset at accept. */
    'max-pending-per-source': { type: 'integer', minimum: 0 },
    /** Deepest nesting of arrays and objects accepted in one JSON message or request body; deeper ones are refused unparsed. */
    'max-message-depth': { type: 'integer', minimum: 2, maximum: 10000 },
    /** PuppetDB as the node query source: `query` scopes, environments and inventory facts come from it. */
    puppetdb: httpsServiceSchema,
    /** Milliseconds a PuppetDB query may take, answer included, before the API answers 503 puppetdb-error. */
    'puppetdb-timeout': { type: 'integer', minimum: 100 },
    /**
     * Where task metadata and file URIs come from: "codedir" (default; the orchestrator serves the
     * files itself) or a Puppet server's tasks API (agents download the files from it).
     */
    'task-source': taskSourceSchema,
    /** Milliseconds a Puppet server tasks API request may take, answer included, before the API answers 503. */
    'puppetserver-timeout': { type: 'integer', minimum: 100 },
    /** Chef face organizations; without it every organization name is served to token holders, with every node. */
    chef: chefConfigSchema,
    'log-level': logLevelSchema,
  },
} as const;

// The Puppet server's tasks API (`/puppet/v3/tasks`), as the orchestrator reads it with
// `task-source: {puppetserver}`. Its answers are checked against these before they are used.

const puppetserverTaskFile = {
  type: 'object',
  required: ['filename', 'sha256', 'size_bytes', 'uri'],
  properties: {
    filename: { type: 'string', minLength: 1, maxLength: 1024 },
    sha256: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
    size_bytes: { type: 'integer', minimum: 0 },
    uri: {
      type: 'object',
      required: ['path', 'params'],
      properties: {
        path: { type: 'string', minLength: 1, maxLength: 4096, pattern: '^/puppet/v3/(file_content|static_file_content)/[^?#\\\\]+$' },
        params: {
          type: 'object',
          required: ['environment'],
          additionalProperties: false,
          properties: { environment: { type: 'string', minLength: 1 }, code_id: { anyOf: [{ type: 'string' }, { type: 'null' }] } },
        },
      },
    },
  },
} as const;

/** `GET /puppet/v3/tasks/<module>/<task>?environment=`: one task's metadata and files. */
export const puppetserverTaskDetailsSchema = {
  $id: 'baton:puppetserver/task-details',
  type: 'object',
  required: ['metadata', 'files'],
  properties: {
    name: { type: 'string' },
    metadata: {
      type: 'object',
      properties: {
        description: { type: 'string' },
        parameters: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            properties: { type: { type: 'string' }, description: { type: 'string' }, sensitive: { type: 'boolean' } },
          },
        },
        input_method: { type: 'string' },
        supports_noop: { type: 'boolean' },
        private: { type: 'boolean' },
        implementations: {
          type: 'array',
          items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, requirements: { type: 'array', items: { type: 'string' } } } },
        },
      },
    },
    files: { type: 'array', minItems: 1, maxItems: 1000, items: puppetserverTaskFile },
  },
} as const;

/** `GET /puppet/v3/tasks?environment=`: the tasks of an environment. */
export const puppetserverTaskListSchema = {
  $id: 'baton:puppetserver/task-list',
  type: 'array',
  maxItems: 100000,
  items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
} as const;

/** A node group's rule: a query (PuppetDB AST or PQL text) or the names of its nodes. */
const groupRule = {
  anyOf: [
    { type: 'string', minLength: 1 },
    { type: 'array', minItems: 1 },
    {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      properties: { nodes: { type: 'array', items: nonEmptyString }, query: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1 }] } },
    },
  ],
} as const;

export const classifierFileSchema = {
  $id: 'baton:config/classifier',
  type: 'object',
  additionalProperties: false,
  required: ['groups'],
  properties: {
    groups: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'rule'],
        properties: {
          name: nonEmptyString,
          environment: { type: 'string', pattern: '^[a-z0-9_]+$' },
          description: { type: 'string' },
          rule: groupRule,
        },
      },
    },
  },
} as const;

const componentName = { type: 'string', pattern: '^[A-Z][A-Za-z0-9_]*(::[A-Z][A-Za-z0-9_]*)*\\[[^\\]]+\\]$' } as const;

/** `codedir/environments/<env>/applications.json`: application instances made of components. */
export const applicationsFileSchema = {
  $id: 'baton:codedir/applications',
  type: 'object',
  additionalProperties: false,
  required: ['applications'],
  properties: {
    applications: {
      type: 'object',
      propertyNames: componentName,
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['components'],
        properties: {
          components: {
            type: 'object',
            propertyNames: componentName,
            minProperties: 1,
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              required: ['nodes'],
              properties: {
                nodes: { type: 'array', items: nonEmptyString },
                requires: { type: 'array', items: componentName },
              },
            },
          },
        },
      },
    },
  },
} as const;
