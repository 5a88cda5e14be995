/**
 * OpenAI-shaped errors for the `/v1` routes: `{ "error": { "message", "type", "code", "param" } }` with the
 * HTTP status OpenAI uses — 400 invalid_request_error, 401 invalid_api_key, 403, 404 model_not_found, 413,
 * 429 (rate_limit_exceeded with `Retry-After`; insufficient_quota without, and `x-should-retry: false` so
 * the SDKs do not retry a used-up month), 500 server_error. `OpenAIError` is what request validation throws;
 * `fromDeltagateError` turns the services' stable codes into the same shape (one mapping for every route).
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { asDeltagateError } from '../../resolvers/error-mapping.js';
import type { DeltagateError } from '../../shared/errors.js';
import { sendJson } from '../json.js';

export interface OpenAIErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export class OpenAIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (Retry-After, x-should-retry). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'OpenAIError';
  }

  get body(): OpenAIErrorBody {
    return { message: this.message, type: this.type, param: this.param, code: this.code };
  }
}

/** 400 invalid_request_error naming the parameter. */
export function invalidRequest(
  message: string,
  param: string | null,
  code: string | null = null,
): OpenAIError {
  return new OpenAIError(400, message, 'invalid_request_error', param, code);
}

/** The service's field names (GraphQL's camelCase) as the OpenAI parameter the client sent. */
export type ParamNames = Partial<Record<string, string>>;

/**
 * A DeltagateError as the OpenAI error a client gets. `model` is the requested model (for the 404 text),
 * `params` maps the service's `details.field` to the request's parameter name, `rateLimitType` says which
 * bucket a RATE_LIMITED came from ('requests' for the per-key limiter, 'tokens' for the generation budget).
 */
export function fromDeltagateError(
  err: DeltagateError,
  opts: { model?: string; params?: ParamNames; rateLimitType?: 'requests' | 'tokens' } = {},
): OpenAIError {
  const field = typeof err.details?.field === 'string' ? err.details.field : null;
  const param = field === null ? null : (opts.params?.[field] ?? field);
  switch (err.code) {
    case 'BAD_USER_INPUT': {
      // The service says `maxTokens`; the client sent `max_tokens` (only camelCase names are rewritten).
      let message = err.message;
      for (const [from, to] of Object.entries(opts.params ?? {}))
        if (to !== undefined && /[A-Z]/.test(from))
          message = message.replace(new RegExp(`\\b${from}\\b`, 'g'), to);
      const code = /exceeds the context/.test(message) ? 'context_length_exceeded' : null;
      return new OpenAIError(400, message, 'invalid_request_error', param, code);
    }
    case 'UNAUTHENTICATED':
      return new OpenAIError(
        401,
        `${err.message}: send Authorization: Bearer <a deltagate API key>`,
        'invalid_request_error',
        null,
        'invalid_api_key',
      );
    case 'FORBIDDEN':
      return new OpenAIError(403, err.message, 'permission_error', null, 'permission_denied');
    case 'NOT_FOUND':
      return opts.model === undefined
        ? new OpenAIError(404, err.message, 'invalid_request_error', null, 'not_found')
        : modelNotFound(opts.model);
    case 'CONFLICT':
      return new OpenAIError(409, err.message, 'invalid_request_error', null, 'conflict');
    case 'QUOTA_EXCEEDED':
      return new OpenAIError(429, err.message, 'insufficient_quota', null, 'insufficient_quota', {
        'x-should-retry': 'false',
      });
    case 'RATE_LIMITED': {
      const s = Number(err.details?.retryAfterSeconds);
      const wait = Number.isFinite(s) && s > 0 ? Math.ceil(s) : 1;
      return new OpenAIError(
        429,
        err.message,
        opts.rateLimitType ?? 'requests',
        null,
        'rate_limit_exceeded',
        {
          'retry-after': String(wait),
        },
      );
    }
    default:
      // INTERNAL_SERVER_ERROR raised on purpose (e.g. an adapter that failed its SHA-256 check) says why.
      return new OpenAIError(500, err.message, 'server_error');
  }
}

/** OpenAI's own 404 for a model the caller cannot use: another tenant's adapter reads exactly the same. */
export function modelNotFound(model: string): OpenAIError {
  return new OpenAIError(
    404,
    `The model '${model}' does not exist or you do not have access to it.`,
    'invalid_request_error',
    'model',
    'model_not_found',
  );
}

/**
 * Any error as an OpenAI error: OpenAIError as it is, a DeltagateError through the mapping, anything else
 * (a bug) logged and answered as a bare 500.
 */
export function toOpenAIError(
  err: unknown,
  logger: Logger,
  opts: Parameters<typeof fromDeltagateError>[1] = {},
): OpenAIError {
  if (err instanceof OpenAIError) return err;
  const known = asDeltagateError(err);
  if (known !== null) {
    if (known.code === 'INTERNAL_SERVER_ERROR') logger.error({ err: known }, 'internal error');
    return fromDeltagateError(known, opts);
  }
  logger.error({ err }, 'unexpected error in an OpenAI-compatible route');
  return new OpenAIError(500, 'The server had an error while processing your request.', 'server_error');
}

export function sendOpenAIError(res: ServerResponse, err: OpenAIError): void {
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  sendJson(res, err.status, { error: err.body });
}
