/**
 * Tenant scope: what every repository query of a tenant-owned table takes, so another customer's row is
 * simply not found (no existence leak) — tenant isolation by construction, not by a check someone can forget.
 * Services derive the scope from the caller (src/services/actor.ts); only admin requests get `{ kind: 'all' }`.
 * Also the query helpers every repository shares: the tenant filter, id-keyset pages, JSON columns.
 */
import type { DeleteQueryBuilder, SelectQueryBuilder, UpdateQueryBuilder } from 'kysely';
import type { Database } from '../schema.js';

export type Scope = { readonly kind: 'tenant'; readonly customerId: string } | { readonly kind: 'all' };

export const ALL: Scope = { kind: 'all' };

export function tenant(customerId: string): Scope {
  return { kind: 'tenant', customerId };
}

/** The tables that have column `C`. */
type TablesWith<C extends string> = {
  [T in keyof Database]: C extends keyof Database[T] ? T : never;
}[keyof Database];

/** The tables a Kysely select/update/delete builder reads; `never` for anything else. */
type TablesOf<Q> =
  Q extends SelectQueryBuilder<Database, infer TB, infer _O>
    ? TB
    : Q extends UpdateQueryBuilder<Database, infer UT, infer _TB, infer _O>
      ? UT
      : Q extends DeleteQueryBuilder<Database, infer TB, infer _O>
        ? TB
        : never;

/**
 * A type error unless every table `Q` reads has column `C`. The helpers below match Kysely builders
 * structurally (one helper for every table and query kind), and Kysely's generic `where` overloads would
 * then accept any column name; this puts the column check back.
 */
type OnlyTablesWith<Q, C extends string> = [TablesOf<Q>] extends [TablesWith<C>]
  ? unknown
  : { [K in `needs a table with ${C}`]: never };

/** What `inScope` needs of a select/update/delete builder: a `where` on `customer_id`. */
type CustomerFilterable<Q> = {
  where(column: 'customer_id', op: '=', value: string): Q;
} & OnlyTablesWith<Q, 'customer_id'>;

/** The tenant filter, for `$call`: `db.selectFrom('datasets')….$call(inScope(scope))`. */
export function inScope(scope: Scope): <Q extends CustomerFilterable<Q>>(q: Q) => Q {
  return (q) => (scope.kind === 'tenant' ? q.where('customer_id', '=', scope.customerId) : q);
}

/** A page request: ids ascend with creation time (src/db/ids.ts), so `after` is simply the last id seen. */
export interface PageArgs {
  first: number;
  after?: string | null;
}

export interface Page<T> {
  rows: T[];
  hasNextPage: boolean;
}

/** Trim the one extra row a query fetched to learn whether another page exists. */
export function toPage<T>(rows: T[], first: number): Page<T> {
  return { rows: rows.slice(0, first), hasNextPage: rows.length > first };
}

/** What `pageById` needs of a select builder over a table with a text `id`. */
type IdPageable<Q> = {
  where(column: 'id', op: '>', value: string): Q;
  orderBy(column: 'id'): Q;
  limit(n: number): Q;
  execute(): Promise<unknown[]>;
} & OnlyTablesWith<Q, 'id'>;

type RowOf<Q extends IdPageable<Q>> = Awaited<ReturnType<Q['execute']>>[number];

/** One page of `q` in id order, after `page.after`: fetches `first + 1` rows and trims the extra one. */
export async function pageById<Q extends IdPageable<Q>, T>(
  q: Q,
  page: PageArgs,
  toModel: (row: RowOf<Q>) => T,
): Promise<Page<T>> {
  let paged = q.orderBy('id').limit(page.first + 1);
  if (page.after) paged = paged.where('id', '>', page.after);
  return toPage(
    (await paged.execute()).map((r) => toModel(r as RowOf<Q>)),
    page.first,
  );
}

export function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  return JSON.parse(text) as T;
}
