// What the Puppet orchestrator v1 face works with, and its defaults: shared by its route modules.
import type { ScopeContext } from '../../deploy/scope.ts';
import type { Engine } from '../../engine/engine.ts';
import type { JobStore } from '../../engine/store.ts';
import type { InventoryTracker } from '../../pcp/inventory.ts';
import type { PlanService } from '../../plans/service.ts';
import type { ScheduleService } from '../../schedules/service.ts';
import type { TaskCatalog } from '../../tasks/catalog.ts';
import type { TaskSource } from '../../tasks/source.ts';

export const PUPPET_PREFIX = '/orchestrator/v1';
export const DEFAULT_ENVIRONMENT = 'production';
export const DEFAULT_PAGE_LIMIT = 50;

export interface PuppetFaceContext {
  store: JobStore;
  engine: Engine;
  /** The codedir: environments, applications and the files the orchestrator serves. */
  catalog: TaskCatalog;
  /** Task metadata and file entries (the codedir, or a Puppet server's tasks API). */
  tasks: TaskSource;
  inventory: InventoryTracker;
  scope: ScopeContext;
  nodeTimeoutS: number;
  /** Schedules (one-off, interval, cron) shared by every orchestrator on the Redis. */
  schedules: ScheduleService;
  /** YAML plans: plan jobs run by every orchestrator on the Redis. */
  plans: PlanService;
}
