import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  describeQuery,
  matchesNode,
  parseQuery,
  QueryError,
  selectNodes,
  type NodeFacts,
} from '../../orchestrator/query/index.ts';

const NODES: NodeFacts[] = [
  {
    certname: 'web1.example.com',
    environment: 'production',
    connected: true,
    facts: {
      os: { family: 'Debian', release: { major: '12' } },
      processorcount: 4,
      load: 0.5,
      role: 'web',
      is_virtual: true,
      offset: -3,
      trusted: { certname: 'web1.example.com', extensions: { pp_role: 'web' } },
    },
  },
  {
    certname: 'web2.example.com',
    environment: 'production',
    connected: false,
    facts: { os: { family: 'Debian', release: { major: '11' } }, processorcount: 2, load: 1.25, role: 'web', is_virtual: false, offset: 2 },
  },
  {
    certname: 'db1.example.com',
    environment: 'staging',
    connected: true,
    facts: { os: { family: 'RedHat' }, processorcount: 16, role: 'db', last_run: '2024-05-01T10:00:00Z', label: 'say "hi"\\' },
  },
  { certname: 'db2.example.com', environment: null, connected: true, facts: { os: 'not-an-object', processorcount: '8', role: null } },
  { certname: 'mail.example.com', environment: 'production', connected: true, facts: {} },
];
const ALL = ['db1.example.com', 'db2.example.com', 'mail.example.com', 'web1.example.com', 'web2.example.com'];

function select(query: unknown): string[] {
  return selectNodes(parseQuery(query), NODES);
}

function short(names: string[]): string[] {
  return names.map((n) => n.split('.')[0]!);
}

/** Asserts that `input` is rejected with a QueryError whose message matches `expected`. */
function rejects(input: unknown, expected: RegExp): void {
  assert.throws(
    () => parseQuery(input),
    (err: unknown) => {
      assert.ok(err instanceof QueryError, `not a QueryError: ${String(err)}`);
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'query-error');
      assert.match(err.message, expected);
      return true;
    },
    `${JSON.stringify(input)} should fail with ${expected}`,
  );
}

describe('node query, AST form', () => {
  it('evaluates every operator', () => {
    const cases: [unknown[], string[]][] = [
      [['=', 'certname', 'db1.example.com'], ['db1']],
      [['=', 'environment', 'production'], ['mail', 'web1', 'web2']],
      [['=', 'connected', false], ['web2']],
      [['=', 'connected', 'true'], ['db1', 'db2', 'mail', 'web1']],
      [['=', 'facts.processorcount', 4], ['web1']],
      [['=', 'facts.processorcount', '8'], ['db2']],
      [['=', 'facts.is_virtual', true], ['web1']],
      [['~', 'certname', '^web\\d'], ['web1', 'web2']],
      [['~', 'facts.processorcount', '8'], ['db2']],
      [['<', 'facts.processorcount', 4], ['web2']],
      [['<=', 'facts.processorcount', 4], ['web1', 'web2']],
      [['>', 'facts.processorcount', 4], ['db1']],
      [['>=', 'facts.load', 0.5], ['web1', 'web2']],
      [['<', 'facts.offset', 0], ['web1']],
      [['>', 'facts.last_run', '2024-01-01T00:00:00Z'], ['db1']],
      [['<', 'certname', 'mail'], ['db1', 'db2']],
      [['and', ['=', 'facts.role', 'web'], ['=', 'connected', true]], ['web1']],
      [['or', ['=', 'facts.role', 'db'], ['=', 'certname', 'mail.example.com']], ['db1', 'mail']],
      [['and', ['=', 'facts.role', 'web']], ['web1', 'web2']],
      [['not', ['=', 'environment', 'production']], ['db1', 'db2']],
      [['null?', 'environment', true], ['db2']],
      [['null?', 'facts.role', true], ['db2', 'mail']],
      [['null?', 'facts.role', false], ['db1', 'web1', 'web2']],
      [['in', 'facts.role', ['array', ['db', 'web']]], ['db1', 'web1', 'web2']],
      [['in', 'certname', ['mail.example.com', 'nope']], ['mail']],
      [['in', 'connected', ['array', ['false']]], ['web2']],
      [['in', 'certname', ['array', []]], []],
    ];
    for (const [ast, expected] of cases) assert.deepEqual(short(select(ast)), expected, JSON.stringify(ast));
  });

  it('reads nested facts, and a path through a non-object is null', () => {
    assert.deepEqual(short(select(['=', 'facts.os.release.major', '12'])), ['web1']);
    assert.deepEqual(short(select(['=', 'trusted.extensions.pp_role', 'web'])), ['web1']);
    assert.deepEqual(short(select(['=', 'facts.trusted.certname', 'web1.example.com'])), ['web1']);
    assert.deepEqual(short(select(['null?', 'facts.os.family', true])), ['db2', 'mail']);
    assert.deepEqual(short(select(['=', 'facts.os.length', 13])), [], 'no properties of strings');
    assert.deepEqual(short(select(['null?', 'facts.os.constructor', false])), [], 'no inherited properties');
  });

  it('never matches comparisons against missing or differently typed values', () => {
    assert.deepEqual(short(select(['>', 'facts.processorcount', 1])), ['db1', 'web1', 'web2'], "'8' is a string");
    assert.deepEqual(select(['<', 'facts.nothing', 100]), []);
    assert.deepEqual(select(['>=', 'facts.os', 'a']), ['db2.example.com']);
    assert.deepEqual(select(['=', 'facts.processorcount', '4']), []);
  });

  it('accepts from, extract, inventory, a bare condition and the all-nodes forms', () => {
    const cond = ['=', 'facts.role', 'db'];
    for (const q of [
      cond,
      ['from', 'nodes', cond],
      ['from', 'inventory', cond],
      ['from', 'nodes', ['extract', ['certname', 'facts'], cond]],
      ['from', 'inventory', ['extract', 'certname', cond]],
      ['extract', ['certname'], cond],
      JSON.stringify(['from', 'nodes', cond]),
      `  ${JSON.stringify(cond)}\n`,
    ]) {
      assert.deepEqual(short(select(q)), ['db1'], JSON.stringify(q));
    }
    for (const q of [['from', 'nodes'], ['from', 'inventory'], ['from', 'nodes', ['extract', ['certname']]], '["from","nodes"]']) {
      assert.deepEqual(select(q), ALL, JSON.stringify(q));
    }
    const q = parseQuery(['from', 'inventory', ['extract', ['certname', 'environment'], cond]]);
    assert.equal(q.entity, 'inventory');
    assert.deepEqual(q.extract, ['certname', 'environment']);
  });

  it('keeps a canonical AST that parses back to the same query', () => {
    const q = parseQuery(['from', 'nodes', ['and', ['in', 'connected', ['true']], ['~', 'certname', 'a/b']]]);
    assert.deepEqual(q.ast, ['from', 'nodes', ['and', ['in', 'connected', ['array', [true]]], ['~', 'certname', 'a/b']]]);
    assert.deepEqual(parseQuery(JSON.parse(JSON.stringify(q.ast))).ast, q.ast);
    assert.equal(parseQuery(q), q, 'a compiled query passes through');
  });
});

describe('node query, PQL form', () => {
  it('evaluates every operator', () => {
    const cases: [string, string[]][] = [
      ['nodes[certname] { certname = "db1.example.com" }', ['db1']],
      ["nodes { environment = 'production' }", ['mail', 'web1', 'web2']],
      ['nodes { environment != "production" }', ['db1', 'db2']],
      ['nodes { connected = false }', ['web2']],
      ['nodes { connected = "true" }', ['db1', 'db2', 'mail', 'web1']],
      ['nodes { facts.processorcount = 4 }', ['web1']],
      ['nodes { facts.is_virtual = true }', ['web1']],
      ['nodes { certname ~ "^web\\d" }', ['web1', 'web2']],
      ['nodes { certname ~ "^web\\\\d" }', ['web1', 'web2']],
      ['nodes { certname !~ "^web" }', ['db1', 'db2', 'mail']],
      ['nodes { facts.processorcount < 4 }', ['web2']],
      ['nodes { facts.processorcount <= 4 }', ['web1', 'web2']],
      ['nodes { facts.processorcount > 4 }', ['db1']],
      ['nodes { facts.load >= 0.5 }', ['web1', 'web2']],
      ['nodes { facts.load > 1.2 }', ['web2']],
      ['nodes { facts.offset < -1 }', ['web1']],
      ['nodes { facts.last_run > "2024-01-01T00:00:00Z" }', ['db1']],
      ['nodes { facts.role = "web" and connected = true }', ['web1']],
      ['nodes { facts.role = "db" or certname = "mail.example.com" }', ['db1', 'mail']],
      ['nodes { not environment = "production" }', ['db1', 'db2']],
      ['nodes { ! connected = true }', ['web2']],
      ['nodes { environment is null }', ['db2']],
      ['nodes { facts.role is not null }', ['db1', 'web1', 'web2']],
      ['nodes { facts.role in ["db", "web"] }', ['db1', 'web1', 'web2']],
      ['nodes { facts.processorcount in [2, 16] }', ['db1', 'web2']],
      ['nodes { certname in [] }', []],
      ['nodes { facts.os.release.major = "12" }', ['web1']],
      ['nodes { trusted.extensions.pp_role = "web" }', ['web1']],
      ['nodes { facts.label = "say \\"hi\\"\\\\" }', ['db1']],
      ["nodes { facts.label = 'say \"hi\"\\\\' }", ['db1']],
    ];
    for (const [pql, expected] of cases) assert.deepEqual(short(select(pql)), expected, pql);
  });

  it('gives not precedence over and, and and over or; parentheses group', () => {
    // a or b and c == a or (b and c)
    assert.deepEqual(short(select('nodes { certname = "mail.example.com" or facts.role = "web" and connected = true }')), ['mail', 'web1']);
    assert.deepEqual(short(select('nodes { (certname = "mail.example.com" or facts.role = "web") and connected = true }')), ['mail', 'web1']);
    assert.deepEqual(short(select('nodes { (certname = "web2.example.com" or facts.role = "db") and connected = true }')), ['db1']);
    assert.deepEqual(short(select('nodes { certname = "web2.example.com" or facts.role = "db" and connected = true }')), ['db1', 'web2']);
    // not a and b == (not a) and b
    assert.deepEqual(short(select('nodes { not facts.role = "web" and connected = true }')), ['db1', 'db2', 'mail']);
    assert.deepEqual(short(select('nodes { not (facts.role = "web" and connected = true) }')), ['db1', 'db2', 'mail', 'web2']);
    assert.deepEqual(short(select('nodes[certname] { environment = "production" or not connected = true }')), ['mail', 'web1', 'web2']);
    assert.deepEqual(
      parseQuery('nodes { facts.a = 1 or certname = "x" and not connected = true }').ast,
      ['from', 'nodes', ['or', ['=', 'facts.a', 1], ['and', ['=', 'certname', 'x'], ['not', ['=', 'connected', true]]]]],
    );
  });

  it('accepts the all-nodes forms, extract lists, inventory and any keyword case', () => {
    for (const q of ['nodes { }', 'nodes {}', 'nodes[certname] {}', 'nodes[certname, environment] { }', 'inventory[certname] {}', 'nodes', 'NODES {}']) {
      assert.deepEqual(select(q), ALL, q);
    }
    assert.deepEqual(parseQuery('nodes[certname, environment] { certname = "a" }').ast, ['from', 'nodes', ['extract', ['certname', 'environment'], ['=', 'certname', 'a']]]);
    assert.equal(parseQuery('Inventory[certname] {}').entity, 'inventory');
    assert.deepEqual(
      short(select('Nodes { facts.role = "web" AND connected = TRUE OR environment Is Not NULL And NOT facts.role In ["web"] }')),
      ['db1', 'mail', 'web1'],
    );
  });

  it('compiles to the same AST as the JSON form', () => {
    assert.deepEqual(
      parseQuery('inventory[certname] { facts.os.family = "Debian" and certname ~ "web" and facts.x is null }').ast,
      parseQuery(['from', 'inventory', ['extract', ['certname'], ['and', ['=', 'facts.os.family', 'Debian'], ['~', 'certname', 'web'], ['null?', 'facts.x', true]]]]).ast,
    );
    assert.deepEqual(parseQuery('nodes { certname !~ "a" }').ast, ['from', 'nodes', ['not', ['~', 'certname', 'a']]]);
  });

  it('describes a query as PQL that parses back to the same query', () => {
    const sources = [
      'nodes[certname] { facts.os.family = "Debian" and certname ~ "web\\\\d" }',
      'nodes { (environment = "production" or facts.x is not null) and not (connected = true or facts.y in ["a", 1, true]) }',
      'inventory { certname != "a\\"b" and facts.load >= -1.5 and certname !~ "^x" }',
      'nodes {}',
    ];
    for (const source of sources) {
      const q = parseQuery(source);
      const text = describeQuery(q);
      assert.deepEqual(parseQuery(text).ast, q.ast, `${source} → ${text}`);
    }
    assert.equal(describeQuery(parseQuery(['from', 'nodes', ['=', 'facts.os.family', 'Debian']])), 'nodes { facts.os.family = "Debian" }');
    assert.equal(describeQuery(parseQuery(['from', 'nodes'])), 'nodes {}');
    const long = parseQuery(['in', 'certname', Array.from({ length: 100 }, (_, i) => `node-${i}.example.com`)]);
    assert.ok(describeQuery(long).length <= 240);
    assert.equal(matchesNode(parseQuery('nodes { certname ~ "mail" }'), NODES[4]!), true);
  });
});

describe('node query errors', () => {
  it('rejects malformed AST queries naming the problem', () => {
    const cases: [unknown, RegExp][] = [
      [['like', 'certname', 'a'], /^unknown operator 'like' in \["like","certname","a"\]/],
      [['=', 'certname'], /operator '=' takes a field and a value \(2 arguments\), got 1 argument in/],
      [['=', 5, 'a'], /field must be a string, got 5 in \["=",5,"a"\]/],
      [['=', 'foo', 1], /unknown field 'foo' \(valid fields: certname, environment, connected, facts\.<path>/],
      [['=', 'facts', 1], /field 'facts' needs a fact path/],
      [['~', 'certname', '(web'], /invalid regex "\(web": .*in \["~","certname","\(web"\]/],
      [['~', 'certname', 5], /regex for '~' must be a string, got 5/],
      [['~', 'connected', 'true'], /'~' cannot be applied to boolean field 'connected'/],
      [['and'], /operator 'and' needs at least one condition in \["and"\]/],
      [['or', ['=', 'certname', 'a'], 'oops'], /expected a condition \(an array whose first element is an operator\), got "oops" in \["or",\["=","certname","a"\],"oops"\]/],
      [['not', ['=', 'certname', 'a'], ['=', 'certname', 'b']], /operator 'not' takes exactly one condition, got 2 arguments/],
      [['from', 'reports', ['=', 'certname', 'a']], /only nodes and inventory queries select nodes, got 'reports'/],
      [['from', 'facts'], /only nodes and inventory queries select nodes, got 'facts'/],
      [['from', 'nodes', ['=', 'certname', 'a'], ['limit', 10]], /'from' takes an entity and at most one condition, got 3 arguments/],
      [['from', 'nodes', ['extract', [], ['=', 'certname', 'a']]], /'extract' needs a field name or a non-empty array/],
      [['=', 'environment', null], /value for '=' must be a string, number or boolean, got null.*null\?/],
      [['=', 'certname', { a: 1 }], /value for '=' must be a string, number or boolean, got \{"a":1\}/],
      [['=', 'connected', 'yes'], /field 'connected' is a boolean; expected true or false, got "yes"/],
      [['=', 'environment', 5], /field 'environment' holds strings; got 5/],
      [['<', 'facts.x', true], /value for '<' must be a number or a string, got true/],
      [['>', 'connected', 1], /'>' cannot be applied to boolean field 'connected'/],
      [['null?', 'environment', 'yes'], /operator 'null\?' takes a field and true or false, got "yes"/],
      [['in', 'certname', 'a'], /operator 'in' takes a field and an array of values, got "a"/],
      [['in', 'certname', ['extract', 'certname', ['select_facts', ['=', 'name', 'x']]]], /subqueries are not supported/],
      [['in', 'certname', [['a']]], /value for 'in' must be a string, number or boolean, got \["a"\]/],
      [['and', ['from', 'nodes']], /'from' is only allowed at the top level/],
      [[], /empty query/],
      [Array.from({ length: 100 }).reduce<unknown[]>((inner) => ['not', inner], ['=', 'certname', 'a']), /nests deeper than 64 levels/],
      ['["from", "nodes",', /query is not valid JSON/],
      [42, /a query must be a PQL string or a JSON array, got number/],
      [null, /got null/],
    ];
    for (const [input, expected] of cases) rejects(input, expected);
  });

  it('rejects malformed PQL naming what was expected and where', () => {
    const cases: [string, RegExp][] = [
      ['nodes { facts.os.family = }', /^PQL: expected a value after '=' at column 27, got '\}'$/],
      ['nodes { certname = "web }', /PQL: unterminated string starting at column 20/],
      ['reports { certname = "a" }', /PQL: only nodes and inventory queries select nodes, got 'reports' at column 1/],
      ['{ certname = "a" }', /PQL: expected an entity \(nodes or inventory\) at column 1, got '\{'/],
      ['nodes { certname = "a"', /PQL: expected '\}' \(or 'and'\/'or'\) to close the query at column 23, got end of query/],
      ['nodes { certname = "a" } limit 1', /PQL: expected the end of the query at column 26, got 'limit'/],
      ['nodes { foo = 1 }', /PQL: unknown field 'foo' \(valid fields: certname, environment.*\) at column 9/],
      ['nodes { certname like "a" }', /PQL: expected an operator \(=, !=, ~, !~, <, <=, >, >=, in, is\) after field 'certname' at column 18, got 'like'/],
      ['nodes { certname @ "a" }', /PQL: unexpected character '@' at column 18/],
      ['nodes { environment is "x" }', /PQL: expected 'null' after 'is' at column 24/],
      ['nodes { environment is not 1 }', /PQL: expected 'null' after 'is not' at column 28/],
      ['nodes { certname ~ "(a" }', /PQL: invalid regex "\(a": .* at column 18/],
      ['nodes { connected = "maybe" }', /PQL: field 'connected' is a boolean; expected true or false, got "maybe" at column 19/],
      ['nodes { environment = null }', /PQL: expected a value after '=' \(use 'is null' to test for null\) at column 23/],
      ['nodes { certname in ["a", ] }', /PQL: expected a value after ',' at column 27, got '\]'/],
      ['nodes { certname in "a" }', /PQL: expected '\[' \(an array such as \["a", "b"\]\) after 'in' at column 21/],
      ['nodes { certname in inventory[certname] { } }', /PQL: subqueries are not supported/],
      ['nodes { (certname = "a" }', /PQL: expected '\)' \(to close '\(' from column 9\) at column 25, got '\}'/],
      ['nodes { certname = "a" and }', /PQL: expected a field name such as certname or facts\.os\.family at column 28, got '\}'/],
      ['nodes[] { }', /PQL: expected a field name in nodes\[\.\.\.\] at column 7, got '\]'/],
      ['nodes {\n  certname = }', /PQL: expected a value after '=' at line 2, column 14/],
      ['   ', /PQL: empty query/],
      [`nodes { ${'('.repeat(80)}certname = "a"${')'.repeat(80)} }`, /nests deeper than 64 levels/],
    ];
    for (const [input, expected] of cases) rejects(input, expected);
  });
});
