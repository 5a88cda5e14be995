/**
 * Expected failures: small named classes with a stable `code` (the GraphQL `extensions.code` they map to).
 * Thrown once where the context is known; `src/resolvers/error-mapping.ts` is the one place that turns them
 * into GraphQL errors. Anything that is not a DeltagateError is a bug and maps to INTERNAL_SERVER_ERROR.
 * This module is a leaf: every layer, the engine included, may import it.
 */
export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'CONFLICT'
  | 'QUOTA_EXCEEDED'
  | 'RATE_LIMITED'
  | 'INTERNAL_SERVER_ERROR';

export class DeltagateError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options?.details;
  }
  readonly details: Record<string, unknown> | undefined;
}

/** Bad input from a user: a file, a name, a parameter. Never retried. */
export class BadInputError extends DeltagateError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super('BAD_USER_INPUT', message, options);
  }
}

export class NotFoundError extends DeltagateError {
  constructor(what: string, id?: string) {
    super('NOT_FOUND', id === undefined ? `${what} not found` : `${what} ${id} not found`);
  }
}

export class ConflictError extends DeltagateError {
  constructor(message: string) {
    super('CONFLICT', message);
  }
}

export class ForbiddenError extends DeltagateError {
  constructor(message = 'forbidden') {
    super('FORBIDDEN', message);
  }
}

export class UnauthenticatedError extends DeltagateError {
  constructor(message = 'missing or invalid API key') {
    super('UNAUTHENTICATED', message);
  }
}

export class QuotaExceededError extends DeltagateError {
  constructor(message: string) {
    super('QUOTA_EXCEEDED', message);
  }
}

/** Too much at once; `retryAfterSeconds` (in extensions, and Retry-After over HTTP) says when to try again. */
export class RateLimitedError extends DeltagateError {
  constructor(message = 'rate limited', retryAfterSeconds = 1) {
    super('RATE_LIMITED', message, { details: { retryAfterSeconds } });
  }
}
