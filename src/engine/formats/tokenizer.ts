/**
 * Text ↔ token ids for a model directory: `tokenizer.json` through `@huggingface/tokenizers`, plus the
 * bos/eos tokens, `add_bos_token` and `chat_template` of `tokenizer_config.json`. BOS is added here, by
 * one rule, never by the tokenizer's post-processor, so no path adds it twice. Not the chat-template
 * renderer (that is the inference layer's, with @huggingface/jinja) and not a streaming detokenizer.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { BadInputError } from '../../shared/errors.js';

export interface TextTokenizer {
  /**
   * Text → ids. `addBos` defaults to `addBosToken`. `parseSpecial` (default true, as HF) turns special-token
   * text such as `</s>` into its id; pass false for untrusted user text so it stays plain text.
   */
  encode(text: string, opts?: { addBos?: boolean; parseSpecial?: boolean }): number[];
  /**
   * Ids → text; special tokens are skipped unless `skipSpecialTokens: false`. An incomplete UTF-8 byte
   * sequence (a character split across byte tokens) decodes to U+FFFD, so a streamer can hold it back.
   */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /**
   * `encode(text, { addBos: false, parseSpecial }).length`, exactly, without building the ids. Linear and
   * allocation-free for byte-level vocabularies (the built-in model's: one token per UTF-8 byte, plus one per
   * added token matched in the text), where the library's encode costs microseconds per character; other
   * tokenizers count by encoding.
   */
  countTokens(text: string, opts?: { parseSpecial?: boolean }): number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  addBosToken: boolean;
  chatTemplate: string | null;
  /** Size of the id space: the largest id + 1 over the model vocabulary and the added tokens. */
  vocabSize: number;
}

export class TokenizerError extends BadInputError {}

/** A token in tokenizer_config.json is a string or an AddedToken-like `{ content }` object. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return null;
}

function chatTemplateOf(v: unknown): string | null {
  if (typeof v === 'string') return v;
  // Newer configs hold a list of named templates; the one named "default" is the chat template.
  if (Array.isArray(v)) {
    const d = v.find((t) => (t as { name?: unknown })?.name === 'default') as
      { template?: unknown } | undefined;
    return typeof d?.template === 'string' ? d.template : null;
  }
  return null;
}

async function readJsonIfExists(path: string): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TokenizerError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (cause) {
    throw new TokenizerError(`${path} is not a valid JSON object: ${(cause as Error).message}`, { cause });
  }
}

/**
 * The same tokenizer without its special added tokens in the matcher, so their text is tokenized as
 * text. The ids of ordinary vocabulary are unchanged (the model's vocab is the same object).
 */
function plainTokenizer(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
): Tokenizer {
  const added = Array.isArray(tokenizerJson.added_tokens)
    ? (tokenizerJson.added_tokens as Array<{ special?: unknown }>)
    : [];
  return new Tokenizer(
    { ...tokenizerJson, added_tokens: added.filter((t) => t.special !== true) },
    tokenizerConfig,
  );
}

/** An added token the library's splitter matches in text: its content and that content's UTF-8 length. */
interface MatchedToken {
  content: string;
  bytes: number;
}

/**
 * The exact token count of a byte-level BPE — no merges, byte fallback for every byte, no normalizer,
 * pre-tokenizer or post-processor — or null for any other tokenizer. @huggingface/tokenizers then splits
 * the text on added tokens (at each position the longest one starting there, left to right), and maps every
 * other character to its UTF-8 bytes' `<0xNN>` pieces (a lone surrogate to U+FFFD's three). So the count is
 * the text's UTF-8 length, minus each matched added token's bytes, plus one per match. A vocabulary entry
 * that is one non-ASCII character would be a single token instead of its bytes: such a tokenizer is not
 * counted this way. test/engine/formats/tokenizer-count.test.ts checks this against the library.
 */
function byteLevelCounter(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
): ((text: string, parseSpecial: boolean) => number) | null {
  const model = tokenizerJson.model as Record<string, unknown> | null | undefined;
  const absent = (v: unknown) => v === null || v === undefined;
  if (
    typeof model !== 'object' ||
    model === null ||
    model.type !== 'BPE' ||
    !Array.isArray(model.merges) ||
    model.merges.length !== 0 ||
    model.byte_fallback !== true ||
    !absent(model.dropout) ||
    !absent(model.end_of_word_suffix) ||
    !absent(model.continuing_subword_suffix) ||
    !absent(tokenizerJson.normalizer) ||
    !absent(tokenizerJson.pre_tokenizer) ||
    !absent(tokenizerJson.post_processor) ||
    tokenizerConfig.remove_space === true ||
    tokenizerConfig.do_lowercase_and_remove_accent === true
  ) {
    return null;
  }
  const vocab = model.vocab;
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab)) return null;
  for (let b = 0; b < 256; b++) {
    if (!Object.hasOwn(vocab, `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)) return null;
  }
  for (const piece of Object.keys(vocab)) {
    const first = piece.codePointAt(0);
    if (first !== undefined && first > 0x7f && piece.length === String.fromCodePoint(first).length)
      return null;
  }
  const all: MatchedToken[] = [];
  const plain: MatchedToken[] = [];
  const added = Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as unknown[]) : [];
  for (const t of added) {
    const tok = t as { content?: unknown; special?: unknown; lstrip?: unknown; rstrip?: unknown };
    if (typeof tok.content !== 'string' || tok.content === '') return null;
    if (tok.lstrip === true || tok.rstrip === true) return null; // they trim the neighbouring text
    const m = { content: tok.content, bytes: Buffer.byteLength(tok.content, 'utf8') };
    all.push(m);
    if (tok.special !== true) plain.push(m);
  }
  const counterFor = (tokens: MatchedToken[]) => {
    // Longest first, so the first hit at a position is the splitter's (longest) match.
    const sorted = [...tokens].sort((a, b) => b.content.length - a.content.length);
    const firsts = new Set(sorted.map((t) => t.content.charCodeAt(0)));
    const only = firsts.size === 1 ? sorted[0]!.content[0]! : null;
    return (text: string): number => {
      let n = Buffer.byteLength(text, 'utf8');
      if (sorted.length === 0) return n;
      let i = only === null ? 0 : text.indexOf(only);
      while (i !== -1 && i < text.length) {
        let hit: MatchedToken | undefined;
        if (firsts.has(text.charCodeAt(i))) hit = sorted.find((t) => text.startsWith(t.content, i));
        if (hit === undefined) i++;
        else {
          n += 1 - hit.bytes;
          i += hit.content.length;
        }
        if (only !== null) i = text.indexOf(only, i);
      }
      return n;
    };
  };
  const countAll = counterFor(all);
  const countPlain = counterFor(plain);
  return (text, parseSpecial) => (parseSpecial ? countAll(text) : countPlain(text));
}

/**
 * Build a tokenizer from the decoded `tokenizer.json` and `tokenizer_config.json` objects.
 * `modelConfig` (config.json, optional) supplies bos/eos ids when the tokenizer config names none.
 */
export function createTokenizer(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
  modelConfig?: Record<string, unknown> | null,
): TextTokenizer {
  let tk: Tokenizer;
  try {
    tk = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (cause) {
    throw new TokenizerError(
      `tokenizer.json is not a tokenizer this library loads: ${(cause as Error).message}`,
      { cause },
    );
  }
  const idOf = (v: unknown): number | null => {
    const c = tokenContent(v);
    return c === null ? null : (tk.token_to_id(c) ?? null);
  };
  const num = (v: unknown): number | null =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;

  const bosTokenId = idOf(tokenizerConfig.bos_token) ?? num(modelConfig?.bos_token_id);
  const eos = new Set<number>();
  const eosFromTok = idOf(tokenizerConfig.eos_token);
  if (eosFromTok !== null) eos.add(eosFromTok);
  const modelEos = modelConfig?.eos_token_id;
  for (const e of Array.isArray(modelEos) ? modelEos : [modelEos]) {
    const n = num(e);
    if (n !== null) eos.add(n);
  }
  let addBosToken: boolean;
  if (typeof tokenizerConfig.add_bos_token === 'boolean') addBosToken = tokenizerConfig.add_bos_token;
  else {
    // Llama-3-style tokenizers add BOS in the post-processor and have no add_bos_token: probe for it.
    const probe = tk.encode('', { add_special_tokens: true }).ids;
    addBosToken = bosTokenId !== null && probe[0] === bosTokenId;
  }
  let maxId = -1;
  for (const id of tk.get_vocab(true).values()) if (id > maxId) maxId = id;
  const cleanUp = tokenizerConfig.clean_up_tokenization_spaces === true;
  let plain: Tokenizer | null = null;
  const byteCount = byteLevelCounter(tokenizerJson, tokenizerConfig);

  const tokenizer: TextTokenizer = {
    bosTokenId,
    eosTokenIds: [...eos],
    addBosToken,
    chatTemplate: chatTemplateOf(tokenizerConfig.chat_template),
    vocabSize: maxId + 1,
    encode(text: string, opts?: { addBos?: boolean; parseSpecial?: boolean }): number[] {
      const parseSpecial = opts?.parseSpecial ?? true;
      if (!parseSpecial && plain === null) plain = plainTokenizer(tokenizerJson, tokenizerConfig);
      const impl = parseSpecial ? tk : plain!;
      const ids = text.length === 0 ? [] : impl.encode(text, { add_special_tokens: false }).ids;
      const addBos = opts?.addBos ?? addBosToken;
      return addBos && bosTokenId !== null ? [bosTokenId, ...ids] : ids;
    },
    decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string {
      if (ids.length === 0) return '';
      return tk.decode(ids, {
        skip_special_tokens: opts?.skipSpecialTokens ?? true,
        clean_up_tokenization_spaces: cleanUp,
      });
    },
    countTokens(text: string, opts?: { parseSpecial?: boolean }): number {
      const parseSpecial = opts?.parseSpecial ?? true;
      if (byteCount !== null) return byteCount(text, parseSpecial);
      return tokenizer.encode(text, { addBos: false, parseSpecial }).length;
    },
  };
  return tokenizer;
}

/** The tokenizer of a model directory, or null when it has no `tokenizer.json` (e.g. stories260k). */
export async function loadTokenizer(dir: string): Promise<TextTokenizer | null> {
  const tokenizerJson = await readJsonIfExists(join(dir, 'tokenizer.json'));
  if (tokenizerJson === null) return null;
  const tokenizerConfig = (await readJsonIfExists(join(dir, 'tokenizer_config.json'))) ?? {};
  const modelConfig = await readJsonIfExists(join(dir, 'config.json'));
  return createTokenizer(tokenizerJson, tokenizerConfig, modelConfig);
}
