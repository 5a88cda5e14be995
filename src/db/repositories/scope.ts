/**
 * Tenant scope: what every repository query of a tenant-owned table takes, so another customer's row is
 * simply not found (no existence leak) — tenant isolation by construction, not by a check someone can forget.
 * Services derive the scope from the caller (src/services/authz.ts); only admin requests get `{ kind: 'all' }`.
 */
export type Scope = { readonly kind: 'tenant'; readonly customerId: string } | { readonly kind: 'all' };

export const ALL: Scope = { kind: 'all' };

export function tenant(customerId: string): Scope {
  return { kind: 'tenant', customerId };
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

export function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  return JSON.parse(text) as T;
}
