/**
 * The OpenAI-compatible REST API on `/v1` (docs/API.md, "OpenAI-compatible API"): `GET /v1/models`,
 * `GET /v1/models/{model}`, `POST /v1/completions`, `POST /v1/chat/completions`, and OpenAI's 404 for any
 * other `/v1` path. Routes for the router (src/http/router.ts); src/http/server.ts adds them.
 */
import { sendOpenAIError, OpenAIError } from './errors.js';
import type { Route } from '../router.js';
import type { OpenAIOptions } from './context.js';
import { generationHandler } from './generation.js';
import { modelsHandlers } from './models.js';
import { chat, completions } from './shapes.js';

export type { OpenAIOptions } from './context.js';

/** 1 MiB: a long chat history fits many times over (prompts are capped at 64 Ki characters anyway). */
export const OPENAI_BODY_LIMIT = 1024 * 1024;

export function openAIRoutes(o: OpenAIOptions): Route[] {
  const models = modelsHandlers(o);
  return [
    { methods: ['GET'], pattern: '/v1/models', handler: models.list },
    { methods: ['GET'], pattern: '/v1/models/:model', handler: models.retrieve },
    {
      methods: ['POST'],
      pattern: '/v1/completions',
      maxBodyBytes: o.maxBodyBytes,
      handler: generationHandler(o, completions),
    },
    {
      methods: ['POST'],
      pattern: '/v1/chat/completions',
      maxBodyBytes: o.maxBodyBytes,
      handler: generationHandler(o, chat),
    },
    {
      // What OpenAI answers for a path (or a method on a path) it does not serve.
      methods: '*',
      pattern: '/v1/*',
      handler: (req, res, { url }) =>
        sendOpenAIError(
          res,
          new OpenAIError(404, `Invalid URL (${req.method} ${url.pathname})`, 'invalid_request_error'),
        ),
    },
  ];
}
