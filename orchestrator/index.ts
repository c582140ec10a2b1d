// The orchestrator: HTTPS API, job engine on BullMQ/Redis, and its PCP controller session.
import { Redis } from 'ioredis';
import { loadConfig, readConfiguredFile, type ConfigSources } from '../lib/config.ts';
import type { Logger } from '../lib/log.ts';
import { PcpClient } from '../protocol/client/pcp-client.ts';
import { orchestratorConfigSchema } from '../schemas/orchestrator-config.ts';
import { TokenStore } from './auth.ts';
import { BROKER_WAIT_AT_START_MS, DEFAULT_HEALTH_PROBE_INTERVAL_MS, ORCHESTRATOR_DEFAULTS, type OrchestratorConfig, type ResolvedOrchestratorConfig } from './defaults.ts';
import { Engine } from './engine/engine.ts';
import { JobStore } from './engine/store.ts';
import { createHttpServer } from './http/server.ts';
import type { AnyFastify } from './http/puppet/routes.ts';
import { OrchestratorMetrics } from './metrics.ts';
import { InventoryTracker } from './pcp/inventory.ts';
import { PxpRunner } from './pcp/pxp-runner.ts';
import { TaskCatalog } from './tasks/catalog.ts';
import { PuppetserverTaskSource } from './tasks/puppetserver.ts';
import { CodedirTaskSource, type TaskSource } from './tasks/source.ts';
import { Classifier } from './deploy/classifier.ts';
import { FactsStore } from './pcp/facts.ts';
import { PuppetDbClient } from './puppetdb/client.ts';
import { PuppetDbNodes } from './puppetdb/nodes.ts';
import { ChefJobs } from './chef/jobs.ts';
import { VoteLeases } from './chef/votes.ts';
import { OutputStore } from './chef/output.ts';
import { standardKinds } from './engine/kinds/index.ts';
import { ChefOrgs } from './chef/orgs.ts';
import { DEFAULT_CHEF_CLOCK_SKEW_S } from './chef/signing.ts';
import { DeploymentController } from './nomad/controller.ts';
import { NomadStore } from './nomad/store.ts';
import { CHANGES_BLOCK_MS, NomadChanges } from './nomad/changes.ts';
import { ScheduleService } from './schedules/service.ts';
import { PlanService } from './plans/service.ts';
import { OrchestratorHealth, ORCHESTRATOR_SERVICE_NAME } from './health.ts';
import type { PendingConnections } from './http/listener.ts';
import { connectionBudget, openFileLimit } from '../lib/open-files.ts';

export const CONTROLLER_CLIENT_TYPE = 'controller';
export { ORCHESTRATOR_SERVICE_NAME };

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
  private health: OrchestratorHealth | null = null;
  private pending: PendingConnections | null = null;
  private puppetdbClient: PuppetDbClient | null = null;
  private nomadChanges: NomadChanges | null = null;
  private deployments: DeploymentController | null = null;
  private chefVotes: VoteLeases | null = null;
  private puppetserverTasks: PuppetserverTaskSource | null = null;
  private schedules: ScheduleService | null = null;
  private plans: PlanService | null = null;

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
    const tls = {
      ca: readConfiguredFile(c, 'ssl-ca-cert'),
      cert: readConfiguredFile(c, 'ssl-cert'),
      key: readConfiguredFile(c, 'ssl-key'),
      // Revoked agents' certificates are refused for task file downloads.
      ...(c['ssl-crl-path'] ? { crl: readConfiguredFile(c, 'ssl-crl-path') } : {}),
    };
    const tokens = TokenStore.fromFile(c['tokens-file']);
    const orgs = ChefOrgs.fromConfig(c.chef);
    const catalog = new TaskCatalog(c.codedir);
    const tasks = this.taskSource(catalog, tls);
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
    // Every command has a timeout (`redis-timeout`, ioredis commandTimeout): the API fails fast
    // while Redis is away or stalled (503 within the bound); the engine's writes fail just as fast
    // and the engine tries them again (node runs are retried, dispatch reconciled). A command that
    // timed out may still run when Redis comes back: creating writes (jobs, Idempotency-Key
    // reservations, Nomad versions and deployments) therefore carry a deadline their Lua checks
    // against Redis's TIME, so that what the API answered 503 for is never created late.
    const timeoutMs = c['redis-timeout'];
    this.api = redis('api', { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: timeoutMs });
    const apiStore = new JobStore(this.api, c['key-prefix'], { timeoutMs });
    const engineRedis = redis('engine', { maxRetriesPerRequest: null, commandTimeout: timeoutMs });
    const engineStore = new JobStore(engineRedis, c['key-prefix'], { timeoutMs });
    const output = new OutputStore(engineRedis, engineStore.keys, c['max-output-bytes']);
    let chef: ChefJobs | null = null;

    this.client = new PcpClient({
      brokerUris: c['broker-ws-uris'], clientType: CONTROLLER_CLIENT_TYPE, tls, log: this.log, maxMessageDepth: c['max-message-depth'], pcpVersion: c['pcp-version'],
    });
    const inventory = new InventoryTracker(this.client, this.log);
    this.client.start();
    try {
      await this.client.waitConnected(BROKER_WAIT_AT_START_MS);
      await inventory.start();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'no broker yet; the inventory follows once connected');
      this.client.once('connected', () => void inventory.start().catch((e: Error) => this.log.warn({ err: e.message }, 'inventory subscription failed')));
    }

    const runner = new PxpRunner(this.client, { statusQueries: this.metrics.statusQueries });
    this.engine = new Engine({
      kinds: standardKinds({
        keepOutput: async (jobId, node, results) => {
          if ((await chef?.spec(jobId))?.capture_output) await output.save(jobId, node, results.stdout ?? '', results.stderr ?? '');
        },
      }),
      store: engineStore,
      // BullMQ's Queue only adds jobs (non-blocking commands): it takes the timeout like the rest.
      queueConnection: redis('queue', { maxRetriesPerRequest: null, commandTimeout: timeoutMs }),
      // Not the Worker's: BullMQ duplicates this connection for its blocking BZPOPMIN (drainDelay,
      // 5 s by default), and ioredis applies commandTimeout to blocking commands too, so every
      // idle wait longer than redis-timeout would fail with "Command timed out" in a loop (BullMQ
      // issue #2619; BullMQ wants maxRetriesPerRequest null and no command timeout there). BullMQ
      // bounds that wait itself (a watchdog at the block timeout + 1 s resets the connection), and
      // a run whose lock it cannot renew is taken up again by the stalled-job check.
      workerConnection: redis('worker', { maxRetriesPerRequest: null }),
      runner,
      inventory,
      log: this.log,
      taskConcurrency: c['task-concurrency'],
      lockDurationMs: c['node-run-lock-duration'],
      nodeReconnectGraceMs: c['node-reconnect-grace'] * 1000,
    });
    this.engine.on('jobSubmitted', (job) => this.metrics.jobsSubmitted.labels(job.type).inc());
    this.engine.on('nodeEnded', (_job, _node, state) => this.metrics.nodeRuns.labels(state).inc());
    this.chefVotes = new VoteLeases({
      redis: engineRedis, keys: engineStore.keys, log: this.log,
      queueConnection: redis('chef-votes-queue', { maxRetriesPerRequest: null, commandTimeout: timeoutMs }),
      workerConnection: redis('chef-votes-worker', { maxRetriesPerRequest: null }),
    });
    chef = new ChefJobs({
      votes: this.chefVotes,
      engine: this.engine, store: engineStore, redis: engineRedis, keys: engineStore.keys, client: this.client, inventory,
      votingTimeoutS: c['voting-timeout'], orgFeedExpirationS: c['org-feed-expiration'], log: this.log,
    });
    const puppetdb = c.puppetdb ? this.puppetDb(c.puppetdb, tls) : null;
    const facts = puppetdb ? new PuppetDbNodes(puppetdb, inventory) : new FactsStore(this.api, apiStore.keys, this.client, inventory, c['facts-ttl'], this.log);
    const scope = { facts, puppetdb, classifier, store: apiStore, catalog };
    const nomadStore = new NomadStore(engineRedis, c['key-prefix'], { timeoutMs });
    // Blocking queries wake on changes made through any orchestrator: one reader follows them in Redis.
    this.nomadChanges = new NomadChanges(redis('nomad-changes', { maxRetriesPerRequest: null, blockingTimeout: CHANGES_BLOCK_MS + 1_000 }), nomadStore.changesKey());
    this.nomadChanges.start();
    // Deployment deadlines are BullMQ delayed jobs: connections as the engine's (see there).
    const deployments = new DeploymentController({
      store: nomadStore, jobs: engineStore, engine: this.engine, scope, catalog, tasks, inventory, nodeTimeoutS: c['node-timeout'], log: this.log,
      queueConnection: redis('nomad-deadlines-queue', { maxRetriesPerRequest: null, commandTimeout: timeoutMs }),
      workerConnection: redis('nomad-deadlines-worker', { maxRetriesPerRequest: null }),
    });
    this.deployments = deployments;
    // Schedules: BullMQ job schedulers and delayed jobs, connections as the engine's (see there).
    const schedules = new ScheduleService({
      redis: engineRedis, jobs: engineStore, prefix: c['key-prefix'], log: this.log.child({ component: 'schedules' }),
      queueConnection: redis('schedules-queue', { maxRetriesPerRequest: null, commandTimeout: timeoutMs }),
      workerConnection: redis('schedules-worker', { maxRetriesPerRequest: null }),
    });
    this.schedules = schedules;
    // Plan jobs: one BullMQ queue (connections as the engine's), and a reader of the job feeds of its own.
    const plans = new PlanService({
      redis: engineRedis, jobs: engineStore, engine: this.engine, catalog, tasks, prefix: c['key-prefix'], log: this.log.child({ component: 'plans' }),
      queueConnection: redis('plans-queue', { maxRetriesPerRequest: null, commandTimeout: timeoutMs }),
      workerConnection: redis('plans-worker', { maxRetriesPerRequest: null }),
      feedConnection: redis('plans-feed', { maxRetriesPerRequest: null }),
    });
    this.plans = plans;
    // Commands now time out, so start-up waits for Redis itself rather than failing on it.
    await this.redisReady(engineRedis);
    await this.engine.start();
    await chef.recover();
    await deployments.recover();
    this.health = new OrchestratorHealth({
      redis: this.api, redisTimeoutMs: timeoutMs, client: this.client, puppetdb: this.puppetdbClient, puppetdbTimeoutMs: c['puppetdb-timeout'],
      metrics: this.metrics, intervalMs: DEFAULT_HEALTH_PROBE_INTERVAL_MS,
    });
    await this.health.start();

    this.http = createHttpServer({
      tls,
      tokens,
      log: this.log,
      store: apiStore,
      engine: this.engine,
      catalog,
      tasks,
      inventory,
      scope,
      schedules,
      plans,
      nomad: { controller: deployments, store: nomadStore, changes: this.nomadChanges, idempotency: apiStore },
      console: { redis: this.api },
      nodeTimeoutS: c['node-timeout'],
      maxMessageDepth: c['max-message-depth'],
      chefClockSkewS: c.chef?.['clock-skew'] ?? DEFAULT_CHEF_CLOCK_SKEW_S,
      status: async () => this.status(),
      listener: {
        handshakeTimeoutMs: c['tls-handshake-timeout'], headersTimeoutMs: c['headers-timeout'], requestTimeoutMs: c['request-timeout'],
        maxConnections: c['max-connections'] > 0 ? c['max-connections'] : connectionBudget(openFileLimit()),
        maxPendingPerSource: c['max-pending-per-source'],
        refused: (reason) => this.metrics.connectionsRefused[reason].inc(),
        guarded: (pending) => (this.pending = pending),
      },
      chef: {
        chef, orgs, store: apiStore, keys: apiStore.keys, redis: this.api, inventory, output, runner,
        jobFeedLingerS: c['job-feed-linger'], orgFeedExpirationS: c['org-feed-expiration'],
      },
      metrics: async () => ({ contentType: this.metrics.registry.contentType, text: await this.metrics.registry.metrics() }),
    });
    await this.http.listen({ host: c.host, port: c.port });
    // Occurrences start once the face has attached its job builders (at registration).
    await schedules.start();
    await plans.start();
    this.log.info({ host: c.host, port: this.port }, 'listening');
  }

  /** The PuppetDB client of the `puppetdb` config; certificates default to the orchestrator's own. */
  private puppetDb(cfg: NonNullable<ResolvedOrchestratorConfig['puppetdb']>, tls: { ca: Buffer; cert: Buffer; key: Buffer }): PuppetDbClient {
    const file = (key: 'ssl-ca-cert' | 'ssl-cert' | 'ssl-key', fallback: Buffer) => (cfg[key] ? readConfiguredFile(cfg, key, 'puppetdb.') : fallback);
    this.puppetdbClient = new PuppetDbClient({ url: cfg.url, ca: file('ssl-ca-cert', tls.ca), cert: file('ssl-cert', tls.cert), key: file('ssl-key', tls.key), timeoutMs: this.config['puppetdb-timeout'] });
    this.log.info({ url: cfg.url }, 'queries go to PuppetDB');
    return this.puppetdbClient;
  }

  /** The `task-source`: the codedir, or a Puppet server's tasks API (certificates default to the orchestrator's own). */
  private taskSource(catalog: TaskCatalog, tls: { ca: Buffer; cert: Buffer; key: Buffer }): TaskSource {
    const source = this.config['task-source'];
    if (source === 'codedir') return new CodedirTaskSource(catalog);
    const cfg = source.puppetserver;
    const file = (key: 'ssl-ca-cert' | 'ssl-cert' | 'ssl-key', fallback: Buffer) => (cfg[key] ? readConfiguredFile(cfg, key, 'task-source.puppetserver.') : fallback);
    this.puppetserverTasks = new PuppetserverTaskSource({
      url: cfg.url, ca: file('ssl-ca-cert', tls.ca), cert: file('ssl-cert', tls.cert), key: file('ssl-key', tls.key),
      timeoutMs: this.config['puppetserver-timeout'], log: this.log.child({ component: 'task-source' }),
    });
    this.log.info({ url: cfg.url }, 'tasks come from the Puppet server');
    return this.puppetserverTasks;
  }

  private async redisReady(r: Redis): Promise<void> {
    if (r.status === 'ready') return;
    this.log.warn('waiting for Redis before the engine starts');
    await new Promise<void>((resolve) => r.once('ready', () => resolve()));
  }

  /** The status service's document (health.ts): each dependency from its timed probe. */
  async status(): Promise<Record<string, { state: string }>> {
    if (!this.health) return { [ORCHESTRATOR_SERVICE_NAME]: { state: 'starting' } };
    return { [ORCHESTRATOR_SERVICE_NAME]: await this.health.status(this.pending?.size ?? 0) };
  }

  async stop(): Promise<void> {
    this.health?.stopping();
    await this.http?.close();
    this.health?.stop();
    await this.schedules?.close();
    await this.plans?.close();
    await this.deployments?.close();
    await this.chefVotes?.close();
    await this.engine?.close();
    await this.client?.stop();
    await this.nomadChanges?.stop();
    this.puppetdbClient?.close();
    this.puppetserverTasks?.close();
    for (const r of this.redis) r.disconnect();
    this.log.info('stopped');
  }
}
