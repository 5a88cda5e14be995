/**
 * The ONE place errors become GraphQL errors (Apollo's `formatError`): a DeltagateError keeps its message
 * and its stable `code` as `extensions.code`; the server's own request errors (parse, validation, the
 * security rules, bad arguments) keep theirs; anything else is a bug: logged with its stack, answered as
 * INTERNAL_SERVER_ERROR with no internals. `toGraphQLError` serves the graphql-ws and context paths.
 */
import { unwrapResolverError } from '@apollo/server/errors';
import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import type { Logger } from 'pino';
import { DeltagateError, type ErrorCode } from '../shared/errors.js';
import { graphql } from './graphql-runtime.js';

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'BAD_USER_INPUT',
  'CONFLICT',
  'QUOTA_EXCEEDED',
  'RATE_LIMITED',
  'INTERNAL_SERVER_ERROR',
]);

/** Codes Apollo itself gives to requests refused before execution. */
const REQUEST_CODES: ReadonlySet<string> = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'UNAUTHENTICATED',
  'RATE_LIMITED',
]);

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = { UNAUTHENTICATED: 401, RATE_LIMITED: 429 };

/** Also recognizes a DeltagateError from another copy of the module (worker bundles): by name and code. */
export function asDeltagateError(err: unknown): DeltagateError | null {
  if (err instanceof DeltagateError) return err;
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | null;
  if (
    e &&
    typeof e === 'object' &&
    typeof e.code === 'string' &&
    CODES.has(e.code) &&
    typeof e.message === 'string'
  ) {
    return e as DeltagateError;
  }
  return null;
}

/** A DeltagateError as a GraphQLError (for errors raised outside resolvers: context, WebSocket connect). */
export function toGraphQLError(err: DeltagateError): GraphQLError {
  const status = HTTP_STATUS[err.code];
  return new graphql.GraphQLError(err.message, {
    extensions: { code: err.code, ...(status ? { http: { status } } : {}), ...(err.details ?? {}) },
    originalError: err,
  });
}

export function createFormatError(logger: Logger, options: { production: boolean }) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrapResolverError(error);
    const known =
      asDeltagateError(original) ??
      asDeltagateError((original as { originalError?: unknown })?.originalError);
    const base = { message: formatted.message, locations: formatted.locations, path: formatted.path };
    if (known) {
      if (known.code === 'INTERNAL_SERVER_ERROR')
        logger.error({ err: known, path: formatted.path }, 'internal error');
      return { ...base, message: known.message, extensions: { code: known.code, ...(known.details ?? {}) } };
    }
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && REQUEST_CODES.has(code)) {
      const extensions = { ...formatted.extensions };
      if (options.production) delete extensions.stacktrace;
      // The security rules (depth, aliases, cost) say BAD_USER_INPUT; Apollo wraps them as validation errors.
      const inner = (original as { originalError?: { extensions?: { code?: unknown } } })?.originalError;
      if (code === 'GRAPHQL_VALIDATION_FAILED' && inner?.extensions?.code === 'BAD_USER_INPUT') {
        extensions.code = 'BAD_USER_INPUT';
      }
      return { ...base, extensions };
    }
    logger.error(
      { err: original, path: formatted.path },
      'unexpected error while executing a GraphQL operation',
    );
    return { ...base, message: 'internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } };
  };
}
