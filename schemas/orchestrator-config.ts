// Configuration of `baton orchestrator`.
import { logLevelSchema, nonEmptyString, tlsConfigProperties } from './common.ts';

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
    /** redis://host:port[/db] */
    redis: { type: 'string', pattern: '^rediss?://' },
    /** Prefix of every Redis key (several orchestrators may share a Redis). */
    'key-prefix': { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    codedir: nonEmptyString,
    'tokens-file': nonEmptyString,
    /** Node runs in flight over all jobs. */
    'task-concurrency': { type: 'integer', minimum: 1 },
    /** Seconds a node run may take when the request gives no timeout. */
    'node-timeout': { type: 'integer', minimum: 1 },
    /** Milliseconds before a node run of a vanished orchestrator is picked up again. */
    'node-run-lock-duration': { type: 'integer', minimum: 1000 },
    'log-level': logLevelSchema,
  },
} as const;
