/**
 * `validateDatasetAsync`: the same result as `validateDataset` on every kind of input (it runs the same
 * steps), rows streamed to `onRow`, and the work split into event-loop slices: a large file never holds the
 * loop longer than a slice plus one 64 KiB step, and the time grows linearly with the size.
 */
import { describe, expect, it } from 'vitest';
import { TimeSlice } from '../../src/shared/time-slice.js';
import {
  validateDataset,
  validateDatasetAsync,
  type DatasetFormat,
  type DatasetRow,
} from '../../src/training/dataset-rows.js';

const jsonl = (...rows: unknown[]) =>
  rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');

const CASES: [string, string | Uint8Array, DatasetFormat][] = [
  [
    'prompt/completion with blank lines',
    jsonl({ prompt: 'a', completion: 'b' }, '', ' ', { prompt: 'c', completion: 'd' }),
    'PROMPT_COMPLETION',
  ],
  [
    'chat',
    jsonl({
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'yo' },
      ],
    }),
    'CHAT',
  ],
  ['text with a BOM and CRLF', '\ufeff{"text":"x"}\r\n{"text":"y"}\r\n', 'TEXT'],
  [
    'broken lines',
    jsonl({ prompt: 'a', completion: 'b' }, '{"prompt": "oops",', { prompt: 'no completion' }, [1]),
    'PROMPT_COMPLETION',
  ],
  [
    'invalid UTF-8',
    Uint8Array.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
    'TEXT',
  ],
  ['a NUL inside a string', '{"text":"a\u0000b"}\n{"text":"\\u0000"}', 'TEXT'],
  ['empty', '', 'TEXT'],
  ['many errors', Array.from({ length: 150 }, () => '{').join('\n'), 'TEXT'],
];

function bigDataset(bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = JSON.stringify({
      prompt: `question ${i} ${'é'.repeat(i % 7)}?`,
      completion: ` answer ${i}`.repeat(1 + (i % 5)),
    });
    lines.push(line);
    size += Buffer.byteLength(line) + 1;
  }
  return Buffer.from(lines.join('\n') + '\n');
}

describe('validateDatasetAsync', () => {
  it.each(CASES)('gives what validateDataset gives: %s', async (_what, content, format) => {
    expect(await validateDatasetAsync(content, format)).toEqual(validateDataset(content, format));
  });

  it('streams valid rows to onRow and keeps none when asked', async () => {
    const content = jsonl({ text: 'a' }, '{', { text: 'b' });
    const seen: DatasetRow[] = [];
    const v = await validateDatasetAsync(
      content,
      'TEXT',
      {},
      { onRow: (r) => seen.push(r), keepRows: false },
    );
    expect(seen).toEqual([{ text: 'a' }, { text: 'b' }]);
    expect(v).toMatchObject({ ok: false, rows: [], rowCount: 2 });
    const ok = await validateDatasetAsync(jsonl({ text: 'a' }), 'TEXT', {}, { keepRows: false });
    expect(ok).toMatchObject({ ok: true, rows: [], rowCount: 1 });
  });

  it('yields to the event loop: 8 MiB never holds it longer than a few slices', async () => {
    const bytes = bigDataset(8 * 1024 * 1024);
    let ticks = 0;
    let last = performance.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 1);
    const v = await validateDatasetAsync(
      bytes,
      'PROMPT_COMPLETION',
      {},
      { slice: new TimeSlice(5), keepRows: false },
    );
    clearInterval(timer);
    expect(v.ok).toBe(true);
    expect(ticks).toBeGreaterThan(5);
    expect(maxGap).toBeLessThan(100);
  });

  it('is linear: 4× the bytes, about 4× the time', async () => {
    const one = bigDataset(1024 * 1024);
    const four = bigDataset(4 * 1024 * 1024);
    const time = async (b: Uint8Array) => {
      const t = performance.now();
      await validateDatasetAsync(b, 'PROMPT_COMPLETION', {}, { keepRows: false });
      return performance.now() - t;
    };
    await time(one); // warm-up
    const best = async (b: Uint8Array) => Math.min(await time(b), await time(b));
    const t1 = await best(one);
    const t4 = await best(four);
    expect(t4, JSON.stringify({ t1, t4 })).toBeLessThan(6 * t1 + 50);
    expect(t4, JSON.stringify({ t1, t4 })).toBeLessThan(1500);
  });
});
