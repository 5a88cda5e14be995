/**
 * `countTokens` is `encode(text, { addBos: false, parseSpecial }).length` exactly — checked against the
 * library on random text built from the pieces that matter (special-token text and its prefixes, multi-byte
 * characters, lone surrogates, NUL) — and, for the built-in byte-level vocabulary, linear and fast: the
 * library's encode costs microseconds per character and grows faster than the text (it made a 4 MiB dataset
 * upload block the server for seconds). Source: src/engine/formats/tokenizer.ts.
 */
import { describe, expect, it } from 'vitest';
import { builtinTokenizerConfig, builtinTokenizerJson } from '../../../src/engine/builtin-model.js';
import { createTokenizer } from '../../../src/engine/formats/tokenizer.js';

const PIECES = [
  '<s>',
  '</s>',
  '<unk>',
  '<',
  's',
  '>',
  '/',
  '<s',
  '</',
  'unk',
  'a',
  ' ',
  '\n',
  'é',
  '中',
  '😀',
];
const ODD = ['\u0000', '\ud800', '\udc00', '\ud83d', '\u{10ffff}', '\u007f'];

function randomTexts(count: number, seed: number): string[] {
  let s = seed;
  const next = (n: number) => (s = (s * 1103515245 + 12345) % 2 ** 31) % n;
  return Array.from({ length: count }, () => {
    const len = next(40);
    let t = '';
    for (let i = 0; i < len; i++) t += next(8) === 0 ? ODD[next(ODD.length)] : PIECES[next(PIECES.length)];
    return t;
  });
}

describe('countTokens', () => {
  const builtin = createTokenizer(builtinTokenizerJson(), builtinTokenizerConfig(), {
    bos_token_id: 1,
    eos_token_id: 2,
  });

  it('equals the length of encode() on the built-in vocabulary, special-token parsing on and off', () => {
    const texts = ['', '<s>', '</s></s>', '<<s>>', '<unk', 'x</s', '😀</s>\ud800', ...randomTexts(3000, 7)];
    const got = texts.map((t) => [builtin.countTokens(t), builtin.countTokens(t, { parseSpecial: false })]);
    const want = texts.map((t) => [
      builtin.encode(t, { addBos: false }).length,
      builtin.encode(t, { addBos: false, parseSpecial: false }).length,
    ]);
    expect(got).toEqual(want);
  });

  it('counts non-special added tokens the way the library splits them (longest match first)', () => {
    const json = builtinTokenizerJson();
    const added = json.added_tokens as Record<string, unknown>[];
    const withAdded = {
      ...json,
      added_tokens: [
        ...added,
        { id: 259, content: '<|im', special: false, normalized: false },
        { id: 260, content: '<|im_start|>', special: false, normalized: false },
        { id: 261, content: 'été', special: false, normalized: false },
      ],
      model: {
        ...(json.model as Record<string, unknown>),
        vocab: {
          ...((json.model as { vocab: object }).vocab as object),
          '<|im': 259,
          '<|im_start|>': 260,
          été: 261,
        },
      },
    };
    const tk = createTokenizer(withAdded, builtinTokenizerConfig());
    const texts = [
      '<|im_start|>user',
      '<|im_star',
      'un été <|im',
      ...randomTexts(500, 11).map((t) => `${t}<|im_start|>été${t}`),
    ];
    const got = texts.map((t) => [tk.countTokens(t), tk.countTokens(t, { parseSpecial: false })]);
    const want = texts.map((t) => [
      tk.encode(t, { addBos: false }).length,
      tk.encode(t, { addBos: false, parseSpecial: false }).length,
    ]);
    expect(got).toEqual(want);
  });

  it('falls back to encoding for a tokenizer with merges (still exact)', () => {
    const json = builtinTokenizerJson();
    const model = json.model as { vocab: Record<string, number> };
    const merged = {
      ...json,
      model: { ...model, vocab: { ...model.vocab, ab: 300 }, merges: [['a', 'b']] },
    };
    const tk = createTokenizer(merged, builtinTokenizerConfig());
    for (const t of ['abab', 'xaby', ...randomTexts(200, 5)])
      expect([t, tk.countTokens(t)]).toEqual([t, tk.encode(t, { addBos: false }).length]);
  });

  it('counts 4 MiB of text in linear time, in milliseconds (the library takes seconds)', () => {
    const row = 'Question: what is the capital of France? Réponse: Paris 😀 </s> ';
    const text1 = row.repeat(Math.ceil((1024 * 1024) / row.length));
    const text4 = text1.repeat(4);
    const time = (t: string) => {
      const start = performance.now();
      const n = builtin.countTokens(t);
      return { n, ms: performance.now() - start };
    };
    time(text1); // warm-up
    const one = time(text1);
    const four = time(text4);
    expect(four.n).toBe(4 * one.n);
    expect(one.n).toBe(builtin.encode(row, { addBos: false }).length * (text1.length / row.length));
    expect(four.ms).toBeLessThan(200);
  });
});
