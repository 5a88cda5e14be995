/**
 * Tokenizers through GGUF (src/engine/formats/gguf-vocab.ts): a SentencePiece-style vocabulary ("▁" pieces,
 * byte fallback, merges) written as tokenizer.ggml.model "llama" with merge-rank scores and token types, and
 * rebuilt by the importer into a tokenizer.json that encodes every text to the same ids; a byte-level BPE as
 * "gpt2" with its merges; and what the importer refuses.
 */
import { describe, expect, it } from 'vitest';
import { GgufMetadata, type GgufValue } from '../../../src/engine/formats/gguf.js';
import { TOKEN_TYPE, tokenizerFromGguf, vocabMetadata } from '../../../src/engine/formats/gguf-vocab.js';
import { createTokenizer } from '../../../src/engine/formats/tokenizer.js';

const byte = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** A miniature Llama-2-style tokenizer.json: specials, 256 byte pieces, a few "▁" pieces and their merges. */
function spmTokenizer(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[byte(b)] = 3 + b;
  const pieces = [
    '▁',
    'h',
    'e',
    'l',
    'o',
    '▁h',
    'he',
    'll',
    '▁he',
    'llo',
    '▁hello',
    'w',
    'r',
    'd',
    '▁w',
    'or',
    '▁wor',
    'ld',
    '▁world',
  ];
  pieces.forEach((p, i) => (vocab[p] = 259 + i));
  return {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({
      id,
      content,
      special: true,
      normalized: false,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
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
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      unk_token: '<unk>',
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: ['▁ h', 'h e', 'l l', '▁h e', 'll o', '▁he llo', '▁ w', 'o r', '▁w or', 'l d', '▁wor ld'],
    },
  };
}

const CONFIG = {
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  add_bos_token: true,
  chat_template: '{{ x }}',
};

function metaOf(entries: Array<[string, GgufValue]>): GgufMetadata {
  return new GgufMetadata(new Map(entries));
}

describe('SentencePiece-style vocabulary ("llama")', () => {
  const json = spmTokenizer();
  const exp = vocabMetadata({ tokenizerJson: json, tokenizerConfig: CONFIG, rawConfig: {}, vocabSize: 282 });
  const meta = metaOf(exp.metadata);

  it('writes tokens, merge-rank scores, types, special ids, space prefix and chat template', () => {
    expect(exp.kind).toBe('llama');
    const tokens = meta.array<string>('tokenizer.ggml.tokens', ['string'])!;
    const scores = meta.array<number>('tokenizer.ggml.scores', ['float32'])!;
    const types = meta.array<number>('tokenizer.ggml.token_type', ['int32'])!;
    expect(tokens).toHaveLength(282);
    expect(tokens.slice(277)).toEqual(['▁world', '[PAD278]', '[PAD279]', '[PAD280]', '[PAD281]']);
    // '▁h' is merge 0, 'he' merge 1, '▁world' merge 10; tokens no merge makes score below all of them.
    expect([scores[264], scores[265], scores[277], scores[259], scores[3]]).toEqual([-0, -1, -10, -12, -12]);
    expect([types[0], types[1], types[3], types[259], types[280]]).toEqual([
      TOKEN_TYPE.UNKNOWN,
      TOKEN_TYPE.CONTROL,
      TOKEN_TYPE.BYTE,
      TOKEN_TYPE.NORMAL,
      TOKEN_TYPE.UNUSED,
    ]);
    expect([
      meta.uint('tokenizer.ggml.bos_token_id'),
      meta.uint('tokenizer.ggml.eos_token_id'),
      meta.uint('tokenizer.ggml.unknown_token_id'),
      meta.bool('tokenizer.ggml.add_bos_token'),
      meta.bool('tokenizer.ggml.add_space_prefix'),
      meta.string('tokenizer.chat_template'),
    ]).toEqual([1, 2, 0, true, true, '{{ x }}']);
    expect(exp.warnings).toEqual([]);
  });

  it('the importer’s tokenizer.json encodes and decodes as the original', () => {
    const rebuilt = tokenizerFromGguf(meta, 512)!;
    const a = createTokenizer(json, CONFIG);
    const b = createTokenizer(rebuilt.tokenizerJson, rebuilt.tokenizerConfig);
    for (const text of [
      'hello world',
      'hello  world',
      'hell',
      'lo wor ld',
      'world hello ü!',
      'he llo',
      '</s>',
    ])
      expect(b.encode(text), text).toEqual(a.encode(text));
    expect(b.decode(a.encode('hello world ü'))).toBe('hello world ü');
    expect(rebuilt.tokenizerConfig).toMatchObject({
      bos_token: '<s>',
      eos_token: '</s>',
      add_bos_token: true,
      chat_template: '{{ x }}',
    });
  });
});

describe('byte-level BPE ("gpt2")', () => {
  it('keeps the merges, and the importer rebuilds a tokenizer that encodes the same', () => {
    const vocab: Record<string, number> = {};
    const chars = ['a', 'b', 'c', 'Ġ', 'ab', 'Ġa', 'Ġab', 'abc'];
    chars.forEach((c, i) => (vocab[c] = i));
    const json = {
      version: '1.0',
      added_tokens: [{ id: 8, content: '<|end|>', special: true }],
      normalizer: null,
      post_processor: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', byte_fallback: false, vocab, merges: ['a b', 'Ġ a', 'Ġa b', 'ab c'] },
    };
    const config = { eos_token: '<|end|>' };
    const exp = vocabMetadata({ tokenizerJson: json, tokenizerConfig: config, rawConfig: {}, vocabSize: 9 });
    const meta = metaOf(exp.metadata);
    expect([exp.kind, meta.string('tokenizer.ggml.model'), meta.string('tokenizer.ggml.pre')]).toEqual([
      'gpt2',
      'gpt2',
      'default',
    ]);
    expect(meta.array('tokenizer.ggml.merges', ['string'])).toEqual(['a b', 'Ġ a', 'Ġa b', 'ab c']);
    expect(exp.warnings).toEqual([expect.stringContaining('pre-tokenizer not recognized')]);
    const rebuilt = tokenizerFromGguf(meta, 64)!;
    const a = createTokenizer(json, config);
    const b = createTokenizer(rebuilt.tokenizerJson, rebuilt.tokenizerConfig);
    for (const text of ['abc ab', ' abab c<|end|>', 'cab']) expect(b.encode(text)).toEqual(a.encode(text));
    expect(b.eosTokenIds).toEqual([8]);
  });
});

describe('refusals', () => {
  it('export: a WordPiece tokenizer, an id beyond the embedding', () => {
    expect(() =>
      vocabMetadata({
        tokenizerJson: { model: { type: 'WordPiece', vocab: {} } },
        tokenizerConfig: {},
        rawConfig: {},
        vocabSize: 4,
      }),
    ).toThrow('gguf: tokenizer.json model type "WordPiece": only BPE vocabularies can be written to GGUF');
    expect(() =>
      vocabMetadata({ tokenizerJson: spmTokenizer(), tokenizerConfig: {}, rawConfig: {}, vocabSize: 100 }),
    ).toThrow(/has id 100, beyond the model's vocab_size 100/);
  });

  it('import: an unknown tokenizer model, a duplicate token, a types array of the wrong length', () => {
    const tokens: GgufValue = { type: 'array', itemType: 'string', value: ['a', 'b', 'a'] };
    expect(() =>
      tokenizerFromGguf(metaOf([['tokenizer.ggml.model', { type: 'string', value: 't5' }]]), 8),
    ).toThrow('gguf: tokenizer.ggml.model "t5" is not supported (llama and gpt2 are)');
    expect(() =>
      tokenizerFromGguf(
        metaOf([
          ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
          ['tokenizer.ggml.tokens', tokens],
        ]),
        8,
      ),
    ).toThrow('gguf: token "a" appears twice (ids 0 and 2)');
    expect(() =>
      tokenizerFromGguf(
        metaOf([
          ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
          ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: ['a', 'b'] }],
          ['tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: [1] }],
        ]),
        8,
      ),
    ).toThrow('gguf: tokenizer.ggml.token_type has 1 entries for 2 tokens');
  });
});
