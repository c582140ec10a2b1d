// `npm run bench:query [-- --nodes N --runs R --puppetdb]`: node query selection over a large
// inventory. The embedded engine parses the PQL once, then matches it against every node's facts.
// With --puppetdb, the same facts are loaded into a real PuppetDB (Debian's package, on a private
// PostgreSQL) and the same 3-clause scope is resolved by it, through the orchestrator's own
// PuppetDB client. Prints one JSON line.
import { parseArgs } from 'node:util';
import { PuppetDbClient } from '../orchestrator/puppetdb/client.ts';
import { parseQuery, selectNodes, type NodeFacts } from '../orchestrator/query/index.ts';
import { round } from './harness.ts';

const { values: args } = parseArgs({
  options: { nodes: { type: 'string', default: '10000' }, runs: { type: 'string', default: '200' }, puppetdb: { type: 'boolean', default: false }, 'puppetdb-runs': { type: 'string', default: '20' } },
});
const count = Number(args.nodes);
const runs = Number(args.runs);
const families = ['Debian', 'RedHat', 'Suse'];
const nodes: NodeFacts[] = Array.from({ length: count }, (_, i) => ({
  certname: `node-${String(i).padStart(6, '0')}.example.com`,
  environment: i % 3 === 0 ? 'production' : 'staging',
  connected: i % 5 !== 0,
  facts: { os: { family: families[i % 3]!, release: { major: String(10 + (i % 4)) } }, processorcount: i % 32, role: i % 2 ? 'web' : 'db' },
}));
// `inventory` is the PuppetDB entity with dotted fact paths; the embedded engine reads it alike.
const text = 'inventory[certname] { facts.os.family = "Debian" and certname ~ "node-0" and facts.processorcount >= 8 }';

function embedded(): { selected: number; per_run_ms: number; parse_ms: number } {
  const t0 = process.hrtime.bigint();
  const q = parseQuery(text);
  const parseMs = Number(process.hrtime.bigint() - t0) / 1e6;
  for (let i = 0; i < 10; i++) selectNodes(q, nodes);
  let selected = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) selected = selectNodes(q, nodes).length;
  return { selected, per_run_ms: round(Number(process.hrtime.bigint() - start) / 1e6 / runs, 3), parse_ms: round(parseMs, 3) };
}

async function puppetdb(): Promise<Record<string, unknown>> {
  const { makePki } = await import('../test/helpers/pki.ts');
  const { startPostgres } = await import('../test/helpers/postgres.ts');
  const { startPuppetdb } = await import('../test/helpers/puppetdb.ts');
  const { httpsJson, tlsClient } = await import('../test/helpers/puppetserver.ts');
  const pki = await makePki(['orchestrator']);
  const pg = await startPostgres();
  try {
    const pdb = await startPuppetdb({ pki, postgres: pg, heapMb: 1024 });
    try {
      const tls = tlsClient(pki, 'orchestrator');
      const loadStart = Date.now();
      const now = new Date().toISOString();
      for (let i = 0; i < nodes.length; i += 50) {
        await Promise.all(nodes.slice(i, i + 50).map(async (n) => {
          const url = `${pdb.url}/pdb/cmd/v1?command=replace_facts&version=5&certname=${encodeURIComponent(n.certname)}`;
          const res = await httpsJson(url, tls, { method: 'POST', body: { certname: n.certname, environment: n.environment, values: n.facts, producer_timestamp: now, producer: 'bench' } });
          if (res.status >= 300) throw new Error(`replace_facts ${n.certname}: ${res.status} ${JSON.stringify(res.json)}`);
        }));
      }
      const client = new PuppetDbClient({ url: pdb.url, ca: tls.ca, cert: tls.cert!, key: tls.key!, timeoutMs: 60_000 });
      // PuppetDB stores commands in the background: wait until every node is there.
      for (;;) {
        const rows = await client.query(['from', 'inventory', ['extract', [['function', 'count']]]]);
        if ((rows[0] as { count?: number } | undefined)?.count === nodes.length) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      const loadS = (Date.now() - loadStart) / 1000;
      const pdbRuns = Number(args['puppetdb-runs']);
      for (let i = 0; i < 3; i++) await client.certnames(text);
      let selected = 0;
      const times: number[] = [];
      for (let i = 0; i < pdbRuns; i++) {
        const t = process.hrtime.bigint();
        selected = (await client.certnames(text)).length;
        times.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      client.close();
      times.sort((a, b) => a - b);
      return { selected, median_ms: round(times[Math.floor(times.length / 2)]!, 1), p90_ms: round(times[Math.floor(times.length * 0.9)]!, 1), runs: pdbRuns, load_s: round(loadS, 1) };
    } finally {
      await pdb.stop();
    }
  } finally {
    await pg.stop();
    pki.remove();
  }
}

const line: Record<string, unknown> = { bench: 'query', nodes: count, query: text, ...embedded() };
if (args.puppetdb) {
  const p = await puppetdb();
  line.puppetdb = p;
  line.puppetdb_vs_embedded = round((p.median_ms as number) / (line.per_run_ms as number), 1);
}
console.log(JSON.stringify(line));
