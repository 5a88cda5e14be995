/**
 * GraphQL over HTTP with the signed-in key: `gql(query, variables)` POSTs to /graphql and returns `data`, or
 * throws an ApiError carrying the server's stable `extensions.code` (UNAUTHENTICATED, BAD_USER_INPUT, …) so
 * pages can say what went wrong. A 401 anywhere signs the console out (the key was revoked).
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

type Listener = (err: ApiError) => void;
const unauthenticatedListeners = new Set<Listener>();

/** Called when any request answers UNAUTHENTICATED (the app signs out and shows why). */
export function onUnauthenticated(listener: Listener): () => void {
  unauthenticatedListeners.add(listener);
  return () => unauthenticatedListeners.delete(listener);
}

let currentKey: string | null = null;

export function setApiKey(key: string | null): void {
  currentKey = key;
}

export function apiKey(): string | null {
  return currentKey;
}

/** The first error of an answer as an ApiError. */
export function toApiError(errors: NonNullable<GraphQLResponse<unknown>['errors']>): ApiError {
  const first = errors[0]!;
  const { code, ...details } = first.extensions ?? {};
  return new ApiError(first.message, typeof code === 'string' ? code : 'INTERNAL_SERVER_ERROR', details);
}

export async function gql<T>(
  query: string,
  variables: Record<string, unknown> = {},
  options: { key?: string; signal?: AbortSignal } = {},
): Promise<T> {
  const key = options.key ?? currentKey;
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(key ? { authorization: `Bearer ${key}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
      signal: options.signal,
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError('The API cannot be reached. Is the server running?', 'NETWORK_ERROR');
  }
  let body: GraphQLResponse<T>;
  try {
    body = (await response.json()) as GraphQLResponse<T>;
  } catch {
    throw new ApiError(`The API answered HTTP ${response.status} without a GraphQL body.`, 'NETWORK_ERROR');
  }
  if (body.errors?.length) {
    const error = toApiError(body.errors);
    if (error.code === 'UNAUTHENTICATED' && options.key === undefined)
      for (const listener of unauthenticatedListeners) listener(error);
    throw error;
  }
  if (body.data == null)
    throw new ApiError(`The API answered HTTP ${response.status} with no data.`, 'INTERNAL_SERVER_ERROR');
  return body.data;
}

/** A message for the user: the server's own words for known codes, a generic one otherwise. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.code === 'RATE_LIMITED' && typeof err.details.retryAfterSeconds === 'number')
      return `${err.message} (try again in ${Math.ceil(err.details.retryAfterSeconds)} s)`;
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}
