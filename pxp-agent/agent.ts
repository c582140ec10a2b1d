// The agent: a PCP client session of type `agent`, the PXP dispatcher and its modules, the spool
// and the task cache, wired together.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ConfigErrorCode, readConfiguredFile } from '../lib/config.ts';
import { durationMs } from '../lib/duration.ts';
import type { Logger } from '../lib/log.ts';
import { PcpClient } from '../protocol/client/pcp-client.ts';
import { BrokerMessageType } from '../protocol/message-types.ts';
import type { EnvelopeV2 } from '../protocol/pcp-v2.ts';
import { isPxpRequest } from '../protocol/pxp.ts';
import { parseUri } from '../protocol/uri.ts';
import { PURGE_INTERVAL_MS, type ResolvedAgentConfig } from './defaults.ts';
import { Dispatcher } from './dispatcher.ts';
import { createCommandModule } from './modules/command.ts';
import { echoModule, pingModule } from './modules/echo.ts';
import { createFactsModule } from './modules/facts.ts';
import { createPuppetModule } from './modules/puppet.ts';
import { createStatusModule } from './modules/status.ts';
import { createTaskModule, type TaskModuleConfig } from './modules/task.ts';
import { Spool } from './spool.ts';
import { TaskCache } from './task-cache.ts';
import { Transactions } from './transactions.ts';
import type { PxpModule } from './modules/types.ts';

export const AGENT_CLIENT_TYPE = 'agent';

export class Agent {
  readonly client: PcpClient;
  readonly spool: Spool;
  readonly cache: TaskCache;
  private readonly transactions: Transactions;
  private readonly dispatcher: Dispatcher;
  private purgeTimer: NodeJS.Timeout | null = null;

  /** `modules` replaces modules of the same name (simulated fleets swap in an in-memory task). */
  constructor(
    private readonly config: ResolvedAgentConfig,
    private readonly log: Logger,
    modules: PxpModule[] = [],
  ) {
    const tls = {
      ca: readConfiguredFile(config, 'ssl-ca-cert'),
      cert: readConfiguredFile(config, 'ssl-cert'),
      key: readConfiguredFile(config, 'ssl-key'),
    };
    this.client = new PcpClient({
      brokerUris: config['broker-ws-uris'],
      clientType: AGENT_CLIENT_TYPE,
      tls: { ...tls, ...(config['ssl-crl-path'] ? { crl: readConfiguredFile(config, 'ssl-crl-path') } : {}) },
      log,
      pingIntervalMs: config['ping-interval'] * 1000,
      allowedKeepaliveTimeouts: config['allowed-keepalive-timeouts'],
      connectionTimeoutMs: config['connection-timeout'],
      backoff: {
        ...(config['reconnect-initial-delay'] ? { initialMs: config['reconnect-initial-delay'] } : {}),
        ...(config['reconnect-max-delay'] ? { maxMs: config['reconnect-max-delay'] } : {}),
      },
      maxMessageDepth: config['max-message-depth'],
      pcpVersion: config['pcp-version'],
    });
    this.spool = new Spool(config['spool-dir']);
    this.cache = new TaskCache(config['task-cache-dir'], config['master-uris'], tls, log.child({ component: 'task-cache' }));
    // Modules' own results hooks, found through the dispatcher once it exists.
    this.transactions = new Transactions(this.spool, log, (module, action) => this.dispatcher.processAction(module, action)?.results);
    this.dispatcher = new Dispatcher({
      modules: [
        echoModule,
        pingModule,
        createStatusModule(this.transactions),
        createFactsModule({ environment: config.environment, factsDir: config['facts-dir'] }),
        createTaskModule(this.cache, moduleConfig<TaskModuleConfig>(config['modules-config-dir'], 'task')),
        createPuppetModule({
          bin: config['puppet-bin'],
          command: config['puppet-command'],
          settings: config['puppet-settings'],
          environment: config.environment,
          timeoutS: config['puppet-run-timeout'],
          allowedEnv: config['allowed-overwritable-env-vars'],
          envAllowlist: config['command-env-allowlist'],
        }),
        createCommandModule({
          transactions: this.transactions,
          nodeName: parseUri(this.client.uri).commonName,
          whitelist: config['command-whitelist'],
          allowedEnv: config['allowed-overwritable-env-vars'],
          envAllowlist: config['command-env-allowlist'],
          commitTtlS: config['command-commit-ttl'],
        }),
      ].map((m) => modules.find((o) => o.name === m.name) ?? m),
      transactions: this.transactions,
      send: (env) => this.send(env),
      maxMessageDepth: config['max-message-depth'],
      maxConcurrentActions: config['max-concurrent-actions'],
      log,
    });
  }

  get uri(): string {
    return this.client.uri;
  }

  start(): void {
    this.purge();
    this.purgeTimer = setInterval(() => this.purge(), PURGE_INTERVAL_MS).unref();
    this.transactions.reattach();
    this.client.on('message', (env) => this.onMessage(env));
    this.client.on('connected', () => this.dispatcher.flushUnsent());
    this.client.start();
    this.log.info({ uri: this.uri, brokers: this.config['broker-ws-uris'] }, 'agent started');
  }

  async stop(): Promise<void> {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    await this.transactions.stopAll('the agent shut down while the action ran; its processes were stopped');
    await this.client.stop();
    this.log.info('agent stopped');
  }

  private onMessage(env: EnvelopeV2): void {
    if (isPxpRequest(env)) {
      this.dispatcher.handle(env).catch((err: unknown) => this.log.error({ err: (err as Error).message, id: env.id }, 'request handling failed'));
    } else if (env.message_type === BrokerMessageType.errorMessage) {
      this.log.warn({ in_reply_to: env.in_reply_to, description: env.data }, 'the broker could not deliver a message');
    } else {
      this.log.debug({ message_type: env.message_type, sender: env.sender }, 'ignoring a message that is not a PXP request');
    }
  }

  private send(env: EnvelopeV2): boolean {
    try {
      this.client.send(env);
      return true;
    } catch {
      return false;
    }
  }

  private purge(): void {
    const spooled = this.spool.purge(durationMs(this.config['spool-dir-purge-ttl'], 'spool-dir-purge-ttl'));
    const cached = this.cache.purge(durationMs(this.config['task-cache-dir-purge-ttl'], 'task-cache-dir-purge-ttl'));
    if (spooled + cached > 0) this.log.info({ spool: spooled, task_cache: cached }, 'purged old transactions and task files');
  }
}

/** `<modules-config-dir>/<module>.conf` (JSON), or an empty config. A bad file stops the agent, naming it. */
function moduleConfig<T>(dir: string | undefined, module: string): T {
  if (!dir) return {} as T;
  const path = join(dir, `${module}.conf`);
  if (!existsSync(path)) return {} as T;
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('it must hold a JSON object');
    return value as T;
  } catch (cause) {
    throw new ConfigError(ConfigErrorCode.invalid, `modules-config-dir: ${path} is not usable: ${(cause as Error).message}`, { cause });
  }
}
