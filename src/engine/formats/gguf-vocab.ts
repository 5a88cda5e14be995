/**
 * A Hugging Face tokenizer (`tokenizer.json` + `tokenizer_config.json`) ↔ GGUF's `tokenizer.ggml.*` keys,
 * the way llama.cpp reads them. Two kinds: "llama" (SentencePiece-style BPE with `<0xNN>` byte fallback:
 * tokens, scores, token types) and "gpt2" (byte-level BPE: tokens, types, merges and a pre-tokenizer name
 * found as convert_hf_to_gguf.py finds it, by hashing the ids of a fixed text). Import rebuilds a
 * tokenizer.json that tokenizes as llama.cpp does with those keys. Model tensors: `gguf-llama.ts`.
 */
import { createHash } from 'node:crypto';
import { Tokenizer } from '@huggingface/tokenizers';
import { GgufError, GgufMetadata, type GgufValue } from './gguf.js';
import { createTokenizer } from './tokenizer.js';

/** llama.cpp's `llama_token_type`. */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export type VocabKind = 'llama' | 'gpt2';

type Json = Record<string, unknown>;

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `content` of an AddedToken-like value (a string, or an object with `content`), else null. */
function contentOf(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

function hasType(node: unknown, type: string): boolean {
  if (!isObject(node)) return false;
  if (node.type === type) return true;
  for (const key of ['pretokenizers', 'decoders', 'normalizers', 'processors']) {
    const list = node[key];
    if (Array.isArray(list) && list.some((n) => hasType(n, type))) return true;
  }
  return false;
}

/** Merges as pairs, from either tokenizer.json spelling ("a b" or ["a", "b"]). */
function mergePairs(merges: unknown): Array<[string, string]> {
  if (!Array.isArray(merges)) return [];
  return merges.map((m, i) => {
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string')
      return [m[0], m[1]];
    if (typeof m === 'string') {
      const at = m.indexOf(' ', 1);
      if (at > 0) return [m.slice(0, at), m.slice(at + 1)];
    }
    throw new GgufError(`tokenizer.json merge #${i} (${JSON.stringify(m)}) is not a pair of tokens`);
  });
}

/** GPT-2's `bytes_to_unicode`: the printable character byte-level BPE spells each byte as. */
const BYTE_TO_UNICODE: readonly string[] = (() => {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(printable(b) ? b : 256 + n++);
  return out;
})();

/** The text convert_hf_to_gguf.py's `get_vocab_base_pre` encodes to fingerprint a BPE pre-tokenizer. */
const CHK_TXT =
  "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/** sha256(str(ids)) → `tokenizer.ggml.pre`, the entries of `get_vocab_base_pre` for Llama/Qwen2-architecture models. */
const PRE_BY_HASH: Readonly<Record<string, string>> = {
  '0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5': 'llama-bpe',
  c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d: 'smaug-bpe',
  '049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754': 'deepseek-llm',
  '347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821': 'deepseek-coder',
  '9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e': 'falcon3',
  '3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454': 'gpt-2',
  e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea: 'qwen2',
  b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5: 'deepseek-r1-qwen',
  '63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e': 'tekken',
  '855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249': 'smollm',
  '1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35': 'minerva-7b',
  d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1: 'megrez',
};

/** convert_hf_to_gguf.py's fingerprint of a tokenizer: sha256 of Python's `str()` of the ids of CHK_TXT. */
export function preTokenizerHash(tokenizerJson: Json, tokenizerConfig: Json): string {
  const ids = new Tokenizer(tokenizerJson, tokenizerConfig).encode(CHK_TXT, { add_special_tokens: true }).ids;
  return createHash('sha256')
    .update(`[${ids.join(', ')}]`)
    .digest('hex');
}

export interface VocabExport {
  kind: VocabKind | 'none';
  metadata: Array<[string, GgufValue]>;
  warnings: string[];
}

const strs = (value: string[]): GgufValue => ({ type: 'array', itemType: 'string', value });

/**
 * `tokenizer.ggml.*` for a model directory's tokenizer files. `vocabSize` is the embedding's row count: the
 * token list is padded to it with `[PAD{i}]` (type UNUSED) as convert_hf_to_gguf.py does, and a token id
 * beyond it is refused. Scores ("llama" kind): minus the rank of the first merge that makes the token, so
 * llama.cpp's highest-score-first bigram search merges in the tokenizer.json's order; tokens no merge makes
 * (bytes, specials, single characters) score below every merge.
 */
export function vocabMetadata(input: {
  tokenizerJson: Json | null;
  tokenizerConfig: Json;
  rawConfig: Json;
  vocabSize: number;
}): VocabExport {
  const { tokenizerJson, tokenizerConfig, rawConfig, vocabSize: V } = input;
  if (tokenizerJson === null) {
    return {
      kind: 'none',
      metadata: [['tokenizer.ggml.model', { type: 'string', value: 'none' }]],
      warnings: ['no tokenizer.json: the GGUF has no vocabulary (llama.cpp can only run token ids with it)'],
    };
  }
  const model = tokenizerJson.model;
  if (!isObject(model) || model.type !== 'BPE' || !isObject(model.vocab)) {
    const t = isObject(model) ? JSON.stringify(model.type) : 'missing';
    throw new GgufError(`tokenizer.json model type ${t}: only BPE vocabularies can be written to GGUF`);
  }
  const merges = mergePairs(model.merges);
  const addedContents = new Set(
    (Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : []).map(contentOf),
  );
  // Byte fallback with nothing but the 256 byte pieces and no merges (the built-in model's vocabulary) is
  // one token per UTF-8 byte: spelled as byte-level BPE, llama.cpp tokenizes it exactly so, spaces included
  // (its SentencePiece path would turn a space into the three bytes of "▁").
  const bytesOnly =
    model.byte_fallback === true &&
    merges.length === 0 &&
    tokenizerJson.normalizer == null &&
    Object.keys(model.vocab).every((t) => BYTE_PIECE.test(t) || addedContents.has(t));
  let kind: VocabKind;
  if (bytesOnly) kind = 'gpt2';
  else if (model.byte_fallback === true) kind = 'llama';
  else if (hasType(tokenizerJson.pre_tokenizer, 'ByteLevel') || hasType(tokenizerJson.decoder, 'ByteLevel'))
    kind = 'gpt2';
  else
    throw new GgufError(
      'tokenizer.json is a BPE with neither byte fallback nor a ByteLevel pre-tokenizer: no GGUF vocabulary kind fits',
    );

  const tokens: Array<string | undefined> = new Array<string | undefined>(V);
  const types = new Array<number>(V).fill(TOKEN_TYPE.NORMAL);
  const put = (content: string, id: unknown, what: string): number => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0)
      throw new GgufError(`tokenizer.json ${what} ${JSON.stringify(content)} has id ${JSON.stringify(id)}`);
    if (id >= V) {
      throw new GgufError(
        `tokenizer.json ${what} ${JSON.stringify(content)} has id ${id}, beyond the model's vocab_size ${V}`,
      );
    }
    if (tokens[id] !== undefined && tokens[id] !== content) {
      throw new GgufError(
        `tokenizer.json gives id ${id} to both ${JSON.stringify(tokens[id])} and ${JSON.stringify(content)}`,
      );
    }
    tokens[id] = content;
    return id;
  };
  for (const [content, id] of Object.entries(model.vocab)) {
    if (bytesOnly && BYTE_PIECE.test(content))
      put(BYTE_TO_UNICODE[parseInt(content.slice(3, 5), 16)]!, id, 'token');
    else {
      const i = put(content, id, 'token');
      if (kind === 'llama' && BYTE_PIECE.test(content)) types[i] = TOKEN_TYPE.BYTE;
    }
  }
  const added = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : [];
  for (const t of added) {
    if (!isObject(t) || typeof t.content !== 'string')
      throw new GgufError('tokenizer.json added_tokens entry without content');
    const i = put(t.content, t.id, 'added token');
    types[i] = t.special === true ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }
  const unk = typeof model.unk_token === 'string' ? model.unk_token : null;
  const seen = new Set<string>();
  for (let i = 0; i < V; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.UNUSED;
    } else if (kind === 'llama' && tokens[i] === unk) types[i] = TOKEN_TYPE.UNKNOWN;
    // llama.cpp asserts that every token string maps back to one id.
    if (seen.has(tokens[i]!)) throw new GgufError(`token ${JSON.stringify(tokens[i])} appears twice`);
    seen.add(tokens[i]!);
  }
  const tokenList = tokens as string[];
  const metadata: Array<[string, GgufValue]> = [['tokenizer.ggml.model', { type: 'string', value: kind }]];
  const warnings: string[] = [];
  if (kind === 'gpt2' && bytesOnly) {
    // No merges: how words are split cannot change a single id.
    metadata.push(['tokenizer.ggml.pre', { type: 'string', value: 'default' }]);
  } else if (kind === 'gpt2') {
    let pre = 'default';
    try {
      pre = PRE_BY_HASH[preTokenizerHash(tokenizerJson, tokenizerConfig)] ?? 'default';
    } catch {
      // An encoder that fails on the probe text leaves the default below.
    }
    if (pre === 'default')
      warnings.push(
        'pre-tokenizer not recognized: tokenizer.ggml.pre is "default" (llama.cpp splits words as GPT-2)',
      );
    metadata.push(['tokenizer.ggml.pre', { type: 'string', value: pre }]);
  } else {
    metadata.push(['tokenizer.ggml.pre', { type: 'string', value: 'default' }]);
  }
  metadata.push(['tokenizer.ggml.tokens', strs(tokenList)]);
  if (kind === 'llama') {
    const index = new Map(tokenList.map((t, i) => [t, i]));
    const scores = new Array<number>(V).fill(-(merges.length + 1));
    for (let r = merges.length - 1; r >= 0; r--) {
      const id = index.get(merges[r]![0] + merges[r]![1]);
      if (id !== undefined) scores[id] = -r;
    }
    metadata.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: scores }]);
  }
  metadata.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: types }]);
  if (kind === 'gpt2') metadata.push(['tokenizer.ggml.merges', strs(merges.map(([a, b]) => `${a} ${b}`))]);

  // The ids and the BOS rule exactly as this engine's tokenizer reads them.
  const tok = createTokenizer(tokenizerJson, tokenizerConfig, rawConfig);
  const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
  const idOf = (v: unknown): number | null => {
    const c = contentOf(v);
    const i = c === null ? -1 : tokenList.indexOf(c);
    return i >= 0 ? i : null;
  };
  if (tok.bosTokenId !== null) metadata.push(['tokenizer.ggml.bos_token_id', u32(tok.bosTokenId)]);
  const eos = idOf(tokenizerConfig.eos_token) ?? tok.eosTokenIds[0] ?? null;
  if (eos !== null) metadata.push(['tokenizer.ggml.eos_token_id', u32(eos)]);
  const unkId = unk === null ? -1 : tokenList.indexOf(unk);
  if (unkId >= 0) metadata.push(['tokenizer.ggml.unknown_token_id', u32(unkId)]);
  const pad = idOf(tokenizerConfig.pad_token);
  if (pad !== null) metadata.push(['tokenizer.ggml.padding_token_id', u32(pad)]);
  metadata.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: tok.addBosToken }]);
  metadata.push([
    'tokenizer.ggml.add_eos_token',
    { type: 'bool', value: tokenizerConfig.add_eos_token === true },
  ]);
  let addSpacePrefix: boolean | undefined;
  if (kind === 'llama') {
    addSpacePrefix = hasPrepend(tokenizerJson.normalizer) || hasMetaspacePrefix(tokenizerJson.pre_tokenizer);
  } else if (typeof tokenizerConfig.add_prefix_space === 'boolean') {
    addSpacePrefix = tokenizerConfig.add_prefix_space;
  }
  if (addSpacePrefix !== undefined)
    metadata.push(['tokenizer.ggml.add_space_prefix', { type: 'bool', value: addSpacePrefix }]);
  if (kind === 'llama' && !tokenList.some((t) => t.includes('▁'))) {
    warnings.push(
      'the vocabulary has no "▁" piece: llama.cpp spells a space as the bytes of "▁" where this tokenizer uses the space byte',
    );
  }
  if (tok.chatTemplate !== null)
    metadata.push(['tokenizer.chat_template', { type: 'string', value: tok.chatTemplate }]);
  return { kind, metadata, warnings };
}

function hasPrepend(node: unknown): boolean {
  if (!isObject(node)) return false;
  if (node.type === 'Prepend') return node.prepend === '▁';
  return Array.isArray(node.normalizers) && node.normalizers.some(hasPrepend);
}

function hasMetaspacePrefix(node: unknown): boolean {
  if (!isObject(node)) return false;
  if (node.type === 'Metaspace')
    return (
      node.add_prefix_space === true || node.prepend_scheme === 'always' || node.prepend_scheme === 'first'
    );
  return Array.isArray(node.pretokenizers) && node.pretokenizers.some(hasMetaspacePrefix);
}

// ---------------------------------------------------------------------------------------------- import

export interface HfTokenizerFiles {
  tokenizerJson: Json;
  tokenizerConfig: Json;
  warnings: string[];
}

/** llama.cpp's pre-tokenizer regexes (llama-vocab.cpp), as HF pre-tokenizers. */
const LLAMA3_RE =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_RE =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function byteLevel(useRegex: boolean): Json {
  return { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex };
}

function splitThenBytes(regex: string): Json {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      byteLevel(false),
    ],
  };
}

function preTokenizerFor(pre: string): Json | null {
  switch (pre) {
    case 'gpt-2':
      return byteLevel(true);
    case 'llama-bpe':
    case 'llama3':
    case 'llama-v3':
    case 'falcon3':
      return splitThenBytes(LLAMA3_RE);
    case 'qwen2':
    case 'deepseek-r1-qwen':
      return splitThenBytes(QWEN2_RE);
    case 'smollm':
    case 'minerva-7b':
      return {
        type: 'Sequence',
        pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)],
      };
    default:
      return null;
  }
}

/** The bos/eos ids a GGUF names (llama.cpp's defaults for a "llama" vocabulary when absent). */
export function specialIdsFromGguf(meta: GgufMetadata): {
  bosTokenId: number | null;
  eosTokenId: number | null;
} {
  const llama = meta.string('tokenizer.ggml.model') === 'llama';
  return {
    bosTokenId: meta.uint('tokenizer.ggml.bos_token_id') ?? (llama ? 1 : null),
    eosTokenId: meta.uint('tokenizer.ggml.eos_token_id') ?? (llama ? 2 : null),
  };
}

/**
 * tokenizer.json + tokenizer_config.json from `tokenizer.ggml.*`, or null when the file has no vocabulary.
 * "llama": BPE with byte fallback whose merges are rebuilt from the scores as transformers'
 * SentencePieceExtractor does (every split of a normal token into two normal tokens, highest score first),
 * spaces escaped to "▁" as llama.cpp escapes them. "gpt2": the merges as stored, the pre-tokenizer named by
 * `tokenizer.ggml.pre`.
 */
export function tokenizerFromGguf(meta: GgufMetadata, contextLength: number): HfTokenizerFiles | null {
  const kind = meta.string('tokenizer.ggml.model');
  if (kind === undefined || kind === 'none' || kind === 'no_vocab') return null;
  if (kind !== 'llama' && kind !== 'gpt2') {
    throw new GgufError(
      `tokenizer.ggml.model ${JSON.stringify(kind)} is not supported (llama and gpt2 are)`,
      {
        key: 'tokenizer.ggml.model',
      },
    );
  }
  const tokens = meta.array<string>('tokenizer.ggml.tokens', ['string']);
  if (tokens === undefined || tokens.length === 0)
    throw new GgufError('tokenizer.ggml.tokens is missing', { key: 'tokenizer.ggml.tokens' });
  const V = tokens.length;
  const sized = (key: string, itemTypes: Array<'int32' | 'uint32' | 'float32'>): number[] | undefined => {
    const v = meta.array<number>(key, itemTypes);
    if (v !== undefined && v.length !== V)
      throw new GgufError(`${key} has ${v.length} entries for ${V} tokens`, { key });
    return v;
  };
  const types = sized('tokenizer.ggml.token_type', ['int32', 'uint32']) ?? new Array<number>(V).fill(1);
  const scores = sized('tokenizer.ggml.scores', ['float32']);
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  for (let i = 0; i < V; i++) {
    if (Object.hasOwn(vocab, tokens[i]!))
      throw new GgufError(
        `token ${JSON.stringify(tokens[i])} appears twice (ids ${vocab[tokens[i]!]} and ${i})`,
        {
          key: 'tokenizer.ggml.tokens',
        },
      );
    vocab[tokens[i]!] = i;
  }
  const added: Json[] = [];
  let unk: string | null = null;
  for (let i = 0; i < V; i++) {
    const t = types[i];
    if (t === TOKEN_TYPE.UNKNOWN && unk === null) unk = tokens[i]!;
    if (t === TOKEN_TYPE.CONTROL || t === TOKEN_TYPE.USER_DEFINED || t === TOKEN_TYPE.UNKNOWN) {
      added.push({
        id: i,
        content: tokens[i],
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: t !== TOKEN_TYPE.USER_DEFINED,
      });
    }
  }
  const warnings: string[] = [];
  let tokenizerJson: Json;
  let addBosDefault: boolean;
  if (kind === 'llama') {
    const addPrefix = meta.bool('tokenizer.ggml.add_space_prefix') ?? true;
    tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: {
        type: 'Sequence',
        normalizers: [
          ...(addPrefix ? [{ type: 'Prepend', prepend: '▁' }] : []),
          { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ],
      },
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          ...(addPrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: bpeModel(vocab, spmMerges(tokens, types, scores), unk, true),
    };
    addBosDefault = true;
  } else {
    const merges = meta.array<string>('tokenizer.ggml.merges', ['string']);
    if (merges === undefined)
      throw new GgufError('tokenizer.ggml.merges is missing', { key: 'tokenizer.ggml.merges' });
    const pre = meta.string('tokenizer.ggml.pre') ?? 'default';
    let preTokenizer = preTokenizerFor(pre);
    if (preTokenizer === null) {
      if (merges.length > 0)
        warnings.push(`tokenizer.ggml.pre ${JSON.stringify(pre)}: words are split as GPT-2 splits them`);
      preTokenizer = byteLevel(true);
    }
    tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: preTokenizer,
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpeModel(vocab, merges, null, false),
    };
    addBosDefault = false;
  }
  const content = (key: string): string | null => {
    const id = meta.uint(key);
    if (id === undefined) return null;
    if (id >= V) throw new GgufError(`${key} ${id} is not a token id (${V} tokens)`, { key });
    return tokens[id]!;
  };
  const special = specialIdsFromGguf(meta);
  const tokenizerConfig: Json = {
    add_bos_token: meta.bool('tokenizer.ggml.add_bos_token') ?? addBosDefault,
    add_eos_token: meta.bool('tokenizer.ggml.add_eos_token') ?? false,
    bos_token: special.bosTokenId === null || special.bosTokenId >= V ? null : tokens[special.bosTokenId],
    eos_token: special.eosTokenId === null || special.eosTokenId >= V ? null : tokens[special.eosTokenId],
    unk_token: content('tokenizer.ggml.unknown_token_id') ?? unk,
    pad_token: content('tokenizer.ggml.padding_token_id'),
    clean_up_tokenization_spaces: false,
    model_max_length: contextLength,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const template = meta.string('tokenizer.chat_template');
  if (template !== undefined) tokenizerConfig.chat_template = template;
  return { tokenizerJson, tokenizerConfig, warnings };
}

function bpeModel(
  vocab: Record<string, number>,
  merges: string[],
  unk: string | null,
  byteFallback: boolean,
): Json {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: unk,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: byteFallback,
    byte_fallback: byteFallback,
    ignore_merges: false,
    vocab,
    merges,
  };
}

/**
 * transformers' SentencePieceExtractor over the normal tokens: for every token, each split into two normal
 * tokens is a merge; merges are ordered by the token's score, highest first (ties: by the halves' ids).
 */
function spmMerges(
  tokens: readonly string[],
  types: readonly number[],
  scores: readonly number[] | undefined,
): string[] {
  const normal = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (types[i] === TOKEN_TYPE.NORMAL) normal.set(t, i);
  });
  const found: Array<{ merge: string; score: number; id: number; l: number; r: number }> = [];
  for (const [t, id] of normal) {
    const pieces = Array.from(t); // by code point, as Python slices
    if (pieces.length < 2) continue;
    const score = scores?.[id] ?? -id;
    for (let k = 1; k < pieces.length; k++) {
      const left = pieces.slice(0, k).join('');
      const right = pieces.slice(k).join('');
      const l = normal.get(left);
      const r = normal.get(right);
      // A merge is written "left right": halves with a space of their own cannot be spelled.
      if (l !== undefined && r !== undefined && !left.includes(' ') && !right.includes(' '))
        found.push({ merge: `${left} ${right}`, score, id, l, r });
    }
  }
  found.sort((a, b) => b.score - a.score || a.id - b.id || a.l - b.l || a.r - b.r);
  return found.map((m) => m.merge);
}
