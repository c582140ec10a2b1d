// Configuration of `baton broker` (keys follow pcp-broker's names where they exist).
// Defaults live in broker/defaults.ts; this schema only says what a value may be.
import { logLevelSchema, tlsConfigProperties } from './common.ts';

const glob = { type: 'string', minLength: 1, maxLength: 1024 } as const;

export const authorizationRuleSchema = {
  type: 'object',
  required: ['allow'],
  additionalProperties: false,
  properties: {
    sender: glob,
    target: glob,
    message_type: glob,
    allow: { type: 'boolean' },
  },
} as const;

export const brokerConfigSchema = {
  $id: 'baton:config/broker',
  type: 'object',
  additionalProperties: false,
  required: ['ssl-ca-cert', 'ssl-cert', 'ssl-key'],
  properties: {
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    ...tlsConfigProperties,
    'controller-cns': { type: 'array', items: glob },
    'max-message-size': { type: 'integer', minimum: 1024 },
    /** Deepest nesting of arrays and objects accepted in one JSON message; deeper ones are refused unparsed. */
    'max-message-depth': { type: 'integer', minimum: 2, maximum: 10000 },
    'max-connections': { type: 'integer', minimum: 0 },
    'idle-timeout': { type: 'integer', minimum: 10 },
    'ping-interval': { type: 'integer', minimum: 10 },
    'max-send-buffer-size': { type: 'integer', minimum: 1024 },
    'inventory-update-interval': { type: 'integer', minimum: 1 },
    /** Milliseconds from the start of a TLS handshake to its end; a slower one is closed. */
    'tls-handshake-timeout': { type: 'integer', minimum: 10 },
    /** Milliseconds from the end of the TLS handshake to a complete HTTP (upgrade) request; a slower connection is closed. */
    'upgrade-timeout': { type: 'integer', minimum: 10 },
    /** Connections not yet upgraded that one source address may hold (0: unlimited); more are reset at accept. */
    'max-pending-per-source': { type: 'integer', minimum: 0 },
    /** TLS handshakes in progress at once (0: unlimited); further connections wait for a slot. */
    'max-concurrent-handshakes': { type: 'integer', minimum: 0 },
    /** Milliseconds a connection may wait for a handshake slot before it is refused as "busy". */
    'handshake-queue-timeout': { type: 'integer', minimum: 0 },
    /** Milliseconds a PCP v1 connection may stay open without a successful association. */
    'association-timeout': { type: 'integer', minimum: 10 },
    /** Milliseconds to live the broker gives a v2 message it translates to PCP v1 (`expires`). */
    'message-ttl': { type: 'integer', minimum: 10 },
    'log-level': logLevelSchema,
    /** Broker processes sharing the port: "N" or "auto" (one per core), a string as in the flag. More than 1 runs a supervisor. */
    workers: { type: 'string', pattern: '^(auto|[1-9][0-9]{0,3})$' },
    /** Several brokers as one: they share this Redis (session directory, leases, routing between brokers). */
    fabric: {
      type: 'object',
      additionalProperties: false,
      required: ['redis'],
      properties: {
        redis: { type: 'string', pattern: '^rediss?://' },
        /** This broker's name in the fabric (default host:port:pid); unique among the fabric's brokers. */
        'broker-id': { type: 'string', minLength: 1, maxLength: 256, pattern: '^[^\\s]+$' },
        /** The prefix of the fabric's Redis keys and channels (default baton). */
        'key-prefix': { type: 'string', minLength: 1, maxLength: 64 },
        /** Milliseconds any one fabric Redis command may take, the health PING included (default 2000). */
        'redis-timeout': { type: 'integer', minimum: 100 },
      },
    },
    authorization: {
      type: 'object',
      additionalProperties: false,
      properties: {
        rules: { type: 'array', items: authorizationRuleSchema },
      },
    },
  },
} as const;
