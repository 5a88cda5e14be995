/**
 * Relay connections: `PageInfo`, a factory for `XxxEdge` / `XxxConnection` types, opaque cursors and the one
 * function that turns a repository page into a connection. Page sizes go through the platform's `pageSize`
 * (src/resolvers/security/page-size.ts), which refuses `first` above the maximum instead of clamping.
 */
import { Field, ObjectType, type ClassType } from 'type-graphql';
import { isAnyId } from '../db/ids.js';
import type { Page } from '../db/repositories/scope.js';
import { BadInputError } from '../shared/errors.js';
import { pageSize } from './security/page-size.js';

@ObjectType('PageInfo')
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => Boolean)
  hasPreviousPage!: boolean;

  @Field(() => String, { nullable: true })
  startCursor!: string | null;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

export interface ConnectionShape<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: PageInfo;
}

/** Declares `${name}Edge` and `${name}Connection` for a node type. */
export function connectionType<T extends object>(name: string, node: ClassType<T>) {
  @ObjectType(`${name}Edge`)
  class Edge {
    @Field(() => String)
    cursor!: string;

    @Field(() => node)
    node!: T;
  }

  @ObjectType(`${name}Connection`)
  class Connection implements ConnectionShape<T> {
    @Field(() => [Edge])
    edges!: Edge[];

    @Field(() => PageInfo)
    pageInfo!: PageInfo;
  }
  return Connection;
}

const CURSOR_PREFIX = 'c1:';

export function encodeCursor(id: string): string {
  return Buffer.from(CURSOR_PREFIX + id, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined): string | null {
  if (cursor === null || cursor === undefined) return null;
  const text = /^[A-Za-z0-9_-]{1,200}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const id = text.slice(CURSOR_PREFIX.length);
  // Only ids we made can be cursors: nothing else (a NUL, a control character) reaches the SQL comparison.
  if (!text.startsWith(CURSOR_PREFIX) || !isAnyId(id)) throw new BadInputError('invalid cursor');
  return id;
}

export interface PageRequest {
  first: number;
  after: string | null;
}

/** `first`/`after` arguments → a validated page request. */
export function pageRequest(first: number | null | undefined, after: string | null | undefined): PageRequest {
  return { first: pageSize(first), after: decodeCursor(after) };
}

export function toConnection<T extends { id: string }>(page: Page<T>, req: PageRequest): ConnectionShape<T> {
  const edges = page.rows.map((node) => ({ cursor: encodeCursor(node.id), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: req.after !== null,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

/** A connection over an already loaded, ordered list (nested lists served by a DataLoader). */
export function sliceConnection<T extends { id: string }>(
  all: readonly T[],
  req: PageRequest,
): ConnectionShape<T> {
  const from = req.after === null ? 0 : all.findIndex((x) => x.id === req.after) + 1;
  if (from === 0 && req.after !== null) throw new BadInputError('invalid cursor');
  const rows = all.slice(from, from + req.first);
  return toConnection({ rows, hasNextPage: from + req.first < all.length }, req);
}
