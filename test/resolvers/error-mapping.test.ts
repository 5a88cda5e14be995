// The one error-mapping place: coded errors keep their code and message, Apollo's request errors keep
// theirs (security rules become BAD_USER_INPUT), anything else becomes a logged INTERNAL_SERVER_ERROR.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { newId } from '../../src/db/ids.js';
import { createFormatError, toGraphQLError } from '../../src/resolvers/error-mapping.js';
import { graphql } from '../../src/resolvers/graphql-runtime.js';
import { decodeCursor, encodeCursor, sliceConnection } from '../../src/resolvers/pagination.js';
import { BadInputError, NotFoundError, UnauthenticatedError } from '../../src/shared/errors.js';

function capture() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(s) });
  return { logger, lines };
}

const located = (original: Error) =>
  new graphql.GraphQLError(original.message, { path: ['dataset'], originalError: original });

describe('createFormatError', () => {
  it('maps DeltagateErrors to their code, with details, and logs nothing', () => {
    const { logger, lines } = capture();
    const format = createFormatError(logger, { production: true });
    const err = located(new BadInputError('bad name', { details: { field: 'name' } }));
    expect(format({ message: err.message, path: ['dataset'] }, err)).toEqual({
      message: 'bad name',
      locations: undefined,
      path: ['dataset'],
      extensions: { code: 'BAD_USER_INPUT', field: 'name' },
    });
    const nf = located(new NotFoundError('dataset', 'ds_1'));
    expect(format({ message: nf.message }, nf).extensions).toEqual({ code: 'NOT_FOUND' });
    expect(lines).toEqual([]);
  });

  it('hides and logs unknown errors as INTERNAL_SERVER_ERROR', () => {
    const { logger, lines } = capture();
    const format = createFormatError(logger, { production: true });
    const err = located(new TypeError('cannot read properties of undefined (secret internals)'));
    expect(format({ message: err.message, path: ['x'] }, err)).toEqual({
      message: 'internal server error',
      locations: undefined,
      path: ['x'],
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain('secret internals');
  });

  it('keeps request-level codes and strips stack traces in production', () => {
    const { logger } = capture();
    const format = createFormatError(logger, { production: true });
    const f = format(
      { message: 'Syntax Error', extensions: { code: 'GRAPHQL_PARSE_FAILED', stacktrace: ['at x'] } },
      new graphql.GraphQLError('Syntax Error'),
    );
    expect(f.extensions).toEqual({ code: 'GRAPHQL_PARSE_FAILED' });
  });

  it('toGraphQLError carries the HTTP status for auth failures', () => {
    const e = toGraphQLError(new UnauthenticatedError());
    expect(e.extensions).toEqual({ code: 'UNAUTHENTICATED', http: { status: 401 } });
  });
});

describe('cursors', () => {
  it('round-trip and refuse garbage', () => {
    const id = newId('dataset');
    expect(decodeCursor(encodeCursor(id))).toBe(id);
    expect(decodeCursor(null)).toBeNull();
    expect(() => decodeCursor('!!')).toThrow(BadInputError);
    expect(() => decodeCursor(Buffer.from(`x:${id}`).toString('base64url'))).toThrow(BadInputError);
    // Only ids we made: a NUL or any other text in a well-formed cursor never reaches SQL.
    expect(() => decodeCursor(encodeCursor('ds_abc'))).toThrow(BadInputError);
    expect(() => decodeCursor(encodeCursor(`${id}\u0000`))).toThrow(BadInputError);
  });

  it('slice an in-memory list like a page', () => {
    const all = ['a', 'b', 'c'].map((id) => ({ id }));
    const p1 = sliceConnection(all, { first: 2, after: null });
    expect(p1.edges.map((e) => e.node.id)).toEqual(['a', 'b']);
    expect(p1.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    const p2 = sliceConnection(all, { first: 2, after: 'b' });
    expect(p2.edges.map((e) => e.node.id)).toEqual(['c']);
    expect(p2.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    expect(() => sliceConnection(all, { first: 2, after: 'zz' })).toThrow(BadInputError);
  });
});
