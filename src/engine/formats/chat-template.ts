/**
 * Chat messages → the text a model is conditioned on, through the tokenizer's `chat_template` (Jinja, rendered by
 * @huggingface/jinja) or DEFAULT_CHAT_TEMPLATE, and → the prompt ids generation feeds (BOS placed exactly as
 * training places it). One renderer for training's data encoding (src/training/encode-rows.ts) and for
 * generation (src/services/generation.ts), so a model is prompted at inference the way it was trained.
 */
import { Template } from '@huggingface/jinja';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** What rendering needs of a tokenizer (formats' `loadTokenizer` result satisfies it). */
export interface ChatTokenizer {
  /** Must not add BOS when `addBos: false`. */
  encode(text: string, opts?: { addBos?: boolean }): number[];
  decode?(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  bosTokenId: number | null;
  eosTokenIds: readonly number[];
  addBosToken: boolean;
  chatTemplate: string | null;
}

/**
 * Used when the tokenizer has no `chat_template`: ChatML, the layout most open chat models use (and the
 * built-in model's). `<|im_start|>{role}\n{content}<|im_end|>\n` per message; the generation prompt is
 * `<|im_start|>assistant\n`.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const compiled = new Map<string, Template>();

export function renderChat(
  tok: ChatTokenizer,
  messages: readonly ChatMessage[],
  addGenerationPrompt: boolean,
): string {
  const source = tok.chatTemplate ?? DEFAULT_CHAT_TEMPLATE;
  let template = compiled.get(source);
  if (!template) {
    template = new Template(source);
    compiled.set(source, template);
  }
  const special = (id: number | null | undefined): string =>
    id === null || id === undefined || !tok.decode ? '' : tok.decode([id], { skipSpecialTokens: false });
  return template.render({
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    add_generation_prompt: addGenerationPrompt,
    bos_token: special(tok.bosTokenId),
    eos_token: special(tok.eosTokenIds[0]),
  });
}

/**
 * The ids generation feeds for a conversation: BOS when the model expects it (unless the template already wrote
 * one), then the rendered conversation with the assistant's generation prompt — the same tokens training
 * conditions an assistant turn on (encode-rows.ts).
 */
export function chatPromptIds(tok: ChatTokenizer, messages: readonly ChatMessage[]): number[] {
  const text = renderChat(tok, messages, true);
  const ids = text.length === 0 ? [] : tok.encode(text, { addBos: false });
  const bos = tok.bosTokenId;
  if (!tok.addBosToken || bos === null) return ids;
  return ids[0] === bos ? ids : [bos, ...ids];
}
