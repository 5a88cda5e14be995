/**
 * Request bodies of `/v1/completions` and `/v1/chat/completions` → the generation service's input, checked
 * the way OpenAI checks them: a wrong type or an out-of-range value is a 400 naming the parameter, a field
 * OpenAI does not know is refused (`unknown_parameter`), and a field OpenAI knows but deltagate does not
 * implement is accepted only with its neutral value (`logprobs: false`, `frequency_penalty: 0`, `tools: []`,
 * …) and otherwise refused with `unsupported_parameter` — never silently ignored. A few fields that change
 * nothing about the text (`user`, `metadata`, `service_tier`, `parallel_tool_calls`) are accepted and
 * ignored. `top_k` is accepted as an extension (vLLM's). Nothing here touches a service.
 */
import type { GenerateInput } from '../../services/generation.js';
import { invalidRequest, type OpenAIError } from './errors.js';

type Body = Record<string, unknown>;

export interface ParsedRequest {
  model: string;
  /** Everything but the model reference (`adapter` / `baseModelId` come from `model`). */
  input: GenerateInput;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with `usage` and no choices. */
  includeUsage: boolean;
  /** The parameter the client used for the completion limit (error messages name it). */
  maxTokensParam: 'max_tokens' | 'max_completion_tokens';
}

const typeName = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;

function invalidType(param: string, expected: string, value: unknown): OpenAIError {
  return invalidRequest(
    `Invalid type for '${param}': expected ${expected}, but got ${typeName(value)} instead.`,
    param,
    'invalid_type',
  );
}

function invalidValue(param: string, message: string): OpenAIError {
  return invalidRequest(`Invalid '${param}': ${message}`, param, 'invalid_value');
}

function unsupported(param: string, what: string): OpenAIError {
  const which = what === '' ? '' : ` ${what}`;
  return invalidRequest(`'${param}'${which} is not supported by deltagate.`, param, 'unsupported_parameter');
}

const absent = (v: unknown): v is null | undefined => v === null || v === undefined;

function number(
  body: Body,
  param: string,
  range: { min: number; max: number; integer?: boolean },
): number | undefined {
  const v = body[param];
  if (absent(v)) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw invalidType(param, range.integer ? 'an integer' : 'a number', v);
  if (range.integer && !Number.isSafeInteger(v)) throw invalidType(param, 'an integer', v);
  if (v < range.min || v > range.max)
    throw invalidValue(param, `expected a value from ${range.min} to ${range.max}, but got ${v} instead.`);
  return v;
}

function bool(body: Body, param: string): boolean | undefined {
  const v = body[param];
  if (absent(v)) return undefined;
  if (typeof v !== 'boolean') throw invalidType(param, 'a boolean', v);
  return v;
}

/** A field deltagate accepts only with the value that means "off". */
function neutral(body: Body, param: string, isNeutral: (v: unknown) => boolean, what: string): void {
  const v = body[param];
  if (absent(v) || isNeutral(v)) return;
  throw unsupported(param, what);
}

const isEmptyObject = (v: unknown) =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
const isEmptyArray = (v: unknown) => Array.isArray(v) && v.length === 0;

/** What both endpoints share: model, sampling, limits, stop, n, streaming, and the neutral-only fields. */
const COMMON = new Set([
  'model',
  'max_tokens',
  'temperature',
  'top_p',
  'top_k',
  'n',
  'stream',
  'stream_options',
  'stop',
  'seed',
  'user',
  'presence_penalty',
  'frequency_penalty',
  'logit_bias',
  'logprobs',
]);

const COMPLETION_FIELDS = new Set([...COMMON, 'prompt', 'echo', 'best_of', 'suffix']);

const CHAT_FIELDS = new Set([
  ...COMMON,
  'messages',
  'max_completion_tokens',
  'top_logprobs',
  'response_format',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'functions',
  'function_call',
  'store',
  'metadata',
  'service_tier',
  'modalities',
  'audio',
  'prediction',
  'reasoning_effort',
  'web_search_options',
]);

function requireObject(json: unknown): Body {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw invalidRequest(`The request body must be a JSON object, not ${typeName(json)}.`, null);
  return json as Body;
}

function refuseUnknown(body: Body, known: ReadonlySet<string>): void {
  for (const key of Object.keys(body)) {
    if (!known.has(key))
      throw invalidRequest(`Unrecognized request argument supplied: ${key}`, key, 'unknown_parameter');
  }
}

function parseStop(body: Body): string[] | undefined {
  const v = body.stop;
  if (absent(v)) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string'))
    throw invalidType('stop', 'a string or an array of strings', v);
  if (list.length > 8 || list.some((s: string) => s.length === 0 || s.length > 200))
    throw invalidValue('stop', 'at most 8 non-empty sequences of at most 200 characters each.');
  return list.length === 0 ? undefined : (list as string[]);
}

function parseCommon(body: Body): Omit<ParsedRequest, 'maxTokensParam'> {
  const model = body.model;
  if (absent(model))
    throw invalidRequest('you must provide a model parameter', 'model', 'missing_required_parameter');
  if (typeof model !== 'string') throw invalidType('model', 'a string', model);
  if (model === '') throw invalidValue('model', 'expected a non-empty string.');

  const n = number(body, 'n', { min: 1, max: 128, integer: true });
  if (n !== undefined && n !== 1)
    throw invalidRequest(
      `'n' must be 1: deltagate returns one choice per request (got ${n}); send ${n} requests instead.`,
      'n',
      'unsupported_value',
    );
  const stream = bool(body, 'stream') ?? false;
  let includeUsage = false;
  const so = body.stream_options;
  if (!absent(so)) {
    if (!stream)
      throw invalidRequest(
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        'stream_options',
        'invalid_value',
      );
    if (typeof so !== 'object' || Array.isArray(so)) throw invalidType('stream_options', 'an object', so);
    const options = so as Body;
    for (const key of Object.keys(options)) {
      if (key !== 'include_usage' && key !== 'include_obfuscation')
        throw invalidRequest(
          `Unrecognized request argument supplied: stream_options.${key}`,
          `stream_options.${key}`,
          'unknown_parameter',
        );
      if (!absent(options[key]) && typeof options[key] !== 'boolean')
        throw invalidType(`stream_options.${key}`, 'a boolean', options[key]);
    }
    includeUsage = options.include_usage === true;
  }

  const temperature = number(body, 'temperature', { min: 0, max: 2 });
  const topP = number(body, 'top_p', { min: 0, max: 1 });
  const rawTopK = number(body, 'top_k', { min: -1, max: 1_000_000, integer: true });
  // top_k ≤ 0 means "no top-k" (vLLM's convention); top_p 0 keeps only the most likely token.
  let topK = rawTopK !== undefined && rawTopK > 0 ? rawTopK : undefined;
  if (topP === 0) topK = 1;
  const seed = number(body, 'seed', {
    min: -Number.MAX_SAFE_INTEGER,
    max: Number.MAX_SAFE_INTEGER,
    integer: true,
  });

  const user = body.user;
  if (!absent(user) && typeof user !== 'string') throw invalidType('user', 'a string', user);
  for (const p of ['presence_penalty', 'frequency_penalty']) {
    number(body, p, { min: -2, max: 2 });
    neutral(body, p, (v) => v === 0, 'other than 0');
  }
  const lb = body.logit_bias;
  if (!absent(lb) && (typeof lb !== 'object' || Array.isArray(lb)))
    throw invalidType('logit_bias', 'an object', lb);
  neutral(body, 'logit_bias', isEmptyObject, 'with entries');

  return {
    model,
    stream,
    includeUsage,
    input: {
      temperature: temperature ?? null,
      topP: topP === undefined || topP === 0 ? null : topP,
      topK: topK ?? null,
      seed: seed ?? null,
      stop: parseStop(body) ?? null,
    },
  };
}

/** POST /v1/completions. */
export function parseCompletionRequest(json: unknown): ParsedRequest {
  const body = requireObject(json);
  refuseUnknown(body, COMPLETION_FIELDS);
  const common = parseCommon(body);
  const maxTokens = number(body, 'max_tokens', { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true });
  neutral(body, 'echo', (v) => v === false, '= true');
  neutral(body, 'best_of', (v) => v === 1, 'other than 1');
  neutral(body, 'suffix', (v) => v === '', '(insertion)');
  const lp = body.logprobs;
  if (!absent(lp) && typeof lp !== 'number') throw invalidType('logprobs', 'an integer', lp);
  neutral(body, 'logprobs', () => false, '');

  const prompt = body.prompt;
  const input: GenerateInput = { ...common.input, maxTokens: maxTokens ?? null };
  const isIds = (v: unknown): v is number[] =>
    Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x));
  if (absent(prompt))
    throw invalidRequest('you must provide a prompt parameter', 'prompt', 'missing_required_parameter');
  if (typeof prompt === 'string') input.prompt = prompt;
  else if (isIds(prompt)) input.promptIds = prompt;
  else if (Array.isArray(prompt) && prompt.length > 1 && (typeof prompt[0] === 'string' || isIds(prompt[0])))
    throw invalidRequest(
      `batched prompts (${prompt.length}) are not supported by deltagate: send one prompt per request.`,
      'prompt',
      'unsupported_value',
    );
  else if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string')
    input.prompt = prompt[0];
  else if (Array.isArray(prompt) && prompt.length === 1 && isIds(prompt[0])) input.promptIds = prompt[0];
  else throw invalidType('prompt', 'a string, an array of token ids, or an array with one of those', prompt);
  return { ...common, input, maxTokensParam: 'max_tokens' };
}

const CHAT_ROLES: Readonly<Record<string, 'system' | 'user' | 'assistant'>> = {
  system: 'system',
  // OpenAI's newer name for system instructions.
  developer: 'system',
  user: 'user',
  assistant: 'assistant',
};
const MESSAGE_FIELDS = new Set(['role', 'content', 'name', 'refusal']);

function parseMessages(v: unknown): { role: string; content: string }[] {
  if (absent(v))
    throw invalidRequest('you must provide a messages parameter', 'messages', 'missing_required_parameter');
  if (!Array.isArray(v)) throw invalidType('messages', 'an array', v);
  if (v.length === 0) throw invalidValue('messages', 'expected an array with at least one message.');
  return v.map((m: unknown, i) => {
    const at = `messages[${i}]`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw invalidType(at, 'an object', m);
    const msg = m as Body;
    if (typeof msg.role !== 'string') throw invalidType(`${at}.role`, 'a string', msg.role);
    const role = CHAT_ROLES[msg.role];
    if (role === undefined) {
      if (msg.role === 'tool' || msg.role === 'function')
        throw unsupported(`${at}.role`, `'${msg.role}' (tool calling)`);
      throw invalidValue(
        `${at}.role`,
        `expected one of system, developer, user, assistant, but got '${msg.role}'.`,
      );
    }
    for (const key of Object.keys(msg)) {
      if (key === 'tool_calls' || key === 'function_call' || key === 'tool_call_id' || key === 'audio')
        throw unsupported(`${at}.${key}`, '');
      if (!MESSAGE_FIELDS.has(key))
        throw invalidRequest(
          `Unrecognized request argument supplied: ${at}.${key}`,
          `${at}.${key}`,
          'unknown_parameter',
        );
    }
    const name = msg.name;
    if (!absent(name) && typeof name !== 'string') throw invalidType(`${at}.name`, 'a string', name);
    const content = msg.content;
    if (typeof content === 'string') return { role, content };
    if (Array.isArray(content)) {
      const text = content.map((part: unknown, j) => {
        const p = part as Body | null;
        if (typeof p !== 'object' || p === null) throw invalidType(`${at}.content[${j}]`, 'an object', part);
        if (p.type !== 'text')
          throw unsupported(`${at}.content[${j}].type`, `'${String(p.type)}' (text parts only)`);
        if (typeof p.text !== 'string') throw invalidType(`${at}.content[${j}].text`, 'a string', p.text);
        return p.text;
      });
      return { role, content: text.join('') };
    }
    throw invalidType(`${at}.content`, 'a string or an array of text parts', content);
  });
}

/** POST /v1/chat/completions. */
export function parseChatRequest(json: unknown): ParsedRequest {
  const body = requireObject(json);
  refuseUnknown(body, CHAT_FIELDS);
  const common = parseCommon(body);
  const range = { min: 1, max: Number.MAX_SAFE_INTEGER, integer: true };
  const maxTokens = number(body, 'max_tokens', range);
  const maxCompletion = number(body, 'max_completion_tokens', range);
  if (maxTokens !== undefined && maxCompletion !== undefined && maxTokens !== maxCompletion)
    throw invalidRequest(
      'max_tokens and max_completion_tokens are the same limit; give one of them.',
      'max_completion_tokens',
      'invalid_value',
    );
  const lp = body.logprobs;
  if (!absent(lp) && typeof lp !== 'boolean') throw invalidType('logprobs', 'a boolean', lp);
  neutral(body, 'logprobs', (v) => v === false, '= true');
  neutral(body, 'top_logprobs', (v) => v === 0, 'other than 0');
  neutral(
    body,
    'response_format',
    (v) => typeof v === 'object' && v !== null && (v as Body).type === 'text',
    'other than { "type": "text" }',
  );
  neutral(body, 'tools', isEmptyArray, '(tool calling)');
  neutral(body, 'functions', isEmptyArray, '(function calling)');
  neutral(body, 'tool_choice', (v) => v === 'none' || v === 'auto', '(tool calling)');
  neutral(body, 'function_call', (v) => v === 'none' || v === 'auto', '(function calling)');
  neutral(body, 'store', (v) => v === false, '= true (stored completions)');
  neutral(
    body,
    'modalities',
    (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
    'other than ["text"]',
  );
  for (const p of ['audio', 'prediction', 'reasoning_effort', 'web_search_options'])
    neutral(body, p, () => false, '');
  const ptc = body.parallel_tool_calls;
  if (!absent(ptc) && typeof ptc !== 'boolean') throw invalidType('parallel_tool_calls', 'a boolean', ptc);
  const md = body.metadata;
  if (!absent(md) && (typeof md !== 'object' || Array.isArray(md)))
    throw invalidType('metadata', 'an object', md);
  const tier = body.service_tier;
  if (!absent(tier) && typeof tier !== 'string') throw invalidType('service_tier', 'a string', tier);

  const messages = parseMessages(body.messages);
  return {
    ...common,
    input: { ...common.input, maxTokens: maxCompletion ?? maxTokens ?? null, messages },
    maxTokensParam: maxCompletion !== undefined ? 'max_completion_tokens' : 'max_tokens',
  };
}
