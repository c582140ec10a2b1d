// Applications of an environment (`codedir/environments/<env>/applications.json`): instances such
// as `Wordpress_app[demo]`, made of components with nodes and `requires` edges. Resolves a target
// (an instance, or a type for all its instances) to nodes and the order their runs must keep.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FromSchema } from 'json-schema-to-ts';
import { BatonError } from '../../protocol/errors.ts';
import { compile, describeErrors } from '../../protocol/validate.ts';
import { applicationsFileSchema } from '../../schemas/orchestrator-config.ts';

export const APPLICATIONS_FILE = 'applications.json';

export const ApplicationErrorCode = {
  invalid: 'invalid-applications',
  cycle: 'dependency-cycle',
  emptyTarget: 'empty-target',
} as const;

type ApplicationsFile = FromSchema<typeof applicationsFileSchema>;
const validate = compile<ApplicationsFile>(applicationsFileSchema);

export interface Component {
  application: string;
  name: string;
  nodes: string[];
  requires: string[];
}

/** Nodes to run and, for each node that must wait, the nodes whose runs must finish first. */
export interface OrderedNodes {
  nodes: string[];
  deps: Record<string, string[]>;
}

/** `Type[title]` → `Type`; a bare type stays as it is. */
export function applicationType(name: string): string {
  const i = name.indexOf('[');
  return i < 0 ? name : name.slice(0, i);
}

/** The components of every application instance of an environment (none without the file). */
export function loadApplications(environmentDir: string): Map<string, Component[]> {
  const path = join(environmentDir, APPLICATIONS_FILE);
  const apps = new Map<string, Component[]>();
  if (!existsSync(path)) return apps;
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new BatonError(ApplicationErrorCode.invalid, `${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (!validate(doc)) throw new BatonError(ApplicationErrorCode.invalid, describeErrors(validate.errors, path));
  for (const [app, def] of Object.entries(doc.applications)) {
    const components = Object.entries(def.components).map(([name, c]) => ({ application: app, name, nodes: [...new Set(c.nodes)], requires: c.requires ?? [] }));
    for (const c of components) {
      for (const r of c.requires) {
        if (!components.some((o) => o.name === r)) {
          throw new BatonError(ApplicationErrorCode.invalid, `${path}: component ${c.name} of ${app} requires ${r}, which is not a component of ${app}`);
        }
      }
    }
    apps.set(app, components);
  }
  return apps;
}

/** The instances a target names: itself, or every instance of a type. */
export function instancesOf(apps: Map<string, Component[]>, target: string): string[] {
  if (target.includes('[')) return apps.has(target) ? [target] : [];
  return [...apps.keys()].filter((name) => applicationType(name) === target).sort();
}

/** A cycle among `edges` (node → what it requires), as the path that closes it, or null. */
export function findCycle(edges: Map<string, Iterable<string>>): string[] | null {
  const state = new Map<string, 1 | 2>(); // 1: on the current path, 2: done
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 1);
    path.push(n);
    for (const m of edges.get(n) ?? []) {
      const s = state.get(m);
      if (s === 1) return [...path.slice(path.indexOf(m)), m];
      if (s === undefined) {
        const found = visit(m);
        if (found) return found;
      }
    }
    path.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of [...edges.keys()].sort()) {
    if (state.has(n)) continue;
    const found = visit(n);
    if (found) return found;
  }
  return null;
}

/**
 * Nodes of the given instances with their order: a node waits for every node of every component
 * its own components require (a node is never made to wait for itself). A cycle among components
 * or among the nodes they put in order is refused before anything runs.
 */
export function orderInstances(apps: Map<string, Component[]>, instances: string[]): OrderedNodes {
  const components = instances.flatMap((i) => apps.get(i) ?? []);
  const compEdges = new Map(components.map((c) => [`${c.application}/${c.name}`, c.requires.map((r) => `${c.application}/${r}`)]));
  const compCycle = findCycle(compEdges);
  if (compCycle) {
    throw new BatonError(ApplicationErrorCode.cycle, `the application code contains a dependency cycle: ${compCycle.map((c) => c.split('/')[1]).join(' -> ')}`, {
      details: { cycle: compCycle.map((c) => c.split('/')[1]) },
    });
  }
  const byKey = new Map(components.map((c) => [`${c.application}/${c.name}`, c]));
  const deps = new Map<string, Set<string>>();
  for (const c of components) {
    for (const n of c.nodes) {
      const d = deps.get(n) ?? new Set<string>();
      deps.set(n, d);
      for (const r of c.requires) for (const m of byKey.get(`${c.application}/${r}`)!.nodes) if (m !== n) d.add(m);
    }
  }
  const nodeCycle = findCycle(deps);
  if (nodeCycle) {
    throw new BatonError(ApplicationErrorCode.cycle, `the components put nodes in a cycle: ${nodeCycle.join(' -> ')}`, { details: { cycle: nodeCycle } });
  }
  const out: Record<string, string[]> = {};
  for (const [n, d] of deps) if (d.size > 0) out[n] = [...d].sort();
  return { nodes: [...deps.keys()].sort(), deps: out };
}
