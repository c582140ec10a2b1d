// Prometheus metrics of the orchestrator.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Why the HTTPS listener refused or closed a connection before it sent a complete request (or
 * while it sent one too slowly): `max_connections` (beyond max-connections, closed at accept),
 * `per_source` (its source address holds max-pending-per-source pending connections, reset at
 * accept), `handshake_timeout` (TLS not done within tls-handshake-timeout), `headers_timeout`
 * (no complete request head within headers-timeout of the handshake, or of a keep-alive
 * request's first byte), `request_timeout` (the request, body included, not read within
 * request-timeout).
 */
export const CONNECTION_REFUSAL_REASONS = ['max_connections', 'per_source', 'handshake_timeout', 'headers_timeout', 'request_timeout'] as const;
export type ConnectionRefusal = (typeof CONNECTION_REFUSAL_REASONS)[number];

export class OrchestratorMetrics {
  readonly registry = new Registry();
  readonly jobsSubmitted: Counter<'type'>;
  readonly nodeRuns: Counter<'state'>;
  /** `status query` requests sent to agents: ≈ 0 per node run when nothing fails (PxpRunner). */
  readonly statusQueries: Counter;
  readonly connectionsRefused: Record<ConnectionRefusal, { inc(): void }>;
  /** Health of each dependency from its timed probe: 1 up, 0 down; and the last probe's time. */
  readonly dependencyUp: Gauge;
  readonly dependencyProbeSeconds: Gauge;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'baton_orchestrator_' });
    this.jobsSubmitted = new Counter({ name: 'baton_orchestrator_jobs_submitted_total', help: 'Jobs submitted, by type', labelNames: ['type'], registers });
    this.nodeRuns = new Counter({ name: 'baton_orchestrator_node_runs_total', help: 'Node runs ended, by state', labelNames: ['state'], registers });
    this.statusQueries = new Counter({ name: 'baton_orchestrator_status_queries_total', help: 'PXP status queries sent to agents (re-attach, reconnection, unknown request fate, deadline)', registers });
    const refused = new Counter({ name: 'baton_orchestrator_connections_refused_total', help: 'HTTPS connections refused at accept or closed at a deadline, by reason', labelNames: ['reason'], registers });
    this.connectionsRefused = Object.fromEntries(CONNECTION_REFUSAL_REASONS.map((r) => [r, refused.labels(r)])) as Record<ConnectionRefusal, { inc(): void }>;
    this.dependencyUp = new Gauge({ name: 'baton_orchestrator_dependency_up', help: 'Whether a dependency (redis, broker, puppetdb) answered its last timed probe in time (1) or not (0)', labelNames: ['dependency'], registers });
    this.dependencyProbeSeconds = new Gauge({ name: 'baton_orchestrator_dependency_probe_seconds', help: 'Time the last probe of a dependency took (its bound when it timed out)', labelNames: ['dependency'], registers });
  }
}
