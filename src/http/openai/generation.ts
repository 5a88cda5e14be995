/**
 * `POST /v1/completions` and `POST /v1/chat/completions`, one flow for both (the dialect in shapes.ts gives
 * the parser and the response shapes): authenticate from the headers (401/403/429 before the body is read),
 * read the body within the route's limit (413), parse and check it (400 naming the parameter; nothing is
 * reserved or queued), reserve the generation token budget GraphQL's generate uses (429 `tokens`), then run
 * it through the same GenerationService as GraphQL — so the same greedy request gives the same text — and
 * answer JSON, or stream SSE chunks ending in `data: [DONE]`. The unused part of the reservation goes back
 * when the generation ends; a refusal gives all of it back; a client that leaves keeps it spent (as GraphQL).
 * Closing the connection aborts the generation: its row leaves the running batch at the next step.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { asDeltagateError } from '../../resolvers/error-mapping.js';
import type { GenerationReservation } from '../../resolvers/security/index.js';
import type { GenerateInput, GenerationChunk, Usage } from '../../services/generation.js';
import type { CustomerActor } from '../../services/index.js';
import { BodyTooLargeError, closeAfterResponse } from '../body.js';
import { sendJson } from '../json.js';
import type { RouteContext } from '../router.js';
import { authenticate, modelInput, refuseBeforeBody, type OpenAIOptions } from './context.js';
import { invalidRequest, OpenAIError, sendOpenAIError, toOpenAIError, type ParamNames } from './errors.js';
import type { ParsedRequest } from './params.js';
import type { Dialect, ResponseMeta } from './shapes.js';
import { SseWriter } from './sse.js';

/** The service's field names → the parameters the client sent. */
function paramNames(parsed: ParsedRequest, chat: boolean): ParamNames {
  return {
    maxTokens: parsed.maxTokensParam,
    prompt: chat ? 'messages' : 'prompt',
    promptIds: 'prompt',
    messages: 'messages',
    topP: 'top_p',
    topK: 'top_k',
  };
}

/** The service's "no tokenizer" refusal in the terms of this API. */
function explain(err: OpenAIError, model: string, chat: boolean): OpenAIError {
  if (err.status !== 400 || !/has no tokenizer\.json: give promptIds/.test(err.message)) return err;
  const message = chat
    ? `The model '${model}' has no tokenizer (no tokenizer.json), so it cannot take chat messages: use /v1/completions with a prompt of token ids.`
    : `The model '${model}' has no tokenizer (no tokenizer.json): give the prompt as an array of token ids.`;
  return new OpenAIError(400, message, err.type, err.param, err.code, err.headers);
}

/** A refusal ran nothing: all of it back. A client that left, or an internal failure, keeps it spent. */
function settleFailure(reservation: GenerationReservation | undefined, err: unknown, signal: AbortSignal) {
  const code = asDeltagateError(err)?.code;
  if (code !== undefined && code !== 'INTERNAL_SERVER_ERROR' && !signal.aborted) reservation?.settle(0);
}

export function generationHandler(o: OpenAIOptions, dialect: Dialect) {
  const chat = dialect.idPrefix === 'chatcmpl';
  return async (req: IncomingMessage, res: ServerResponse, ctx: RouteContext): Promise<void> => {
    let actor: CustomerActor;
    try {
      actor = await authenticate(o, req);
    } catch (err) {
      return refuseBeforeBody(req, res, err, o.logger);
    }

    let parsed: ParsedRequest;
    try {
      const raw = await ctx.readBody();
      let json: unknown;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        throw invalidRequest(
          'We could not parse the JSON body of your request. The API expects a JSON payload.',
          null,
        );
      }
      parsed = dialect.parse(json);
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        closeAfterResponse(req, res);
        return sendOpenAIError(
          res,
          new OpenAIError(413, `${err.message}`, 'invalid_request_error', null, 'request_too_large'),
        );
      }
      return sendOpenAIError(res, toOpenAIError(err, o.logger));
    }

    const input: GenerateInput = { ...parsed.input, ...modelInput(o.services, parsed.model) };
    const errorOptions = { model: parsed.model, params: paramNames(parsed, chat) };
    const fail = (err: unknown) => explain(toOpenAIError(err, o.logger, errorOptions), parsed.model, chat);
    let reservation: GenerationReservation | undefined;
    try {
      reservation = o.generationBudget?.reserve(actor, input);
    } catch (err) {
      return sendOpenAIError(res, toOpenAIError(err, o.logger, { ...errorOptions, rateLimitType: 'tokens' }));
    }

    // The client closing the connection before the answer is complete stops the generation.
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const meta: ResponseMeta = {
      id: `${dialect.idPrefix}-${randomUUID().replace(/-/g, '')}`,
      created: Math.floor(Date.now() / 1000),
      model: parsed.model,
      includeUsage: parsed.includeUsage,
    };

    if (!parsed.stream) {
      try {
        const g = await o.services.generation.generate(actor, input, { signal: abort.signal });
        reservation?.settle(g.usage.totalTokens);
        sendJson(res, 200, dialect.complete(meta, g));
      } catch (err) {
        settleFailure(reservation, err, abort.signal);
        if (!abort.signal.aborted) sendOpenAIError(res, fail(err));
      }
      return;
    }

    let chunks: AsyncIterableIterator<GenerationChunk>;
    try {
      // Everything that can be refused is refused here, before the first byte of the stream.
      chunks = await o.services.generation.generateStream(actor, input, { signal: abort.signal });
    } catch (err) {
      settleFailure(reservation, err, abort.signal);
      if (!abort.signal.aborted) sendOpenAIError(res, fail(err));
      return;
    }
    const sse = new SseWriter(res);
    const first = dialect.start(meta);
    if (first !== null) sse.send(first);
    let usage: Usage | undefined;
    try {
      for await (const c of chunks) {
        if (c.text !== '') sse.send(dialect.delta(meta, c.text));
        if (c.finishReason !== null) {
          sse.send(dialect.finish(meta, c.finishReason));
          usage = c.usage;
        }
      }
    } catch (err) {
      settleFailure(reservation, err, abort.signal);
      if (abort.signal.aborted) return; // the client left: nobody to tell
      sse.send({ error: fail(err).body });
      sse.end();
      return;
    }
    reservation?.settle(usage?.totalTokens ?? reservation.tokens);
    if (parsed.includeUsage && usage !== undefined) sse.send(dialect.usage(meta, usage));
    sse.done();
  };
}
