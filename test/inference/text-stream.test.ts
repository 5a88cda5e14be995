/**
 * TextStream with a byte-level decode (ids are byte strings, decoded as UTF-8 with U+FFFD for partial
 * sequences, as byte-level BPE tokenizers behave): characters split across tokens, stop sequences spanning
 * tokens, a stop sequence that never completes, and a randomized round trip.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/inference/rng.js';
import { TextStream } from '../../src/inference/text-stream.js';

/** A vocabulary built from the pieces a test needs: id → bytes. */
function byteTokenizer() {
  const vocab: Uint8Array[] = [];
  const encode = (piece: Uint8Array | string): number => {
    vocab.push(typeof piece === 'string' ? new TextEncoder().encode(piece) : piece);
    return vocab.length - 1;
  };
  const decode = (ids: number[]): string => {
    const bytes = ids.flatMap((id) => Array.from(vocab[id]!));
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
  };
  return { encode, decode };
}

function run(stream: TextStream, ids: number[]): { deltas: string[]; stoppedAt: number } {
  const deltas: string[] = [];
  let stoppedAt = -1;
  ids.forEach((id, i) => {
    const { delta, stopped } = stream.push(id);
    deltas.push(delta);
    if (stopped && stoppedAt < 0) stoppedAt = i;
  });
  return { deltas, stoppedAt };
}

describe('TextStream', () => {
  it('holds back an emoji split across three tokens until its last byte arrives', () => {
    const t = byteTokenizer();
    const ids = [
      t.encode('hi '),
      t.encode(Uint8Array.of(0xf0)),
      t.encode(Uint8Array.of(0x9f, 0x98)),
      t.encode(Uint8Array.of(0x80, 0x21)),
    ];
    const s = new TextStream(t.decode, []);
    expect(run(s, ids)).toEqual({ deltas: ['hi ', '', '', '😀!'], stoppedAt: -1 });
    expect(s.finish()).toBe('');
    expect(s.text).toBe('hi 😀!');
  });

  it('cuts before a stop sequence that spans tokens, holding back its prefix meanwhile', () => {
    const t = byteTokenizer();
    const ids = ['Hel', 'lo E', 'N', 'D wor', 'ld'].map((p) => t.encode(p));
    const s = new TextStream(t.decode, ['END']);
    expect(run(s, ids)).toEqual({ deltas: ['Hel', 'lo ', '', '', ''], stoppedAt: 3 });
    expect(s.text).toBe('Hello ');
    expect(s.finish()).toBe('');
    expect(s.push(t.encode('more'))).toEqual({ delta: '', stopped: true });
  });

  it('releases a stop-sequence prefix that never completes, and flushes it on finish', () => {
    const t = byteTokenizer();
    const ids = ['a <st', 'o', 'p?', ' b <', 'sto'].map((p) => t.encode(p));
    const s = new TextStream(t.decode, ['<stop>']);
    expect(run(s, ids)).toEqual({ deltas: ['a ', '', '<stop?', ' b ', ''], stoppedAt: -1 });
    expect(s.finish()).toBe('<sto');
    expect(s.text).toBe('a <stop? b <sto');
  });

  it('stops at the earliest of several stop sequences, including one inside a single token', () => {
    const t = byteTokenizer();
    const s = new TextStream(t.decode, ['\n\n', 'User:']);
    const { deltas, stoppedAt } = run(
      s,
      ['Sure.', ' User:', ' x\n\n'].map((p) => t.encode(p)),
    );
    expect({ deltas, stoppedAt, text: s.text }).toEqual({
      deltas: ['Sure.', ' ', ''],
      stoppedAt: 1,
      text: 'Sure. ',
    });
  });

  it('a stop sequence made of a multi-byte character is matched after the character completes', () => {
    const t = byteTokenizer();
    const ids = [
      t.encode('ok'),
      t.encode(Uint8Array.of(0xe2, 0x80)),
      t.encode(Uint8Array.of(0xa6)),
      t.encode('x'),
    ];
    const s = new TextStream(t.decode, ['…']); // U+2026 = e2 80 a6
    expect(run(s, ids)).toEqual({ deltas: ['ok', '', '', ''], stoppedAt: 2 });
    expect(s.text).toBe('ok');
  });

  it('finish emits an unfinished character as U+FFFD', () => {
    const t = byteTokenizer();
    const s = new TextStream(t.decode, []);
    expect(run(s, [t.encode('a'), t.encode(Uint8Array.of(0xf0, 0x9f))]).deltas).toEqual(['a', '']);
    expect(s.finish()).toBe('\uFFFD');
  });

  it('round trip: random byte splits of a multilingual text stream back exactly, no U+FFFD in any delta', () => {
    const text = 'naïve café — 日本語のテキスト 🎉🚀 Ünïcödé, done. '.repeat(4);
    const bytes = new TextEncoder().encode(text);
    const rng = new Rng(2024);
    for (let trial = 0; trial < 20; trial++) {
      const t = byteTokenizer();
      const ids: number[] = [];
      for (let i = 0; i < bytes.length;) {
        const len = 1 + Math.floor(rng.nextFloat() * 5);
        ids.push(t.encode(bytes.slice(i, i + len)));
        i += len;
      }
      const s = new TextStream(t.decode, ['STOP']);
      const { deltas, stoppedAt } = run(s, ids);
      const rest = s.finish();
      expect(stoppedAt).toBe(-1);
      expect(deltas.some((d) => d.includes('\uFFFD'))).toBe(false);
      expect(deltas.join('') + rest).toBe(text);
      expect(s.text).toBe(text);
    }
  });

  it('rejects an empty stop sequence', () => {
    expect(() => new TextStream(() => '', [''])).toThrow(/must not be empty/);
  });
});
