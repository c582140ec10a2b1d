// Prometheus metrics of one broker. Label children are created up front so that the hot path
// does no label lookups.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CONNECTION_REFUSAL_REASONS, RefusalReason, type ConnectionRefusal } from './errors.ts';

export const SESSION_TYPE_LABELS = ['agent', 'controller', 'other'] as const;
export type SessionTypeLabel = (typeof SESSION_TYPE_LABELS)[number];

export const DISCONNECT_REASONS = ['closed', 'replaced', 'idle_timeout', 'keepalive', 'slow_consumer', 'error', 'shutdown'] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];

export function sessionTypeLabel(type: string): SessionTypeLabel {
  return type === 'agent' || type === 'controller' ? type : 'other';
}

function children<K extends string, V>(keys: readonly K[], make: (k: K) => V): Record<K, V> {
  return Object.fromEntries(keys.map((k) => [k, make(k)])) as Record<K, V>;
}

export class BrokerMetrics {
  readonly registry = new Registry();
  readonly sessions: Record<SessionTypeLabel, { inc(): void; dec(): void }>;
  readonly routed: { inc(): void };
  readonly refused: Record<RefusalReason, { inc(): void }>;
  readonly connectionsRefused: Record<ConnectionRefusal, { inc(): void }>;
  readonly disconnects: Record<DisconnectReason, { inc(): void }>;
  readonly routingSeconds: Histogram;
  /** Fabric: envelopes sent to other brokers, received from them, and fabric messages dropped as malformed. */
  readonly fabricForwarded: { inc(): void };
  readonly fabricReceived: { inc(): void };
  readonly fabricMalformed: { inc(): void };
  /** Sessions by PCP version, and messages received from them (index 1 and 2). */
  readonly sessionsByVersion: Record<1 | 2, { inc(): void; dec(): void }>;
  readonly received: Record<1 | 2, { inc(): void }>;
  /** Connections refused before their TLS handshake because the broker was at its handshake capacity. */
  readonly connectionsShed: { inc(): void };
  /** Connections refused at once because the broker held as many as its open-file limit allows. */
  readonly connectionsAtFileLimit: { inc(): void };
  readonly handshakesInProgress: { inc(): void; dec(): void };
  readonly handshakeQueue: { set(n: number): void };
  readonly handshakeWaitSeconds: { observe(s: number): void };
  /** Health of each dependency from its timed probe: 1 up, 0 down; and the last probe's time. */
  readonly dependencyUp: Gauge;
  readonly dependencyProbeSeconds: Gauge;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'baton_broker_' });
    const sessions = new Gauge({
      name: 'baton_broker_sessions',
      help: 'Sessions connected to this broker, by client type',
      labelNames: ['type'],
      registers,
    });
    this.sessions = children(SESSION_TYPE_LABELS, (t) => sessions.labels(t));
    const byVersion = new Gauge({
      name: 'baton_broker_sessions_by_version',
      help: 'Sessions connected to this broker, by PCP version (1: binary chunks, 2: JSON)',
      labelNames: ['pcp_version'],
      registers,
    });
    this.sessionsByVersion = { 1: byVersion.labels('1'), 2: byVersion.labels('2') };
    const received = new Counter({
      name: 'baton_broker_messages_received_total',
      help: 'Messages received from sessions, by PCP version',
      labelNames: ['pcp_version'],
      registers,
    });
    this.received = { 1: received.labels('1'), 2: received.labels('2') };
    this.routed = new Counter({
      name: 'baton_broker_messages_routed_total',
      help: 'Messages delivered from one client to another',
      registers,
    });
    const refused = new Counter({
      name: 'baton_broker_messages_refused_total',
      help: 'Messages not delivered, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.refused = children(Object.values(RefusalReason), (r) => refused.labels(r));
    const connRefused = new Counter({
      name: 'baton_broker_connections_refused_total',
      help: 'Connections refused or closed before they became sessions, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.connectionsRefused = children(CONNECTION_REFUSAL_REASONS, (r) => connRefused.labels(r));
    const disconnects = new Counter({
      name: 'baton_broker_disconnects_total',
      help: 'Sessions ended, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.disconnects = children(DISCONNECT_REASONS, (r) => disconnects.labels(r));
    this.connectionsShed = new Counter({
      name: 'baton_broker_connections_shed_total',
      help: 'Connections refused (reset before the TLS handshake) because the broker was at max-concurrent-handshakes for handshake-queue-timeout',
      registers,
    });
    this.connectionsAtFileLimit = new Counter({
      name: 'baton_broker_connections_refused_file_limit_total',
      help: 'Connections reset on arrival because the broker held as many connections as its open-file limit allows (the limit less a reserve)',
      registers,
    });
    this.handshakesInProgress = new Gauge({
      name: 'baton_broker_handshakes_in_progress',
      help: 'TLS handshakes in progress (at most max-concurrent-handshakes)',
      registers,
    });
    this.handshakeQueue = new Gauge({
      name: 'baton_broker_handshake_queue_length',
      help: 'Connections waiting for a TLS handshake slot',
      registers,
    });
    this.handshakeWaitSeconds = new Histogram({
      name: 'baton_broker_handshake_wait_seconds',
      help: 'Time a connection waited for a TLS handshake slot',
      buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    });
    this.dependencyUp = new Gauge({
      name: 'baton_broker_dependency_up',
      help: 'Whether a dependency (redis: the fabric) answered its last timed probe in time (1) or not (0)',
      labelNames: ['dependency'],
      registers,
    });
    this.dependencyProbeSeconds = new Gauge({
      name: 'baton_broker_dependency_probe_seconds',
      help: 'Time the last probe of a dependency took (its bound when it timed out)',
      labelNames: ['dependency'],
      registers,
    });
    this.fabricForwarded = new Counter({ name: 'baton_broker_fabric_forwarded_total', help: 'Envelopes sent to the broker of their target over the fabric', registers });
    this.fabricReceived = new Counter({ name: 'baton_broker_fabric_received_total', help: 'Envelopes received from other brokers of the fabric for local sessions', registers });
    this.fabricMalformed = new Counter({ name: 'baton_broker_fabric_malformed_total', help: 'Fabric messages dropped because they were not well formed', registers });
    this.routingSeconds = new Histogram({
      name: 'baton_broker_routing_seconds',
      help: 'Time from receiving a message to handing it to the target connection',
      buckets: [0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers,
    });
  }
}
