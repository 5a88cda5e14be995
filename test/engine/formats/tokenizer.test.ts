/**
 * The tokenizer wrapper: byte-exact UTF-8 round trips on the built-in byte vocabulary, BOS handling (one
 * rule, including Llama-3-style post-processor BOS), special-token parsing on and off, U+FFFD for split
 * characters, and loading from a directory. Source: src/engine/formats/tokenizer.ts.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { builtinTokenizerConfig, builtinTokenizerJson } from '../../../src/engine/builtin-model.js';
import { TokenizerError, createTokenizer, loadTokenizer } from '../../../src/engine/formats/tokenizer.js';

const tk = createTokenizer(builtinTokenizerJson(), builtinTokenizerConfig(), {
  bos_token_id: 1,
  eos_token_id: 2,
});
const utf8 = (s: string): number[] => Array.from(new TextEncoder().encode(s));

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

describe('built-in byte tokenizer', () => {
  it('has the stories260k-style layout', () => {
    expect({ bos: tk.bosTokenId, eos: tk.eosTokenIds, addBos: tk.addBosToken, vocab: tk.vocabSize }).toEqual({
      bos: 1,
      eos: [2],
      addBos: true,
      vocab: 259,
    });
    expect(tk.chatTemplate).toContain('<|im_start|>');
  });

  it.each([
    ['ascii', 'Hello, world!'],
    ['whitespace', '  two  spaces\n\ttab\r\n '],
    ['emoji (4-byte, surrogate pairs in JS)', 'I ❤️ 🦙🚀 👩‍👩‍👧'],
    ['CJK', '中文字符テスト한국어'],
    ['combining marks', 'e\u0301 n\u0303 Å'],
    ['control characters and NUL', 'a\u0000b\u0001\u007f'],
    ['the last code point', '\u{10ffff}'],
  ])('round-trips %s byte by byte', (_what, text) => {
    const ids = tk.encode(text);
    expect(ids).toEqual([1, ...utf8(text).map((b) => 3 + b)]);
    expect(tk.decode(ids)).toBe(text);
  });

  it('round-trips every byte value that is valid UTF-8', () => {
    let text = '';
    for (let cp = 0; cp < 0x800; cp++) text += String.fromCodePoint(cp);
    expect(tk.decode(tk.encode(text))).toBe(text);
  });

  it('adds BOS by add_bos_token unless told, and never twice', () => {
    expect(tk.encode('A')).toEqual([1, 68]);
    expect(tk.encode('A', { addBos: false })).toEqual([68]);
    expect(tk.encode('')).toEqual([1]);
    expect(tk.encode('', { addBos: false })).toEqual([]);
  });

  it('parses special-token text by default and keeps it as text with parseSpecial: false', () => {
    expect(tk.encode('a</s>', { addBos: false })).toEqual([100, 2]);
    const plain = tk.encode('a</s>', { addBos: false, parseSpecial: false });
    expect(plain).toEqual(utf8('a</s>').map((b) => 3 + b));
    expect(tk.decode(plain)).toBe('a</s>');
  });

  it('skips special tokens when decoding unless asked not to', () => {
    const ids = [1, ...tk.encode('hi', { addBos: false }), 2];
    expect(tk.decode(ids)).toBe('hi');
    expect(tk.decode(ids, { skipSpecialTokens: false })).toBe('<s>hi</s>');
    expect(tk.decode([])).toBe('');
  });

  it('decodes an incomplete UTF-8 sequence to U+FFFD (streaming holds it back)', () => {
    const ids = tk.encode('a😀', { addBos: false }); // 'a' + F0 9F 98 80
    expect(ids.length).toBe(5);
    expect(tk.decode(ids.slice(0, 1))).toBe('a');
    for (let n = 2; n < 5; n++) {
      const s = tk.decode(ids.slice(0, n));
      expect(s.startsWith('a')).toBe(true);
      expect(s.endsWith('\ufffd')).toBe(true);
    }
    expect(tk.decode(ids)).toBe('a😀');
    // A lone continuation byte is invalid on its own, too.
    expect(tk.decode([3 + 0x80])).toBe('\ufffd');
  });
});

/** GPT-2's byte ↔ printable-character map, as ByteLevel tokenizers use it. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const out: string[] = new Array(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i]!)));
  return out;
}

/** A Llama-3-shaped tokenizer: ByteLevel BPE, BOS added by a TemplateProcessing post-processor, no add_bos_token. */
function llama3Like(): { json: Record<string, unknown>; config: Record<string, unknown> } {
  const chars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  vocab['hi'] = 256;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    json: {
      version: '1.0',
      added_tokens: [special(300, '<|begin_of_text|>'), special(301, '<|eot_id|>')],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: {
        type: 'TemplateProcessing',
        single: [
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
        ],
        pair: [
          { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { Sequence: { id: 'B', type_id: 1 } },
        ],
        special_tokens: {
          '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [300], tokens: ['<|begin_of_text|>'] },
        },
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: true,
        vocab,
        merges: [['h', 'i']],
      },
    },
    config: {
      bos_token: '<|begin_of_text|>',
      eos_token: '<|eot_id|>',
      clean_up_tokenization_spaces: true,
      chat_template: [
        { name: 'default', template: '{{ messages }}' },
        { name: 'tool_use', template: 'x' },
      ],
    },
  };
}

describe('Llama-3-style tokenizer', () => {
  const { json, config } = llama3Like();
  const t3 = createTokenizer(json, config, { eos_token_id: [301, 299] });

  it('detects BOS from the post-processor and adds it exactly once', () => {
    expect([t3.bosTokenId, t3.eosTokenIds, t3.addBosToken, t3.vocabSize]).toEqual([
      300,
      [301, 299],
      true,
      302,
    ]);
    expect(t3.encode('hi')).toEqual([300, 256]);
    expect(t3.encode('hi', { addBos: false })).toEqual([256]);
    expect(t3.chatTemplate).toBe('{{ messages }}');
  });

  it('round-trips UTF-8 and yields U+FFFD for a split character through the ByteLevel decoder', () => {
    const text = 'hi 中文 🦙!';
    const ids = t3.encode(text, { addBos: false });
    expect(t3.decode(ids)).toBe(text);
    const cut = t3.encode('🦙', { addBos: false });
    expect(cut.length).toBe(4);
    expect(t3.decode(cut.slice(0, 2))).toBe('\ufffd');
  });
});

describe('loadTokenizer', () => {
  it('returns null for a directory without tokenizer.json (stories260k)', async () => {
    const stories = fileURLToPath(new URL('../../../../shared/models/stories260k', import.meta.url));
    if (existsSync(stories)) expect(await loadTokenizer(stories)).toBeNull();
    const empty = await mkdtemp(join(tmpdir(), 'tok-'));
    tmpDirs.push(empty);
    expect(await loadTokenizer(empty)).toBeNull();
  });

  it('reads tokenizer.json + tokenizer_config.json + config.json from a directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tok-'));
    tmpDirs.push(dir);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(builtinTokenizerJson()));
    // Without tokenizer_config.json: BOS/EOS ids come from config.json; no post-processor BOS → addBos false.
    await writeFile(join(dir, 'config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: [2] }));
    const t = (await loadTokenizer(dir))!;
    expect([t.bosTokenId, t.eosTokenIds, t.addBosToken, t.chatTemplate]).toEqual([1, [2], false, null]);
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(builtinTokenizerConfig()));
    const t2 = (await loadTokenizer(dir))!;
    expect(t2.encode('é')).toEqual([1, 3 + 0xc3, 3 + 0xa9]);
  });

  it('refuses malformed files with TokenizerError', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tok-'));
    tmpDirs.push(dir);
    await writeFile(join(dir, 'tokenizer.json'), '{oops');
    await expect(loadTokenizer(dir)).rejects.toThrow(TokenizerError);
    await writeFile(join(dir, 'tokenizer.json'), '[]');
    await expect(loadTokenizer(dir)).rejects.toThrow(/not a valid JSON object/);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'Nope' } }));
    await expect(loadTokenizer(dir)).rejects.toThrow(TokenizerError);
  });
});
