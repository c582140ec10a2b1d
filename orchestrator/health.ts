// The orchestrator's status service (`/status/v1/services`): each dependency from a timed probe on
// a timer (lib/dependency-probe.ts), never from whether a connection object exists. Redis answers
// a PING within redis-timeout; the broker session answers a WebSocket ping; PuppetDB (when
// configured) its status service within puppetdb-timeout. The state is `running` only when every
// probe's last answer was good; anything else is `error` with an alert per dependency, and the
// route answers 503 (as Puppet's status service and the broker do), so that a load balancer can act.
import type { Redis } from 'ioredis';
import { DependencyProbe, type DependencyReport, type StatusAlert } from '../lib/dependency-probe.ts';
import type { PcpClient } from '../protocol/client/pcp-client.ts';
import type { OrchestratorMetrics } from './metrics.ts';
import type { PuppetDbClient } from './puppetdb/client.ts';

export const ORCHESTRATOR_SERVICE_NAME = 'orchestrator-service';
const SERVICE_VERSION = '0.1.0';
/** The broker session must answer a WebSocket ping within this. */
export const BROKER_PING_TIMEOUT_MS = 2_000;

export interface OrchestratorStatus {
  service_version: string;
  service_status_version: 1;
  detail_level: 'info';
  state: 'running' | 'error' | 'starting' | 'stopping';
  status: {
    uptime_ms: number;
    /** HTTPS connections accepted that have not sent a complete request head yet. */
    pending_connections: number;
    broker: { connected: boolean; uri: string | null };
    redis: { connected: boolean; timeout_ms: number };
    /** Each dependency from its last timed probe: `redis`, `broker`, and `puppetdb` when configured. */
    dependencies: Record<string, DependencyReport & { uri?: string | null; session_age_ms?: number; last_pong_ms_ago?: number | null }>;
  };
  active_alerts: StatusAlert[];
}

export interface HealthOptions {
  redis: Redis;
  redisTimeoutMs: number;
  client: PcpClient;
  puppetdb: PuppetDbClient | null;
  puppetdbTimeoutMs: number;
  metrics: OrchestratorMetrics;
  intervalMs: number;
}

export class OrchestratorHealth {
  private readonly probes: DependencyProbe[] = [];
  private started = false;
  private closing = false;
  private readonly startedAtMs = Date.now();

  constructor(private readonly o: HealthOptions) {
    const probe = (name: string, run: () => Promise<unknown>, timeoutMs: number) =>
      this.probes.push(new DependencyProbe({ name, probe: run, intervalMs: o.intervalMs, timeoutMs, up: o.metrics.dependencyUp, seconds: o.metrics.dependencyProbeSeconds }));
    // A connected but stalled Redis never answers: the probe's bound says so.
    probe('redis', () => o.redis.ping(), o.redisTimeoutMs);
    probe('broker', () => o.client.ping(BROKER_PING_TIMEOUT_MS), BROKER_PING_TIMEOUT_MS);
    const puppetdb = o.puppetdb;
    if (puppetdb) probe('puppetdb', () => puppetdb.ping(o.puppetdbTimeoutMs), o.puppetdbTimeoutMs);
  }

  /** Starts probing; resolves once every first probe has an answer (each within its bound). */
  async start(): Promise<void> {
    await Promise.all(this.probes.map((p) => p.start()));
    this.started = true;
  }

  /** The service is stopping: /status says so (503) while the server drains. */
  stopping(): void {
    this.closing = true;
  }

  stop(): void {
    this.closing = true;
    for (const p of this.probes) p.stop();
  }

  /**
   * The status document, from a probe of each dependency made now (joined with one under way, so
   * that many status requests make one probe each): a stall shows at the first request after it,
   * within the probe's bound, and a recovery at once. The timer's probes keep /metrics current.
   */
  async status(pendingConnections: number): Promise<OrchestratorStatus> {
    await Promise.all(this.probes.map((p) => p.refresh()));
    const now = performance.now();
    const alerts = this.probes.flatMap((p) => p.alert(now) ?? []);
    const dependencies: OrchestratorStatus['status']['dependencies'] = {};
    for (const p of this.probes) dependencies[p.name] = p.report(now);
    const session = this.o.client.session;
    dependencies.broker = {
      ...dependencies.broker!,
      uri: session?.broker ?? null,
      ...(session ? { session_age_ms: Date.now() - session.sinceMs, last_pong_ms_ago: session.lastPongMs === null ? null : Date.now() - session.lastPongMs } : {}),
    };
    const up = (name: string) => dependencies[name]?.state === 'running';
    return {
      service_version: SERVICE_VERSION,
      service_status_version: 1,
      detail_level: 'info',
      state: this.closing ? 'stopping' : !this.started ? 'starting' : alerts.length > 0 ? 'error' : 'running',
      status: {
        uptime_ms: Date.now() - this.startedAtMs,
        pending_connections: pendingConnections,
        // The short forms of earlier versions, from the same probes.
        broker: { connected: session !== null && up('broker'), uri: session?.broker ?? null },
        redis: { connected: up('redis'), timeout_ms: this.o.redisTimeoutMs },
        dependencies,
      },
      active_alerts: alerts,
    };
  }
}
