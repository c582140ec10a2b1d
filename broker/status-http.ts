// The broker's plain HTTP face on its port: /status/v1/services (the status service's shape) and
// /metrics (Prometheus). Neither needs a client certificate, so that load balancers reach them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DependencyProbe, DependencyReport, StatusAlert } from '../lib/dependency-probe.ts';
import type { BrokerMetrics } from './metrics.ts';
import type { SessionRegistry } from './sessions.ts';

export const BROKER_SERVICE_NAME = 'broker-service';
const SERVICE_VERSION = '0.1.0';

export interface BrokerStatus {
  service_version: string;
  service_status_version: 1;
  detail_level: 'info';
  state: 'running' | 'error' | 'stopping';
  status: {
    sessions: number;
    sessions_by_pcp_version: { '1': number; '2': number };
    unassociated_v1_connections: number;
    /** Connections accepted and not yet sessions (waiting for TLS, in it, or before their upgrade). */
    pending_connections: number;
    uptime_ms: number;
    /** Each dependency from its last timed probe (`redis` in a fabric). */
    dependencies: Record<string, DependencyReport>;
  };
  active_alerts: StatusAlert[];
}

export interface StatusFacts {
  closing: boolean;
  registry: SessionRegistry;
  unassociated: number;
  pending: number;
  startedAtMs: number;
  probes: readonly DependencyProbe[];
}

/** `error`, with an alert per dependency, when a dependency failed its last timed probe. */
export function brokerStatus(f: StatusFacts): BrokerStatus {
  const now = performance.now();
  const alerts = f.probes.flatMap((p) => p.alert(now) ?? []);
  let v1 = 0;
  for (const s of f.registry.values()) if (s.pcpVersion === 1) v1++;
  return {
    service_version: SERVICE_VERSION,
    service_status_version: 1,
    detail_level: 'info',
    state: f.closing ? 'stopping' : alerts.length > 0 ? 'error' : 'running',
    status: {
      sessions: f.registry.size,
      sessions_by_pcp_version: { '1': v1, '2': f.registry.size - v1 },
      unassociated_v1_connections: f.unassociated,
      pending_connections: f.pending,
      uptime_ms: Date.now() - f.startedAtMs,
      dependencies: Object.fromEntries(f.probes.map((p) => [p.name, p.report(now)])),
    },
    active_alerts: alerts,
  };
}

/**
 * A plain (not upgrade) HTTP request. The connection closes after the answer, so that no
 * keep-alive connection waits, without a deadline, for a next request that trickles in.
 */
export function onHttpRequest(req: IncomingMessage, res: ServerResponse, status: () => BrokerStatus, metrics: BrokerMetrics): void {
  res.shouldKeepAlive = false;
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
  if (path === '/status/v1/services' || path === `/status/v1/services/${BROKER_SERVICE_NAME}`) {
    const s = status();
    // As Puppet's status service: 200 if and only if the service is running, else 503.
    return sendJson(res, s.state === 'running' ? 200 : 503, path === '/status/v1/services' ? { [BROKER_SERVICE_NAME]: s } : s);
  }
  if (path === '/metrics') {
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      },
      (err: Error) => sendJson(res, 500, { error: err.message }),
    );
    return;
  }
  sendJson(res, 404, { error: `not found: ${path}` });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
