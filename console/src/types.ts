// What the console reads from the API (the fields it uses).
export interface Me {
  login: string;
  permissions: string[];
  can: { view_jobs: boolean; run_jobs: boolean; stop_jobs: boolean; view_inventory: boolean; view_tasks: boolean };
}

export interface JobJson {
  id: string;
  name: string;
  type: string;
  state: string;
  owner: { login: string };
  description: string;
  environment: { name: string };
  options: Record<string, unknown> & { task?: string; params?: Record<string, unknown>; scope?: Record<string, unknown>; noop?: boolean; concurrency?: number | null; timeout?: number; org?: string };
  created_timestamp: string | null;
  started_timestamp: string | null;
  finished_timestamp: string | null;
  duration: number | null;
  node_count: number;
  node_states: Record<string, number>;
  org?: string;
}

export interface NodeJson {
  name: string;
  state: string;
  start_timestamp: string | null;
  finish_timestamp: string | null;
  duration: number | null;
  details: Record<string, unknown>;
  result: unknown;
  'latest-event-id': number | null;
}

export interface EventJson {
  id: string;
  type: string;
  timestamp: string;
  details: { node?: string; [k: string]: unknown };
  message: string;
}

export interface InventoryNode {
  name: string;
  connected: boolean;
  broker: string | null;
  timestamp: string | null;
  facts?: Record<string, unknown>;
}

export interface TaskParameter {
  type?: string;
  description?: string;
  sensitive?: boolean;
  default?: unknown;
}

export interface TaskJson {
  name: string;
  metadata: { description?: string; parameters?: Record<string, TaskParameter>; supports_noop?: boolean };
}

export interface GroupState {
  Promoted: boolean;
  AutoPromote: boolean;
  DesiredCanaries: number;
  DesiredTotal: number;
  PlacedCanaries: string[] | null;
  PlacedAllocs: number;
  HealthyAllocs: number;
  UnhealthyAllocs: number;
}

export interface DeploymentJson {
  ID: string;
  JobID: string;
  JobVersion: number;
  Status: string;
  StatusDescription: string;
  TaskGroups: Record<string, GroupState>;
  CreateIndex: number;
  ModifyIndex: number;
}
