// Prometheus metrics of the orchestrator.
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export class OrchestratorMetrics {
  readonly registry = new Registry();
  readonly jobsSubmitted: Counter<'type'>;
  readonly nodeRuns: Counter<'state'>;
  /** `status query` requests sent to agents: ≈ 0 per node run when nothing fails (PxpRunner). */
  readonly statusQueries: Counter;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'baton_orchestrator_' });
    this.jobsSubmitted = new Counter({ name: 'baton_orchestrator_jobs_submitted_total', help: 'Jobs submitted, by type', labelNames: ['type'], registers });
    this.nodeRuns = new Counter({ name: 'baton_orchestrator_node_runs_total', help: 'Node runs ended, by state', labelNames: ['state'], registers });
    this.statusQueries = new Counter({ name: 'baton_orchestrator_status_queries_total', help: 'PXP status queries sent to agents (re-attach, reconnection, unknown request fate, deadline)', registers });
  }
}
