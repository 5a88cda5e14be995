/**
 * `createGenerationBudget({ tokensPerMinute })`: generation is rate limited by what it costs, not by request.
 * Each `generate` / `generateStream` reserves its worst case — maxTokens (default 64) plus its prompt (text,
 * ids or chat messages) — from the customer's token bucket before the service sees it, and gives back what
 * it did not use once it is done (a refusal before running gives everything back). Per customer, not per
 * key: a customer can mint keys. The admin shares one bucket. The per-request limiter (`rate-limiter.ts`)
 * still applies on top, and `generation-limit.ts` keeps a request to one generate field.
 */
import type { Actor } from '../../services/index.js';
import { createRateLimiter } from './rate-limiter.js';

/** maxTokens when the request gives none (the generation service's default). */
export const DEFAULT_MAX_TOKENS = 64;
/** Prompt text is charged before tokenization at this many UTF-8 bytes a token (BPE averages ~4). */
const BYTES_PER_PROMPT_TOKEN = 4;

export interface GenerationRequestShape {
  prompt?: string | null;
  promptIds?: readonly number[] | null;
  messages?: readonly { role: string; content: string }[] | null;
  maxTokens?: number | null;
}

/** Template tokens around each chat message (role markers, separators), charged on top of its content. */
const TOKENS_PER_MESSAGE = 4;

/**
 * The tokens a request reserves: its maxTokens plus its prompt — ids exactly, text and chat messages
 * estimated from their UTF-8 size (plus a few template tokens a message).
 */
export function generationCost(input: GenerationRequestShape): number {
  const max = input.maxTokens;
  const completion =
    typeof max === 'number' && Number.isSafeInteger(max) && max > 0 ? max : DEFAULT_MAX_TOKENS;
  const textTokens = (text: unknown) =>
    Math.ceil(Buffer.byteLength(typeof text === 'string' ? text : '', 'utf8') / BYTES_PER_PROMPT_TOKEN);
  let prompt = 0;
  if (input.promptIds) prompt = input.promptIds.length;
  else if (input.messages)
    for (const m of input.messages) prompt += TOKENS_PER_MESSAGE + textTokens(m.content);
  else prompt = textTokens(input.prompt);
  return completion + prompt;
}

export interface GenerationReservation {
  /** Tokens taken from the bucket. */
  readonly tokens: number;
  /** The request is over: `used` tokens stay spent, the rest of the reservation goes back (once). */
  settle(used: number): void;
}

export interface GenerationBudget {
  /** Takes the request's cost from the caller's bucket, or throws RateLimitExceededError (RATE_LIMITED). */
  reserve(actor: Actor, input: GenerationRequestShape): GenerationReservation;
}

export interface GenerationBudgetOptions {
  tokensPerMinute: number;
  /** Injectable clock (ms), for tests. */
  now?: () => number;
}

export function createGenerationBudget(options: GenerationBudgetOptions): GenerationBudget {
  const burst = options.tokensPerMinute;
  const buckets = createRateLimiter({
    perMinute: options.tokensPerMinute,
    ...(options.now ? { now: options.now } : {}),
  });
  return {
    reserve(actor, input) {
      const key = actor.role === 'ADMIN' ? 'admin' : `customer:${actor.customerId}`;
      // A request larger than the whole bucket waits for a full one instead of never running.
      const tokens = Math.min(generationCost(input), burst);
      buckets.consume(key, tokens);
      let settled = false;
      return {
        tokens,
        settle(used) {
          if (settled) return;
          settled = true;
          buckets.refund(key, tokens - Math.max(0, used));
        },
      };
    },
  };
}
