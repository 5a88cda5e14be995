/**
 * Dataset rows → token ids + a loss mask, ready for batching. Prompt tokens are masked for PROMPT_COMPLETION
 * and CHAT rows (only the completion / assistant turns are learned); TEXT rows learn every token. Chat rows
 * are rendered with the tokenizer's `chat_template` (src/engine/formats/chat-template.ts, shared with generation).
 * JSONL validation is not here: `dataset-rows.ts` (validateDataset) produces the rows this module consumes.
 */
import { renderChat } from '../engine/formats/chat-template.js';
import type { ChatMessage, DatasetFormat, DatasetRow } from './dataset-rows.js';
import { TrainingDataError } from './errors.js';

export type { DatasetFormat, DatasetRow };

/** What training needs of a tokenizer (formats' `loadTokenizer` result satisfies it). */
export interface TrainingTokenizer {
  /** Must not add BOS when `addBos: false` (BOS is placed once, here). */
  encode(text: string, opts?: { addBos?: boolean }): number[];
  decode?(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  bosTokenId: number | null;
  eosTokenIds: readonly number[];
  /** Whether the model expects a leading BOS (tokenizer_config's add_bos_token). */
  addBosToken: boolean;
  chatTemplate: string | null;
}

export { DEFAULT_CHAT_TEMPLATE } from '../engine/formats/chat-template.js';

/** One example: `ids[t]` is learned (predicted from ids[..t)) exactly when `mask[t] === 1`; mask[0] is 0. */
export interface EncodedExample {
  ids: Int32Array;
  mask: Uint8Array;
}

export interface EncodeStats {
  rows: number;
  kept: number;
  truncated: number;
  /** Rows with nothing to learn (e.g. a prompt longer than maxSeqLen). */
  dropped: number;
  /** Learned (unmasked) tokens over all kept rows. */
  targetTokens: number;
}

export interface EncodeOptions {
  format: DatasetFormat;
  maxSeqLen: number;
}

class Builder {
  ids: number[] = [];
  mask: number[] = [];
  push(tokens: readonly number[], learn: boolean): void {
    for (const t of tokens) {
      this.ids.push(t);
      this.mask.push(learn ? 1 : 0);
    }
  }
}

function enc(tok: TrainingTokenizer, text: string): number[] {
  return text.length === 0 ? [] : tok.encode(text, { addBos: false });
}

/**
 * Chat: the rendered conversation, split at each assistant turn so only what the assistant says (and the
 * template's end-of-turn text after it) is learned. Prefixes are rendered with the generation prompt, which
 * is exactly the text the model is conditioned on at inference time.
 */
function encodeChat(tok: TrainingTokenizer, messages: ChatMessage[], b: Builder): void {
  let done = '';
  for (let i = 0; i < messages.length; i++) {
    if (messages[i]!.role !== 'assistant') continue;
    const prefix = renderChat(tok, messages.slice(0, i), true);
    const full = renderChat(tok, messages.slice(0, i + 1), false);
    if (!prefix.startsWith(done) || !full.startsWith(prefix)) {
      throw new TrainingDataError('chat template is not prefix-stable; cannot locate assistant turns');
    }
    b.push(enc(tok, prefix.slice(done.length)), false);
    b.push(enc(tok, full.slice(prefix.length)), true);
    done = full;
  }
  const all = renderChat(tok, messages, false);
  if (all.length > done.length && all.startsWith(done)) b.push(enc(tok, all.slice(done.length)), false);
}

/**
 * One row → ids + mask. BOS leads when the tokenizer says the model expects it (what the generator's
 * `encode(prompt)` produces too), unless a chat template already wrote it. PROMPT_COMPLETION and TEXT rows end
 * in EOS, learned, so the model learns to stop; chat turns end with whatever the template closes a turn with.
 */
export function encodeRow(tok: TrainingTokenizer, row: DatasetRow, format: DatasetFormat): EncodedExample {
  const b = new Builder();
  const bos = tok.bosTokenId;
  const eos = tok.eosTokenIds[0];
  if (tok.addBosToken && bos !== null) b.push([bos], false);
  if (format === 'CHAT') {
    if (!('messages' in row)) throw new TrainingDataError('CHAT format expects rows with "messages"');
    encodeChat(tok, row.messages, b);
    // A template that spells bos_token itself (Llama 2) must not get a second one.
    if (b.ids.length > 1 && b.ids[0] === bos && b.ids[1] === bos) {
      b.ids.shift();
      b.mask.shift();
    }
  } else {
    if (format === 'PROMPT_COMPLETION') {
      if (!('prompt' in row))
        throw new TrainingDataError('PROMPT_COMPLETION format expects "prompt"/"completion"');
      b.push(enc(tok, row.prompt), false);
      b.push(enc(tok, row.completion), true);
    } else {
      if (!('text' in row)) throw new TrainingDataError('TEXT format expects rows with "text"');
      b.push(enc(tok, row.text), true);
    }
    if (eos !== undefined) b.push([eos], true);
  }
  const mask = Uint8Array.from(b.mask);
  if (mask.length > 0) mask[0] = 0; // nothing predicts the first token
  return { ids: Int32Array.from(b.ids), mask };
}

/** Encodes every row, truncating to `maxSeqLen` and dropping rows left with nothing to learn. */
export function encodeRows(
  tok: TrainingTokenizer,
  rows: readonly DatasetRow[],
  o: EncodeOptions,
): { examples: EncodedExample[]; stats: EncodeStats } {
  if (rows.length === 0) throw new TrainingDataError('the dataset has no rows');
  const examples: EncodedExample[] = [];
  const stats: EncodeStats = { rows: rows.length, kept: 0, truncated: 0, dropped: 0, targetTokens: 0 };
  for (const row of rows) {
    let ex = encodeRow(tok, row, o.format);
    if (ex.ids.length > o.maxSeqLen) {
      stats.truncated += 1;
      ex = { ids: ex.ids.slice(0, o.maxSeqLen), mask: ex.mask.slice(0, o.maxSeqLen) };
    }
    let targets = 0;
    for (let t = 1; t < ex.mask.length; t++) targets += ex.mask[t]!;
    if (targets === 0) {
      stats.dropped += 1;
      continue;
    }
    stats.kept += 1;
    stats.targetTokens += targets;
    examples.push(ex);
  }
  if (examples.length === 0) {
    throw new TrainingDataError(
      `no usable rows: all ${rows.length} rows have nothing to learn within max-seq-len ${o.maxSeqLen}`,
      { ...stats },
    );
  }
  return { examples, stats };
}
