/**
 * The response objects of `/v1/completions` (`text_completion`) and `/v1/chat/completions`
 * (`chat.completion`, streamed as `chat.completion.chunk`), field for field as OpenAI sends them. A
 * `Dialect` is one endpoint's request parser plus its shapes; generation.ts drives both the same way.
 */
import type { FinishReason, Generation, Usage } from '../../services/generation.js';
import { parseChatRequest, parseCompletionRequest, type ParsedRequest } from './params.js';

export interface ResponseMeta {
  id: string;
  /** Unix seconds. */
  created: number;
  /** The `model` the client asked for, as it asked. */
  model: string;
  /** `stream_options.include_usage`: every chunk carries `usage: null`, a last one the totals. */
  includeUsage: boolean;
}

export interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const usageOf = (u: Usage): OpenAIUsage => ({
  prompt_tokens: u.promptTokens,
  completion_tokens: u.completionTokens,
  total_tokens: u.totalTokens,
});

export const finishReasonOf = (r: FinishReason): 'stop' | 'length' => (r === 'STOP' ? 'stop' : 'length');

export interface Dialect {
  /** OpenAI's id prefix: `cmpl` or `chatcmpl`. */
  idPrefix: string;
  parse(json: unknown): ParsedRequest;
  /** The whole answer of a non-streamed request. */
  complete(meta: ResponseMeta, g: Generation): unknown;
  /** The chunk sent before any text (chat: the assistant's role), or null. */
  start(meta: ResponseMeta): unknown;
  delta(meta: ResponseMeta, text: string): unknown;
  finish(meta: ResponseMeta, reason: FinishReason): unknown;
  /** The `include_usage` chunk: no choices, the totals. */
  usage(meta: ResponseMeta, usage: Usage): unknown;
}

const streamed = (meta: ResponseMeta) => (meta.includeUsage ? { usage: null } : {});

export const completions: Dialect = {
  idPrefix: 'cmpl',
  parse: parseCompletionRequest,
  complete: (meta, g) => ({
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [{ text: g.text, index: 0, logprobs: null, finish_reason: finishReasonOf(g.finishReason) }],
    usage: usageOf(g.usage),
  }),
  start: () => null,
  delta: (meta, text) => ({
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [{ text, index: 0, logprobs: null, finish_reason: null }],
    ...streamed(meta),
  }),
  finish: (meta, reason) => ({
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [{ text: '', index: 0, logprobs: null, finish_reason: finishReasonOf(reason) }],
    ...streamed(meta),
  }),
  usage: (meta, usage) => ({
    id: meta.id,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    choices: [],
    usage: usageOf(usage),
  }),
};

const chunk = (meta: ResponseMeta, choices: unknown[]) => ({
  id: meta.id,
  object: 'chat.completion.chunk',
  created: meta.created,
  model: meta.model,
  choices,
});

export const chat: Dialect = {
  idPrefix: 'chatcmpl',
  parse: parseChatRequest,
  complete: (meta, g) => ({
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: g.text, refusal: null },
        logprobs: null,
        finish_reason: finishReasonOf(g.finishReason),
      },
    ],
    usage: usageOf(g.usage),
  }),
  start: (meta) => ({
    ...chunk(meta, [
      {
        index: 0,
        delta: { role: 'assistant', content: '', refusal: null },
        logprobs: null,
        finish_reason: null,
      },
    ]),
    ...streamed(meta),
  }),
  delta: (meta, text) => ({
    ...chunk(meta, [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }]),
    ...streamed(meta),
  }),
  finish: (meta, reason) => ({
    ...chunk(meta, [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReasonOf(reason) }]),
    ...streamed(meta),
  }),
  usage: (meta, usage) => ({ ...chunk(meta, []), usage: usageOf(usage) }),
};
