// A job's scope → its nodes: a list, a query over the inventory, a node group, the nodes of an
// earlier job in given states, an application, or a whole environment. Shared by task and deploy.
import { BatonError } from '../../protocol/errors.ts';
import type { JobStore, NodeState } from '../engine/store.ts';
import { apiError, ApiErrorCode } from '../http/errors.ts';
import { PuppetDbError, PuppetDbErrorCode, type PuppetDbClient } from '../puppetdb/client.ts';
import { parseQuery, QueryError, selectNodes, type NodeFacts } from '../query/index.ts';
import type { TaskCatalog } from '../tasks/catalog.ts';
import { ApplicationErrorCode, instancesOf, loadApplications, orderInstances, type OrderedNodes } from './applications.ts';
import type { Classifier } from './classifier.ts';

export const DEFAULT_RERUN_STATES: readonly NodeState[] = ['failed', 'errored'];

export interface Scope {
  nodes?: string[];
  query?: unknown;
  node_group?: string;
  job?: { job: string | number; states?: string[] };
  application?: string;
  whole_environment?: boolean;
}

/** Where the inventory comes from: Baton's own fact store, or PuppetDB (puppetdb/nodes.ts). */
export interface NodeSource {
  /** `environments`: only each node's environment is wanted (a source may then answer from what it kept longer). */
  nodes(opts: { facts: boolean; environments?: boolean }): Promise<NodeFacts[]>;
}

export interface ScopeContext {
  facts: NodeSource;
  /** When configured, `query` scopes go to PuppetDB instead of the embedded query engine. */
  puppetdb?: PuppetDbClient | null;
  classifier: Classifier;
  store: JobStore;
  catalog: TaskCatalog;
}

export interface ResolvedScope extends OrderedNodes {
  /** The inventory as it was read (when the scope needed it), for per-node environments. */
  inventory: NodeFacts[] | null;
}

/** Whether a query refers to facts or environments (else certname and connected need no facts). */
function queryNeedsFacts(q: unknown): boolean {
  return /facts|environment/i.test(typeof q === 'string' ? q : JSON.stringify(q));
}

/** PuppetDB's trouble as the API's: a refused query is the caller's (400), anything else 503. */
export function puppetDbApiError(err: unknown): never {
  if (!(err instanceof PuppetDbError)) throw err;
  const details = { service: 'puppetdb', reason: err.code.slice('puppetdb/'.length), ...(err.details ?? {}) };
  throw apiError(err.code === PuppetDbErrorCode.refused ? ApiErrorCode.puppetdbError : ApiErrorCode.puppetdbUnavailable, err.message, details);
}

async function inventory(ctx: ScopeContext, facts: boolean, environments = false): Promise<NodeFacts[]> {
  const nodes = await ctx.facts.nodes({ facts, environments }).catch(puppetDbApiError);
  // A node's environment is its group's, else the one its agent reports.
  const classified = ctx.classifier.environments(nodes);
  for (const n of nodes) n.environment = classified.get(n.certname) ?? n.environment;
  return nodes;
}

function unordered(nodes: Iterable<string>, inv: NodeFacts[] | null = null): ResolvedScope {
  return { nodes: [...new Set(nodes)].sort(), deps: {}, inventory: inv };
}

function applicationError(err: unknown): never {
  if (err instanceof BatonError && err.code === ApplicationErrorCode.cycle) throw apiError(ApiErrorCode.dependencyCycle, err.message, err.details ?? {});
  if (err instanceof BatonError && err.code === ApplicationErrorCode.invalid) throw apiError(ApiErrorCode.validation, err.message);
  throw err;
}

/** The nodes of an application instance or type in an environment, in order. */
function application(ctx: ScopeContext, environment: string, target: string): ResolvedScope {
  try {
    const apps = loadApplications(ctx.catalog.environmentDir(environment));
    const instances = instancesOf(apps, target);
    const ordered = orderInstances(apps, instances);
    if (ordered.nodes.length === 0) {
      throw apiError(ApiErrorCode.emptyTarget, instances.length === 0
        ? `no application or application instance named '${target}' in environment '${environment}'`
        : `application '${target}' in environment '${environment}' has no nodes`, { target, environment });
    }
    return { ...ordered, inventory: null };
  } catch (err) {
    return applicationError(err);
  }
}

/** Every node classified into (or reporting) the environment, and every node of its applications. */
async function wholeEnvironment(ctx: ScopeContext, environment: string): Promise<ResolvedScope> {
  let ordered: OrderedNodes;
  try {
    const apps = loadApplications(ctx.catalog.environmentDir(environment));
    ordered = orderInstances(apps, [...apps.keys()]);
  } catch (err) {
    return applicationError(err);
  }
  // Only environments are read here (the classifier's rules may need other facts).
  const inv = await inventory(ctx, true, !ctx.classifier.needsFacts());
  const nodes = new Set(ordered.nodes);
  for (const n of inv) if (n.environment === environment) nodes.add(n.certname);
  if (nodes.size === 0) throw apiError(ApiErrorCode.emptyEnvironment, `environment '${environment}' has no nodes and no applications`, { environment });
  return { nodes: [...nodes].sort(), deps: ordered.deps, inventory: inv };
}

/**
 * The refusals a scope earns without any look-up (no inventory, facts, PuppetDB or Redis): called
 * first, so that a request that will be refused is refused at once.
 */
export function precheckScope(scope: Scope): void {
  if (scope.nodes !== undefined && scope.nodes.length === 0) throw apiError(ApiErrorCode.emptyTarget, 'the scope names no nodes', { scope });
  if (scope.whole_environment === false) throw apiError(ApiErrorCode.validation, 'scope.whole_environment must be true when given');
}

export async function resolveScope(ctx: ScopeContext, scope: Scope, environment: string): Promise<ResolvedScope> {
  precheckScope(scope);
  let resolved: ResolvedScope;
  if (scope.nodes !== undefined) {
    resolved = unordered(scope.nodes);
  } else if (scope.query !== undefined) {
    resolved = unordered(await queryCertnames(ctx, scope.query));
  } else if (scope.node_group !== undefined) {
    const group = ctx.classifier.group(scope.node_group);
    if (!group) throw apiError(ApiErrorCode.emptyTarget, `no node group named '${scope.node_group}'`, { node_group: scope.node_group });
    const inv = 'query' in group.rule ? await inventory(ctx, true) : [];
    resolved = unordered(ctx.classifier.members(group, inv), inv);
  } else if (scope.job !== undefined) {
    const id = String(scope.job.job);
    const job = await ctx.store.getJob(id);
    if (!job) throw apiError(ApiErrorCode.unknownJob, `no job named ${id}`, { job: id });
    const states = scope.job.states ?? DEFAULT_RERUN_STATES;
    resolved = unordered((await ctx.store.getNodes(id)).filter((n) => states.includes(n.state)).map((n) => n.name));
    if (resolved.nodes.length === 0) throw apiError(ApiErrorCode.emptyTarget, `no node of job ${id} ended ${states.join(' or ')}`, { job: id, states });
  } else if (scope.application !== undefined) {
    return application(ctx, environment, scope.application);
  } else {
    return wholeEnvironment(ctx, environment);
  }
  if (resolved.nodes.length === 0) throw apiError(ApiErrorCode.emptyTarget, scope.nodes !== undefined ? 'the scope names no nodes' : 'the scope selects no nodes', { scope });
  return resolved;
}

/** Every node with its facts (PuppetDB's, when it is the query source). */
export function inventoryWithFacts(ctx: ScopeContext): Promise<NodeFacts[]> {
  return inventory(ctx, true);
}

/**
 * The nodes a query selects (none is an answer, not an error): the inventory's own query. With
 * `facts`, each node comes with its facts.
 */
export async function queryNodes(ctx: ScopeContext, q: unknown, opts: { facts: boolean } = { facts: false }): Promise<NodeFacts[]> {
  if (ctx.puppetdb) return puppetDbQueryNodes(ctx, ctx.puppetdb, q, opts.facts);
  let query;
  try {
    query = parseQuery(q);
  } catch (err) {
    if (err instanceof QueryError) throw apiError(ApiErrorCode.queryError, err.message, { query: q });
    throw err;
  }
  const inv = await inventory(ctx, opts.facts || queryNeedsFacts(q));
  const selected = new Set(selectNodes(query, inv));
  return inv.filter((n) => selected.has(n.certname));
}

/** Node → environment from the classifier, for the nodes of a scope (deploys without enforce_environment). */
export async function classifiedEnvironments(ctx: ScopeContext, resolved: ResolvedScope): Promise<Map<string, string>> {
  const inv = resolved.inventory ?? (ctx.classifier.needsFacts() || ctx.puppetdb ? await inventory(ctx, ctx.classifier.needsFacts()) : resolved.nodes.map((certname) => ({ certname, environment: null, connected: false, facts: {} })));
  const inScope = new Set(resolved.nodes);
  const nodes = inv.filter((n) => inScope.has(n.certname));
  const envs = ctx.classifier.environments(nodes);
  // With PuppetDB, a node outside every group runs in the environment PuppetDB has for it.
  if (ctx.puppetdb) for (const n of nodes) if (!envs.has(n.certname) && n.environment) envs.set(n.certname, n.environment);
  return envs;
}

/** The certnames a query selects: all a job's scope needs (PuppetDB answers them in one query). */
export async function queryCertnames(ctx: ScopeContext, q: unknown): Promise<string[]> {
  if (ctx.puppetdb) return puppetDbCertnames(ctx.puppetdb, q);
  return (await queryNodes(ctx, q)).map((n) => n.certname);
}

async function puppetDbCertnames(puppetdb: PuppetDbClient, q: unknown): Promise<string[]> {
  try {
    return await puppetdb.certnames(q);
  } catch (err) {
    if (err instanceof SyntaxError) throw apiError(ApiErrorCode.queryError, `query is not valid JSON: ${err.message}`, { query: q });
    return puppetDbApiError(err);
  }
}

/** A query answered by PuppetDB: the certnames of its answer, with what the inventory knows of them. */
async function puppetDbQueryNodes(ctx: ScopeContext, puppetdb: PuppetDbClient, q: unknown, facts: boolean): Promise<NodeFacts[]> {
  const names = await puppetDbCertnames(puppetdb, q);
  if (names.length === 0) return [];
  const byName = new Map((await inventory(ctx, facts)).map((n) => [n.certname, n]));
  return names.map((certname) => byName.get(certname) ?? { certname, environment: null, connected: false, facts: {} });
}
