// Rows → ids/masks for the three formats (byte tokenizer of the built-in model), batching, split, shuffling.
import { describe, expect, it } from 'vitest';
import { builtinTokenizerConfig, builtinTokenizerJson } from '../../src/engine/builtin-model.js';
import { createTokenizer } from '../../src/engine/formats/tokenizer.js';
import { epochBatches, makeBatch, splitValidation } from '../../src/training/batching.js';
import { DEFAULT_CHAT_TEMPLATE, encodeRow, encodeRows } from '../../src/training/encode-rows.js';
import { TrainingDataError } from '../../src/training/errors.js';

const tok = createTokenizer(builtinTokenizerJson(), builtinTokenizerConfig());
const bytes = (s: string) => [...new TextEncoder().encode(s)].map((b) => b + 3);
const BOS = 1;
const EOS = 2;

describe('encodeRow', () => {
  it('PROMPT_COMPLETION: BOS + prompt masked, completion + EOS learned', () => {
    const ex = encodeRow(tok, { prompt: 'Hi', completion: 'yo' }, 'PROMPT_COMPLETION');
    expect(Array.from(ex.ids)).toEqual([BOS, ...bytes('Hi'), ...bytes('yo'), EOS]);
    expect(Array.from(ex.mask)).toEqual([0, 0, 0, 1, 1, 1]);
  });
  it('TEXT: everything after BOS is learned', () => {
    const ex = encodeRow(tok, { text: 'abc' }, 'TEXT');
    expect(Array.from(ex.ids)).toEqual([BOS, ...bytes('abc'), EOS]);
    expect(Array.from(ex.mask)).toEqual([0, 1, 1, 1, 1]);
  });
  it('CHAT: rendered with the chat_template; only assistant turns (and their end-of-turn) are learned', () => {
    const messages = [
      { role: 'system' as const, content: 'S' },
      { role: 'user' as const, content: 'U' },
      { role: 'assistant' as const, content: 'A' },
      { role: 'user' as const, content: 'V' },
      { role: 'assistant' as const, content: 'B' },
    ];
    const ex = encodeRow(tok, { messages }, 'CHAT');
    const turn = (r: string, c: string) => `<|im_start|>${r}\n${c}<|im_end|>\n`;
    const text =
      turn('system', 'S') +
      turn('user', 'U') +
      turn('assistant', 'A') +
      turn('user', 'V') +
      turn('assistant', 'B');
    expect(Array.from(ex.ids)).toEqual([BOS, ...bytes(text)]);
    const learned = Array.from(ex.ids).filter((_, i) => ex.mask[i] === 1);
    expect(learned).toEqual([...bytes('A<|im_end|>\n'), ...bytes('B<|im_end|>\n')]);
  });
  it('CHAT without a template uses the documented ChatML default', () => {
    const plain = { ...tok, chatTemplate: null };
    const ex = encodeRow(
      plain,
      {
        messages: [
          { role: 'user', content: 'q' },
          { role: 'assistant', content: 'a' },
        ],
      },
      'CHAT',
    );
    expect(DEFAULT_CHAT_TEMPLATE).toContain('<|im_start|>');
    expect(tok.decode(Array.from(ex.ids))).toBe(
      '<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n',
    );
  });
});

describe('encodeRows', () => {
  it('truncates long rows, drops rows with nothing left to learn, and counts both', () => {
    const { examples, stats } = encodeRows(
      tok,
      [
        { prompt: 'p', completion: 'long completion' },
        { prompt: 'a very long prompt indeed', completion: 'x' },
        { prompt: 'q', completion: 'r' },
      ],
      { format: 'PROMPT_COMPLETION', maxSeqLen: 8 },
    );
    expect(stats).toEqual({ rows: 3, kept: 2, truncated: 2, dropped: 1, targetTokens: 6 + 2 });
    expect(examples.map((e) => e.ids.length)).toEqual([8, 4]);
  });
  it('refuses empty data and wrong-format rows with a TrainingDataError', () => {
    expect(() => encodeRows(tok, [], { format: 'TEXT', maxSeqLen: 8 })).toThrow(TrainingDataError);
    expect(() => encodeRows(tok, [{ text: 'x' }], { format: 'CHAT', maxSeqLen: 8 })).toThrow(/messages/);
  });
});

describe('batching', () => {
  const lengths = [5, 9, 3, 7, 8, 2, 6, 4, 9, 1];
  it('epochBatches covers every example once, reproducibly per (seed, epoch), bucketed by length', () => {
    const a = epochBatches(lengths, 3, 42, 0, 1);
    expect(a.flat().sort((x, y) => x - y)).toEqual(lengths.map((_, i) => i));
    expect(epochBatches(lengths, 3, 42, 0, 1)).toEqual(a);
    expect(epochBatches(lengths, 3, 42, 1, 1)).not.toEqual(a);
    // One bucket window over everything: batches are contiguous runs of the length order.
    const all = epochBatches(lengths, 3, 1, 0, 10);
    for (const b of all) {
      const ls = b.map((i) => lengths[i]!);
      expect(Math.max(...ls) - Math.min(...ls)).toBeLessThanOrEqual(3);
    }
  });
  it('splitValidation is seeded and disjoint', () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const { train, validation } = splitValidation(items, 0.2, 3);
    expect(validation).toHaveLength(4);
    expect([...train, ...validation].sort((x, y) => x - y)).toEqual(items);
    expect(splitValidation(items, 0.2, 3)).toEqual({ train, validation });
  });
  it('makeBatch shifts targets, right-pads and weights only learned targets', () => {
    const ex = [
      { ids: Int32Array.from([1, 10, 11, 2]), mask: Uint8Array.from([0, 0, 1, 1]) },
      { ids: Int32Array.from([1, 20]), mask: Uint8Array.from([0, 1]) },
    ];
    const b = makeBatch(ex, [0, 1]);
    expect({
      ...b,
      inputIds: Array.from(b.inputIds, Number),
      targets: Array.from(b.targets, Number),
      mask: Array.from(b.mask),
    }).toEqual({
      batchSize: 2,
      seqLen: 3,
      inputIds: [1, 10, 11, 1, 0, 0],
      targets: [10, 11, 2, 20, 0, 0],
      mask: [0, 1, 1, 1, 0, 0],
      targetTokens: 3,
      tokens: 4,
      rowLengths: [3, 1],
    });
  });
});
