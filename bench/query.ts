// `npm run bench:query`: node query selection over a large inventory (PQL parsed once, then
// matched against every node). Prints one JSON line: {nodes, selected, per_run_ms, parse_ms}.
import { parseArgs } from 'node:util';
import { parseQuery, selectNodes, type NodeFacts } from '../orchestrator/query/index.ts';
import { round } from './harness.ts';

const { values: args } = parseArgs({ options: { nodes: { type: 'string', default: '10000' }, runs: { type: 'string', default: '200' } } });
const count = Number(args.nodes);
const runs = Number(args.runs);
const families = ['Debian', 'RedHat', 'Suse'];
const nodes: NodeFacts[] = Array.from({ length: count }, (_, i) => ({
  certname: `node-${String(i).padStart(6, '0')}.example.com`,
  environment: i % 3 === 0 ? 'production' : 'staging',
  connected: i % 5 !== 0,
  facts: { os: { family: families[i % 3]!, release: { major: String(10 + (i % 4)) } }, processorcount: i % 32, role: i % 2 ? 'web' : 'db' },
}));
const text = 'nodes[certname] { facts.os.family = "Debian" and certname ~ "node-0" and facts.processorcount >= 8 }';
const t0 = process.hrtime.bigint();
const q = parseQuery(text);
const parseMs = Number(process.hrtime.bigint() - t0) / 1e6;
for (let i = 0; i < 10; i++) selectNodes(q, nodes);
let selected = 0;
const start = process.hrtime.bigint();
for (let i = 0; i < runs; i++) selected = selectNodes(q, nodes).length;
const perRunMs = Number(process.hrtime.bigint() - start) / 1e6 / runs;
console.log(JSON.stringify({ bench: 'query', nodes: count, query: text, selected, per_run_ms: round(perRunMs, 3), parse_ms: round(parseMs, 3) }));
