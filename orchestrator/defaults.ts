// Defaults of the orchestrator, as data. Units are in the names.
import type { FromSchema } from 'json-schema-to-ts';
import { DEFAULT_MAX_MESSAGE_DEPTH } from '../protocol/json-depth.ts';
import type { orchestratorConfigSchema } from '../schemas/orchestrator-config.ts';

export type OrchestratorConfig = FromSchema<typeof orchestratorConfigSchema>;

export const DEFAULT_ORCHESTRATOR_PORT = 8143;
export const DEFAULT_TASK_CONCURRENCY = 250;
export const DEFAULT_NODE_TIMEOUT_S = 3_600;
/** A node run whose orchestrator died is picked up by another within about 1.5 times this. */
export const DEFAULT_NODE_RUN_LOCK_DURATION_MS = 10_000;
/** Cached facts older than this are asked for again (a node's reconnection also renews them). */
export const DEFAULT_FACTS_TTL_S = 900;
/** Chef face defaults (Chef push jobs' own). */
export const DEFAULT_VOTING_TIMEOUT_S = 60;
export const DEFAULT_CHEF_RUN_TIMEOUT_S = 3_600;
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
export const DEFAULT_JOB_FEED_LINGER_S = 5;
export const DEFAULT_ORG_FEED_EXPIRATION_S = 60;
export const SSE_KEEPALIVE_MS = 15_000;
/** Largest `file` of a Chef job, decoded. */
export const MAX_CHEF_FILE_BYTES = 100 * 1024;
export const MAX_CHEF_BODY_BYTES = 1024 * 1024;
/** A node away at dispatch (or whose request was lost in flight) is waited for this long. */
export const DEFAULT_NODE_RECONNECT_GRACE_S = 60;
/** Every Redis command fails after this long; the API answers 503 within it. */
export const DEFAULT_REDIS_TIMEOUT_MS = 2_000;
/** A PuppetDB query, answer included, must end within this (`puppetdb-timeout`). */
export const DEFAULT_PUPPETDB_TIMEOUT_MS = 10_000;
/** A Puppet server tasks API request, answer included, must end within this (`puppetserver-timeout`). */
export const DEFAULT_PUPPETSERVER_TIMEOUT_MS = 10_000;
/** A TLS handshake at the API must end within this from accept (an absolute deadline, not an idle one). */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** A request head must be complete within this of the handshake (first request) or of its first byte. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** A whole request, body included (bodies reach 10 MB), must be read within this of its first byte. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** Open HTTPS connections: 0 means the process's open-file budget (lib/open-files.ts). */
export const DEFAULT_MAX_CONNECTIONS = 0;
/** Connections without a complete request head per source address (a NATed site of agents fetching task files). */
export const DEFAULT_MAX_PENDING_PER_SOURCE = 1024;
/** Each dependency (Redis, the broker session, PuppetDB) is probed this often; /status reports the last answer. */
export const DEFAULT_HEALTH_PROBE_INTERVAL_MS = 1_000;
/** How long start-up waits for a broker before serving the API anyway. */
export const BROKER_WAIT_AT_START_MS = 5_000;

export const ORCHESTRATOR_DEFAULTS = {
  host: '0.0.0.0',
  port: DEFAULT_ORCHESTRATOR_PORT,
  redis: 'redis://127.0.0.1:6379',
  'key-prefix': 'baton',
  'task-concurrency': DEFAULT_TASK_CONCURRENCY,
  'node-timeout': DEFAULT_NODE_TIMEOUT_S,
  'node-run-lock-duration': DEFAULT_NODE_RUN_LOCK_DURATION_MS,
  'facts-ttl': DEFAULT_FACTS_TTL_S,
  'voting-timeout': DEFAULT_VOTING_TIMEOUT_S,
  'max-output-bytes': DEFAULT_MAX_OUTPUT_BYTES,
  'job-feed-linger': DEFAULT_JOB_FEED_LINGER_S,
  'org-feed-expiration': DEFAULT_ORG_FEED_EXPIRATION_S,
  'node-reconnect-grace': DEFAULT_NODE_RECONNECT_GRACE_S,
  'redis-timeout': DEFAULT_REDIS_TIMEOUT_MS,
  'puppetdb-timeout': DEFAULT_PUPPETDB_TIMEOUT_MS,
  'task-source': 'codedir',
  'puppetserver-timeout': DEFAULT_PUPPETSERVER_TIMEOUT_MS,
  'log-level': 'info',
  'max-message-depth': DEFAULT_MAX_MESSAGE_DEPTH,
  'tls-handshake-timeout': DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  'headers-timeout': DEFAULT_HEADERS_TIMEOUT_MS,
  'request-timeout': DEFAULT_REQUEST_TIMEOUT_MS,
  'max-connections': DEFAULT_MAX_CONNECTIONS,
  'max-pending-per-source': DEFAULT_MAX_PENDING_PER_SOURCE,
} as const satisfies Partial<OrchestratorConfig>;

export type ResolvedOrchestratorConfig = OrchestratorConfig & Required<Pick<OrchestratorConfig, keyof typeof ORCHESTRATOR_DEFAULTS>>;
