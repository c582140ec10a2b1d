// The orchestrator: HTTPS API, job engine on BullMQ/Redis, and its PCP controller session.
import { Redis } from 'ioredis';
import { loadConfig, readConfiguredFile, type ConfigSources } from '../lib/config.ts';
import type { Logger } from '../lib/log.ts';
import { PcpClient } from '../protocol/client/pcp-client.ts';
import { orchestratorConfigSchema } from '../schemas/orchestrator-config.ts';
import { TokenStore } from './auth.ts';
import { BROKER_WAIT_AT_START_MS, ORCHESTRATOR_DEFAULTS, type OrchestratorConfig, type ResolvedOrchestratorConfig } from './defaults.ts';
import { Engine } from './engine/engine.ts';
import { JobStore } from './engine/store.ts';
import { createHttpServer } from './http/server.ts';
import type { AnyFastify } from './http/puppet/routes.ts';
import { OrchestratorMetrics } from './metrics.ts';
import { InventoryTracker } from './pcp/inventory.ts';
import { PxpRunner } from './pcp/pxp-runner.ts';
import { TaskCatalog } from './tasks/catalog.ts';
import { Classifier } from './deploy/classifier.ts';
import { FactsStore } from './pcp/facts.ts';
import { ChefJobs } from './chef/jobs.ts';
import { OutputStore } from './chef/output.ts';
import { DeploymentController } from './nomad/controller.ts';
import { NomadStore } from './nomad/store.ts';

export const CONTROLLER_CLIENT_TYPE = 'controller';
export const ORCHESTRATOR_SERVICE_NAME = 'orchestrator-service';

export function resolveOrchestratorConfig(sources: ConfigSources): ResolvedOrchestratorConfig {
  return loadConfig<OrchestratorConfig>(orchestratorConfigSchema, ORCHESTRATOR_DEFAULTS, sources) as ResolvedOrchestratorConfig;
}

export class Orchestrator {
  readonly metrics = new OrchestratorMetrics();
  private readonly redis: Redis[] = [];
  private client!: PcpClient;
  private engine!: Engine;
  private http!: AnyFastify;
  private api!: Redis;

  constructor(
    private readonly config: ResolvedOrchestratorConfig,
    private readonly log: Logger,
  ) {}

  get port(): number {
    const addr = this.http.server.address();
    return typeof addr === 'object' && addr ? addr.port : 0;
  }

  async start(): Promise<void> {
    const c = this.config;
    const tls = { ca: readConfiguredFile(c, 'ssl-ca-cert'), cert: readConfiguredFile(c, 'ssl-cert'), key: readConfiguredFile(c, 'ssl-key') };
    const tokens = TokenStore.fromFile(c['tokens-file']);
    const catalog = new TaskCatalog(c.codedir);
    const classifier = new Classifier(c['classifier-file']);
    const redis = (connection: string, opts: object) => {
      const r = new Redis(c.redis, { lazyConnect: false, ...opts });
      r.on('error', (err) => this.log.debug({ connection, err: err.message }, 'redis connection error'));
      r.on('ready', () => this.log.info({ connection }, 'redis connected'));
      r.on('end', () => this.log.debug({ connection }, 'redis connection ended'));
      r.on('close', () => this.log.warn({ connection }, 'redis connection lost'));
      this.redis.push(r);
      return r;
    };
    // The API fails fast while Redis is away (503); the engine waits for it and goes on.
    this.api = redis('api', { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    const apiStore = new JobStore(this.api, c['key-prefix']);
    const engineRedis = redis('engine', { maxRetriesPerRequest: null });
    const engineStore = new JobStore(engineRedis, c['key-prefix']);
    const output = new OutputStore(engineRedis, engineStore.keys, c['max-output-bytes']);
    let chef: ChefJobs | null = null;

    this.client = new PcpClient({ brokerUris: c['broker-ws-uris'], clientType: CONTROLLER_CLIENT_TYPE, tls, log: this.log });
    const inventory = new InventoryTracker(this.client, this.log);
    this.client.start();
    try {
      await this.client.waitConnected(BROKER_WAIT_AT_START_MS);
      await inventory.start();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'no broker yet; the inventory follows once connected');
      this.client.once('connected', () => void inventory.start().catch((e: Error) => this.log.warn({ err: e.message }, 'inventory subscription failed')));
    }

    const runner = new PxpRunner(this.client);
    this.engine = new Engine({
      outputSink: async (jobId, node, results) => {
        if ((await chef?.spec(jobId))?.capture_output) await output.save(jobId, node, results.stdout ?? '', results.stderr ?? '');
      },
      store: engineStore,
      queueConnection: redis('queue', { maxRetriesPerRequest: null }),
      workerConnection: redis('worker', { maxRetriesPerRequest: null }),
      runner,
      inventory,
      log: this.log,
      taskConcurrency: c['task-concurrency'],
      lockDurationMs: c['node-run-lock-duration'],
    });
    this.engine.on('jobSubmitted', (job) => this.metrics.jobsSubmitted.labels(job.type).inc());
    this.engine.on('nodeEnded', (_job, _node, state) => this.metrics.nodeRuns.labels(state).inc());
    chef = new ChefJobs({
      engine: this.engine, store: engineStore, redis: engineRedis, keys: engineStore.keys, client: this.client, inventory,
      votingTimeoutS: c['voting-timeout'], orgFeedExpirationS: c['org-feed-expiration'], log: this.log,
    });
    const scope = { facts: new FactsStore(this.api, apiStore.keys, this.client, inventory, c['facts-ttl'], this.log), classifier, store: apiStore, catalog };
    const nomadStore = new NomadStore(engineRedis, c['key-prefix']);
    const deployments = new DeploymentController({ store: nomadStore, engine: this.engine, scope, catalog, inventory, nodeTimeoutS: c['node-timeout'], log: this.log });
    await this.engine.start();
    await chef.recover();
    await deployments.recover();

    this.http = createHttpServer({
      tls,
      tokens,
      log: this.log,
      store: apiStore,
      engine: this.engine,
      catalog,
      inventory,
      scope,
      nomad: { controller: deployments, store: nomadStore },
      nodeTimeoutS: c['node-timeout'],
      status: async () => this.status(),
      chef: {
        chef, store: apiStore, keys: apiStore.keys, redis: this.api, inventory, output, runner,
        jobFeedLingerS: c['job-feed-linger'], orgFeedExpirationS: c['org-feed-expiration'],
      },
      metrics: async () => ({ contentType: this.metrics.registry.contentType, text: await this.metrics.registry.metrics() }),
    });
    await this.http.listen({ host: c.host, port: c.port });
    this.log.info({ host: c.host, port: this.port }, 'listening');
  }

  status(): Record<string, unknown> {
    const broker = this.client.connected;
    const redis = this.api.status === 'ready';
    return {
      [ORCHESTRATOR_SERVICE_NAME]: {
        service_version: '0.1.0',
        service_status_version: 1,
        detail_level: 'info',
        state: broker && redis ? 'running' : 'error',
        status: { broker: { connected: broker, uri: this.client.broker }, redis: { connected: redis } },
        active_alerts: [
          ...(broker ? [] : [{ name: 'broker', message: 'not connected to any broker' }]),
          ...(redis ? [] : [{ name: 'redis', message: 'Redis is unavailable' }]),
        ],
      },
    };
  }

  async stop(): Promise<void> {
    await this.http?.close();
    await this.engine?.close();
    await this.client?.stop();
    for (const r of this.redis) r.disconnect();
    this.log.info('stopped');
  }
}
