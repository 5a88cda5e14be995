/**
 * The validation rules against real graphql-js documents on a schema shaped like the contract (connections
 * with `first`, recursive types): depth bombs, 1,000 aliases, repeated root fields, `first: 99999999`, fragment
 * tricks. Exact costs are pinned so a change to the cost model is a visible decision.
 */
import { buildSchema, parse, specifiedRules, validate, type ValidationRule } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LIMITS,
  aliasLimit,
  costLimit,
  depthLimit,
  generationLimit,
  maxPageSize,
  pageSize,
  PageSizeError,
  securityRules,
} from '../../../src/resolvers/security/index.js';

const schema = buildSchema(`
  type Query {
    viewer: Viewer!
    customer(id: ID!): Customer
    datasets(first: Int, after: String): DatasetConnection!
    adapters(first: Int, after: String): AdapterConnection!
    baseModels: [BaseModel!]!
  }
  type Viewer { role: String! customer: Customer }
  type Customer { id: ID! name: String! parent: Customer datasets(first: Int, after: String): DatasetConnection! }
  type DatasetConnection { edges: [DatasetEdge!]! pageInfo: PageInfo! }
  type DatasetEdge { cursor: String! node: Dataset! }
  type Dataset { id: ID! name: String! errors: [DatasetError!]! customer: Customer! }
  type DatasetError { line: Int! message: String! }
  type AdapterConnection { edges: [AdapterEdge!]! nodes: [Adapter!]! }
  type AdapterEdge { node: Adapter! }
  type Adapter { id: ID! versions(first: Int): [AdapterVersion!]! }
  type AdapterVersion { id: ID! version: Int! }
  type BaseModel { id: ID! name: String! }
  type PageInfo { hasNextPage: Boolean! endCursor: String }
`);

function errors(source: string, rule: ValidationRule): string[] {
  return validate(schema, parse(source), [...specifiedRules, rule]).map((e) => e.message);
}

/** The smallest max the rule accepts the document at (binary search): the document's cost. */
function costOf(source: string, defaultListSize = 10): number {
  let lo = 0;
  let hi = 1e7;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (errors(source, costLimit(mid, { defaultListSize })).length === 0) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

const nest = (depth: number) =>
  `{ customer(id: "1") { ${'parent { '.repeat(depth)}id${' }'.repeat(depth)} } }`;

describe('depthLimit', () => {
  it('allows up to the limit and refuses a depth bomb', () => {
    // customer + 8 parents + id = 10 levels
    expect(errors(nest(8), depthLimit(10))).toEqual([]);
    expect(errors(nest(9), depthLimit(10))).toEqual([
      'Operation (anonymous) is nested more than 10 levels deep (the limit).',
    ]);
    // graphql-js's own parser recursion caps documents far deeper than this (a parse error, not a crash).
    expect(errors(nest(500), depthLimit(10))).toHaveLength(1);
  });

  it('follows fragments and inline fragments, and ignores introspection', () => {
    const viaFragments = `
      query Deep { customer(id: "1") { ...A } }
      fragment A on Customer { parent { ...B } }
      fragment B on Customer { parent { ... on Customer { parent { parent { id } } } } }`;
    // customer › parent (A) › parent (B) › parent › parent › id = 6 levels
    expect(errors(viaFragments, depthLimit(6))).toEqual([]);
    expect(errors(viaFragments, depthLimit(5))).toEqual([
      'Operation Deep is nested more than 5 levels deep (the limit).',
    ]);
    const introspection =
      '{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }';
    expect(errors(introspection, depthLimit(2))).toEqual([]);
  });

  it('survives a fragment cycle (reported by graphql-js, not a hang)', () => {
    const cyclic = `{ customer(id: "1") { ...A } } fragment A on Customer { parent { ...B } } fragment B on Customer { parent { ...A } }`;
    const errs = errors(cyclic, depthLimit(10));
    expect(errs.some((m) => /Cannot spread fragment "A" within itself/.test(m))).toBe(true);
  });
});

describe('aliasLimit', () => {
  it('refuses 1,000 aliases of one field', () => {
    const doc = `{ ${Array.from({ length: 1000 }, (_, i) => `a${i}: viewer { role }`).join(' ')} }`;
    expect(errors(doc, aliasLimit(30))).toEqual([
      'Document uses 1000 aliases or repeated root fields; the limit is 30.',
    ]);
  });

  it('counts repeated root fields and nested aliases, not plain fields', () => {
    const repeated = `{ ${'viewer { role } '.repeat(31)} }`;
    expect(errors(repeated, aliasLimit(30))).toEqual([]); // 30 repeats: at the limit
    expect(errors(`{ ${'viewer { role } '.repeat(32)} }`, aliasLimit(30))).toEqual([
      'Document uses 31 aliases or repeated root fields; the limit is 30.',
    ]);
    const nested = `{ viewer { ${Array.from({ length: 5 }, (_, i) => `r${i}: role`).join(' ')} } }`;
    expect(errors(nested, aliasLimit(4))).toHaveLength(1);
    expect(errors(nested, aliasLimit(5))).toEqual([]);
    expect(errors('{ viewer { role } datasets { edges { cursor } } }', aliasLimit(0))).toEqual([]);
  });
});

describe('costLimit', () => {
  it('multiplies connections by first, lists by the default size, and pins exact costs', () => {
    // datasets: 1 + 10 * (edges 1 + node (1 + id 1 + name 1)) = 41; edges of a paginated field are the page.
    expect(costOf('{ datasets(first: 10) { edges { node { id name } } } }')).toBe(41);
    // baseModels (a list without first): 1 + 10 * (id + name) = 21
    expect(costOf('{ baseModels { id name } }')).toBe(21);
    // customer 1 + (datasets 1 + 5 * (edges 1 + node (1 + errors (1 + 10 * 2)))) = 1 + 1 + 5 * 23
    expect(
      costOf('{ customer(id: "1") { datasets(first: 5) { edges { node { errors { line message } } } } } }'),
    ).toBe(117);
    expect(costOf('{ __schema { types { name fields { name } } } }')).toBe(0);
  });

  it('refuses first: 99999999 before execution', () => {
    const doc = '{ datasets(first: 99999999) { edges { node { id } } } }';
    expect(errors(doc, costLimit(10_000, { defaultListSize: 10 }))).toEqual([
      'Operation (anonymous) costs more than 10000 (estimated 299999998).',
    ]);
  });

  it('counts a variable as its default, else the max page size', () => {
    expect(costOf('query($n: Int = 5) { datasets(first: $n) { edges { cursor } } }')).toBe(1 + 5 * 2);
    expect(costOf('query($n: Int) { datasets(first: $n) { edges { cursor } } }')).toBe(1 + maxPageSize * 2);
  });

  it('multiplies nested lists: the classic amplification', () => {
    const doc = `{ adapters(first: 100) { nodes { versions(first: 100) { id version } } } }`;
    // 1 + 100 * (nodes 1 + (versions 1 + 100 * 2)) = 20201
    expect(costOf(doc)).toBe(20_201);
    expect(errors(doc, costLimit(DEFAULT_LIMITS.cost))).toHaveLength(1);
  });

  it('stays fast on an exponential fragment fan-out (memoized)', () => {
    const frags = Array.from(
      { length: 30 },
      (_, i) =>
        `fragment F${i} on Customer { ${i === 29 ? 'id' : `a: parent { ...F${i + 1} } b: parent { ...F${i + 1} }`} }`,
    ).join('\n');
    const t0 = performance.now();
    const errs = errors(`{ customer(id: "1") { ...F0 } }\n${frags}`, costLimit(10_000));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^Operation \(anonymous\) costs more than 10000/);
  });
});

describe('generationLimit', () => {
  const genSchema = buildSchema(`
    type Query { viewer: String }
    type Mutation { generate(prompt: String): Generation! createDataset: String }
    type Subscription { generateStream(prompt: String): Generation! }
    type Generation { text: String! }
  `);
  const check = (source: string) =>
    validate(genSchema, parse(source), [...specifiedRules, generationLimit()]).map((e) => [
      e.message,
      e.extensions.code,
    ]);

  it('lets one generate through, with other fields beside it', () => {
    expect(check('mutation { generate(prompt: "a") { text } createDataset }')).toEqual([]);
    expect(check('subscription { generateStream(prompt: "a") { text } }')).toEqual([]);
  });

  it('refuses two aliased generate fields, also through fragments', () => {
    const refused = [
      [
        'Operation (anonymous) asks for 2 generations; one generate per request (send the others as their own requests).',
        'BAD_USER_INPUT',
      ],
    ];
    expect(check('mutation { a: generate(prompt: "a") { text } b: generate(prompt: "b") { text } }')).toEqual(
      refused,
    );
    expect(
      check(
        'mutation { a: generate(prompt: "a") { text } ... on Mutation { b: generate(prompt: "b") { text } } }',
      ),
    ).toEqual(refused);
    expect(
      check('mutation { ...G ...G } fragment G on Mutation { g: generate(prompt: "a") { text } }').map(
        ([, code]) => code,
      ),
    ).toEqual(['BAD_USER_INPUT']);
    // @skip decides only after variables are known: the verdict does not wait for it.
    expect(
      check(
        'mutation($s: Boolean!) { a: generate(prompt: "a") { text } b: generate(prompt: "b") @skip(if: $s) { text } }',
      ),
    ).toHaveLength(1);
  });
});

describe('securityRules and pageSize', () => {
  it('bundles the four rules with the defaults', () => {
    const rules = securityRules();
    expect(rules).toHaveLength(4);
    const ok = validate(
      schema,
      parse('{ viewer { role customer { datasets(first: 20) { edges { node { id } } } } } }'),
      [...specifiedRules, ...rules],
    );
    expect(ok).toEqual([]);
    const bomb = validate(schema, parse(nest(50)), [...specifiedRules, ...rules]);
    expect(bomb.map((e) => e.extensions.code)).toEqual(['BAD_USER_INPUT']);
  });

  it('turns first into a page size, refusing what the max cannot hold', () => {
    expect([
      pageSize(undefined),
      pageSize(null),
      pageSize(0),
      pageSize(100),
      pageSize(undefined, 500),
    ]).toEqual([20, 20, 0, 100, 100]);
    for (const bad of [101, 99999999, -1, 1.5]) expect(() => pageSize(bad)).toThrow(PageSizeError);
    expect(new PageSizeError(101).code).toBe('BAD_USER_INPUT');
  });
});
