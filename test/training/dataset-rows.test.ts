/**
 * `validateDataset` on the three JSONL formats: valid rows come back typed; each kind of bad line gets its
 * 1-based line number and a clear message; limits on size, line length and error count hold; a large file
 * is validated in one pass.
 */
import { describe, expect, it } from 'vitest';
import { validateDataset, type DatasetValidation } from '../../src/training/dataset-rows.js';

const jsonl = (...rows: unknown[]) =>
  rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');

describe('validateDataset', () => {
  it('accepts each format and returns typed rows and counts', () => {
    const pc = jsonl({ prompt: 'Hi', completion: ' there' }, '', '   ', { prompt: 'a', completion: 'b' });
    expect(validateDataset(pc, 'PROMPT_COMPLETION')).toEqual<DatasetValidation>({
      ok: true,
      rows: [
        { prompt: 'Hi', completion: ' there' },
        { prompt: 'a', completion: 'b' },
      ],
      rowCount: 2,
      sizeBytes: Buffer.byteLength(pc),
      errors: [],
    });
    const chat = jsonl({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
      ],
    });
    expect(validateDataset(chat, 'CHAT').rows).toEqual([
      {
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: 'Hello!' },
        ],
      },
    ]);
    const text = '\ufeff{"text":"é ü 😀"}\r\n{"text":"two"}\r\n';
    const r = validateDataset(new TextEncoder().encode(text), 'TEXT');
    expect([r.ok, r.rows, r.rowCount]).toEqual([true, [{ text: 'é ü 😀' }, { text: 'two' }], 2]);
  });

  it('reports each bad line with its number and why', () => {
    const content = [
      '{"prompt":"ok","completion":"ok"}', // 1
      '{"prompt":"x"', // 2 invalid JSON
      '["prompt","completion"]', // 3 not an object
      '{"prompt":"x"}', // 4 missing completion
      '{"prompt":"x","completion":"y","extra":1}', // 5 extra field
      '{"prompt":1,"completion":"y"}', // 6 wrong type
      '{"prompt":"x","completion":"  "}', // 7 empty
      '', // 8 blank: skipped
      '{"prompt":"x","completion":"y","__proto__":{"a":1}}', // 9 prototype key is just an extra field
      'null', // 10
    ].join('\n');
    const r = validateDataset(content, 'PROMPT_COMPLETION');
    expect(r.ok).toBe(false);
    expect(r.rows).toEqual([]);
    expect(r.rowCount).toBe(1);
    expect(r.errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7, 9, 10]);
    expect(r.errors[0]!.message).toMatch(/^invalid JSON/);
    expect(r.errors.slice(1).map((e) => e.message)).toEqual([
      'each line must be a JSON object (got array)',
      'missing field "completion"',
      'unexpected field "extra" (expected only "prompt", "completion")',
      'field "prompt" must be a string (got number)',
      'field "completion" must not be empty',
      'unexpected field "__proto__" (expected only "prompt", "completion")',
      'each line must be a JSON object (got null)',
    ]);
  });

  it('checks chat structure: roles, content, an assistant turn', () => {
    const content = jsonl(
      { messages: [{ role: 'user', content: 'only a question' }] },
      {
        messages: [
          { role: 'robot', content: 'x' },
          { role: 'assistant', content: 'y' },
        ],
      },
      { messages: [] },
      { messages: 'hi' },
      {
        messages: [
          { role: 'user', content: 'q' },
          { role: 'assistant', content: '' },
        ],
      },
      {
        messages: [
          { role: 'user', content: 'q', name: 'bob' },
          { role: 'assistant', content: 'a' },
        ],
      },
      {
        messages: [
          { role: 'user', content: 'q' },
          { role: 'assistant', content: 'a' },
        ],
        meta: 1,
      },
      { messages: [['user', 'q']] },
      { text: 'wrong format' },
    );
    expect(validateDataset(content, 'CHAT').errors).toEqual([
      { line: 1, message: 'a chat row needs at least one assistant message' },
      { line: 2, message: 'messages[0]: unknown role "robot" (expected system, user or assistant)' },
      { line: 3, message: 'field "messages" must not be empty' },
      { line: 4, message: 'field "messages" must be an array (got string)' },
      { line: 5, message: 'messages[1]: field "content" must not be empty' },
      { line: 6, message: 'messages[0]: unexpected field "name" (expected only "role", "content")' },
      { line: 7, message: 'unexpected field "meta" (expected only "messages")' },
      { line: 8, message: 'messages[0] must be an object (got array)' },
      { line: 9, message: 'missing field "messages"' },
    ]);
  });

  it('refuses invalid UTF-8 with its line, and datasets with no rows', () => {
    const bytes = Buffer.concat([
      Buffer.from('{"text":"fine"}\n'),
      Buffer.from([0x7b, 0x22, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a]), // {"t":"\xff\xfe"}
      Buffer.from('{"text":"\xe9"}', 'latin1'),
    ]);
    expect(validateDataset(bytes, 'TEXT').errors).toEqual([
      { line: 2, message: 'invalid UTF-8' },
      { line: 3, message: 'invalid UTF-8' },
    ]);
    for (const empty of ['', '\n\n  \n', '\ufeff']) {
      expect(validateDataset(empty, 'TEXT')).toMatchObject({
        ok: false,
        rowCount: 0,
        errors: [{ line: 0, message: 'dataset has no rows' }],
      });
    }
  });

  it('enforces the size, line-length and error-count limits', () => {
    const content = jsonl(...Array.from({ length: 10 }, (_, i) => ({ text: `row ${i}` })));
    expect(validateDataset(content, 'TEXT', { maxBytes: 20 })).toEqual({
      ok: false,
      rows: [],
      rowCount: 0,
      sizeBytes: Buffer.byteLength(content),
      errors: [{ line: 0, message: `dataset is ${Buffer.byteLength(content)} bytes, over the limit of 20` }],
    });
    const long = jsonl({ text: 'short' }, { text: 'x'.repeat(100) });
    expect(validateDataset(long, 'TEXT', { maxLineBytes: 50 }).errors).toEqual([
      { line: 2, message: 'line is 111 bytes, over the limit of 50' },
    ]);
    const bad = Array.from({ length: 250 }, () => '{').join('\n');
    const r = validateDataset(bad, 'TEXT', { maxErrors: 3 });
    expect(r.errors.map((e) => e.line)).toEqual([1, 2, 3, 0]);
    expect(r.errors[3]!.message).toBe('… 247 more errors');
    expect(validateDataset('{"text":"a"}', 'NOPE' as never).errors).toEqual([
      { line: 0, message: 'unknown dataset format "NOPE"' },
    ]);
  });

  it('validates a 32 MB dataset in one pass', () => {
    const line = Buffer.from(
      `${JSON.stringify({ prompt: 'Translate: ' + 'word '.repeat(20), completion: 'mot '.repeat(20) })}\n`,
    );
    const n = Math.ceil((32 * 1024 * 1024) / line.length);
    const big = Buffer.alloc(line.length * n);
    for (let i = 0; i < n; i++) line.copy(big, i * line.length);
    big[big.length - 10] = 0xff; // one bad byte in the last line
    const t0 = performance.now();
    const r = validateDataset(big, 'PROMPT_COMPLETION');
    const ms = performance.now() - t0;
    expect(r.rowCount).toBe(n - 1);
    expect(r.errors).toEqual([{ line: n, message: 'invalid UTF-8' }]);
    // Generous bound for a shared 2-core CI machine; ~10x the typical time.
    expect(ms).toBeLessThan(15_000);
  });
});
