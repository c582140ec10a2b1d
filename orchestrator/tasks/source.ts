// Where the orchestrator reads tasks from: the codedir (TaskCatalog, files served by the
// orchestrator itself) or a Puppet server's tasks API (files served by the Puppet server). Both
// answer the same TaskDescription, with the same error codes (catalog.ts TaskErrorCode).
import type { TaskCatalog, TaskDescription } from './catalog.ts';

export const TaskSourceKind = { codedir: 'codedir', puppetserver: 'puppetserver' } as const;
export type TaskSourceKind = (typeof TaskSourceKind)[keyof typeof TaskSourceKind];

export interface TaskSource {
  readonly kind: TaskSourceKind;
  /** Every task of an environment, by name (`module` for an init task); `unknown-environment` if none. */
  list(environment: string): Promise<string[]>;
  /** One task's metadata and file entries (`unknown-task`, `unknown-environment`, `invalid-task-metadata`, `service-unavailable`). */
  describe(environment: string, name: string): Promise<TaskDescription>;
}

/** Today's behaviour: tasks are files under codedir, and the orchestrator serves them. */
export class CodedirTaskSource implements TaskSource {
  readonly kind = TaskSourceKind.codedir;

  constructor(private readonly catalog: TaskCatalog) {}

  async list(environment: string): Promise<string[]> {
    return this.catalog.list(environment);
  }

  async describe(environment: string, name: string): Promise<TaskDescription> {
    return this.catalog.describe(environment, name);
  }
}
