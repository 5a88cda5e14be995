/**
 * `export` and `import-gguf` (src/engine/convert/) on the built-in model: an fp32 GGUF, read back by the
 * importer and run by the engine, gives the source's greedy tokens (base, and with an adapter merged); the
 * file's header bytes (magic, version, counts, metadata, tensor names/types/shapes/aligned offsets); q/k rows
 * in llama.cpp's RoPE order; q8_0/q4_0 within their quantization error; an HF export with an adapter equal to
 * the engine's merged mode; NaN weights and existing outputs refused with nothing left behind; the importer's
 * refusals naming the key or tensor.
 */
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_CONFIG, builtinTensors, makeTinyModel } from '../../../src/engine/builtin-model.js';
import { exportModel } from '../../../src/engine/convert/export-model.js';
import { importGguf } from '../../../src/engine/convert/import-gguf.js';
import { loadCheckpoint, writeCheckpoint } from '../../../src/engine/formats/checkpoint.js';
import { decodeTensor } from '../../../src/engine/formats/ggml-quants.js';
import {
  GgufError,
  GgufMetadata,
  bytesSource,
  ggmlType,
  layoutGguf,
  parseGguf,
  type GgufValue,
} from '../../../src/engine/formats/gguf.js';
import { parseModelConfig } from '../../../src/engine/formats/hf-config.js';
import { writePeftDir, type LoraAdapter } from '../../../src/engine/formats/peft.js';
import { loadTokenizer } from '../../../src/engine/formats/tokenizer.js';
import { Engine, type GenerateRequest } from '../../../src/inference/engine.js';
import { randomAdapter } from '../nn/fixtures.js';

const PROMPTS = [
  [1, 72, 101, 108],
  [1, 5, 6, 7, 8, 9, 10],
];

let dir: string;
let model: string;
let adapter: LoraAdapter;

async function greedy(modelDir: string, extra: Partial<GenerateRequest> = {}): Promise<number[][]> {
  const e = await Engine.load(modelDir);
  try {
    const out: number[][] = [];
    for (const promptIds of PROMPTS)
      out.push((await e.generate({ promptIds, maxTokens: 12, temperature: 0, ...extra })).tokenIds);
    return out;
  } finally {
    await e.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dg-gguf-'));
  model = join(dir, 'model');
  await makeTinyModel(model);
  // A strong adapter: the near-uniform tiny model's greedy tokens change and vary with it.
  adapter = randomAdapter(
    parseModelConfig(BUILTIN_CONFIG),
    4,
    3,
    ['q_proj', 'k_proj', 'v_proj', 'up_proj'],
    64,
  );
  await writePeftDir(join(dir, 'adapter'), adapter);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('fp32 GGUF export → import-gguf → engine', () => {
  it('generates the source model’s greedy tokens, base and with an adapter merged', async () => {
    await exportModel({ modelDir: model, out: join(dir, 'base.gguf'), format: 'gguf' });
    await importGguf(join(dir, 'base.gguf'), join(dir, 'base-imported'));
    expect(await greedy(join(dir, 'base-imported'))).toEqual(await greedy(model));

    await exportModel({ modelDir: model, adapter, out: join(dir, 'merged.gguf'), format: 'gguf' });
    await importGguf(join(dir, 'merged.gguf'), join(dir, 'merged-imported'));
    const want = await greedy(model, { adapter, mode: 'merged' });
    expect(new Set(want.flat()).size).toBeGreaterThan(8); // the comparison means something
    expect(await greedy(join(dir, 'merged-imported'))).toEqual(want);
  });

  it('the imported weights equal the source exactly, and the tokenizer encodes and decodes as the source’s', async () => {
    const src = await loadCheckpoint(model);
    const imp = await loadCheckpoint(join(dir, 'base-imported'));
    for (const [name, t] of src.tensors)
      expect(Array.from(imp.tensors.get(name)!.data), name).toEqual(Array.from(t.data));
    const a = (await loadTokenizer(model))!;
    const b = (await loadTokenizer(join(dir, 'base-imported')))!;
    for (const text of ['Hi there, ünïcode 🚀', '</s> and <s>', ' two  spaces\n'])
      expect(b.encode(text)).toEqual(a.encode(text));
    expect(b.decode(a.encode('Hi there, ünïcode'))).toBe('Hi there, ünïcode');
    expect([b.bosTokenId, b.eosTokenIds, b.addBosToken, b.chatTemplate]).toEqual([
      1,
      [2],
      true,
      a.chatTemplate,
    ]);
  });
});

describe('the GGUF bytes', () => {
  it('header: magic, version 3, counts, metadata and aligned tensor infos', async () => {
    const bytes = new Uint8Array(await readFile(join(dir, 'base.gguf')));
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe('GGUF');
    expect(dv.getUint32(4, true)).toBe(3);
    const tensorCount = Number(dv.getBigUint64(8, true));
    const kvCount = Number(dv.getBigUint64(16, true));
    expect(tensorCount).toBe(2 + 4 * 9); // token_embd, output_norm, 9 per layer; tied: no output.weight
    // The first key/value: "general.architecture" = "llama", spelled out byte by byte.
    expect(Number(dv.getBigUint64(24, true))).toBe(20);
    expect(new TextDecoder().decode(bytes.subarray(32, 52))).toBe('general.architecture');
    expect(dv.getUint32(52, true)).toBe(8); // string
    expect(Number(dv.getBigUint64(56, true))).toBe(5);
    expect(new TextDecoder().decode(bytes.subarray(64, 69))).toBe('llama');

    const g = parseGguf(bytesSource(bytes));
    expect(g.metadata.size).toBe(kvCount);
    const m = new GgufMetadata(g.metadata);
    expect({
      arch: m.string('general.architecture'),
      fileType: m.uint('general.file_type'),
      alignment: m.uint('general.alignment'),
      ctx: m.uint('llama.context_length'),
      embd: m.uint('llama.embedding_length'),
      blocks: m.uint('llama.block_count'),
      ff: m.uint('llama.feed_forward_length'),
      heads: m.uint('llama.attention.head_count'),
      kvHeads: m.uint('llama.attention.head_count_kv'),
      rope: m.float('llama.rope.freq_base'),
      ropeDim: m.uint('llama.rope.dimension_count'),
      eps: m.float('llama.attention.layer_norm_rms_epsilon'),
      vocab: m.uint('llama.vocab_size'),
      tokenizer: m.string('tokenizer.ggml.model'),
      tokens: m.array('tokenizer.ggml.tokens', ['string'])!.length,
      firstTokens: m.array('tokenizer.ggml.tokens', ['string'])!.slice(0, 4),
      types: m.array('tokenizer.ggml.token_type', ['int32'])!.slice(0, 4),
      bos: m.uint('tokenizer.ggml.bos_token_id'),
      eos: m.uint('tokenizer.ggml.eos_token_id'),
      addBos: m.bool('tokenizer.ggml.add_bos_token'),
      template: m.string('tokenizer.chat_template')!.slice(0, 25),
    }).toEqual({
      arch: 'llama',
      fileType: 0,
      alignment: 32,
      ctx: 512,
      embd: 128,
      blocks: 4,
      ff: 352,
      heads: 4,
      kvHeads: 2,
      rope: 10000,
      ropeDim: 32,
      eps: Math.fround(1e-5),
      vocab: 259,
      // The byte-only vocabulary is written as byte-level BPE: one token per byte in llama.cpp too.
      tokenizer: 'gpt2',
      tokens: 259,
      firstTokens: ['<unk>', '<s>', '</s>', 'Ā'],
      types: [3, 3, 3, 1],
      bos: 1,
      eos: 2,
      addBos: true,
      template: '{%- for message in messag',
    });
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    expect(
      [
        'token_embd.weight',
        'blk.0.attn_norm.weight',
        'blk.0.attn_q.weight',
        'blk.0.attn_k.weight',
        'blk.3.ffn_down.weight',
        'output_norm.weight',
      ].map((n) => [n, byName.get(n)?.type.name, byName.get(n)?.dims]),
    ).toEqual([
      ['token_embd.weight', 'F32', [128, 259]],
      ['blk.0.attn_norm.weight', 'F32', [128]],
      ['blk.0.attn_q.weight', 'F32', [128, 128]],
      ['blk.0.attn_k.weight', 'F32', [128, 64]],
      ['blk.3.ffn_down.weight', 'F32', [352, 128]],
      ['output_norm.weight', 'F32', [128]],
    ]);
    expect(byName.has('output.weight')).toBe(false);
    expect(g.dataOffset % 32).toBe(0);
    let end = g.dataOffset;
    for (const t of [...g.tensors].sort((a, b) => a.offset - b.offset)) {
      expect(t.offset % 32, t.name).toBe(0);
      expect(t.offset, t.name).toBeGreaterThanOrEqual(end);
      end = t.offset + t.nbytes;
    }
    expect(bytes.length).toBe(Math.ceil(end / 32) * 32);
  });

  it('q and k rows are in llama.cpp’s RoPE order: GGUF row h·D + 2i + j = HF row h·D + j·D/2 + i', async () => {
    const bytes = new Uint8Array(await readFile(join(dir, 'base.gguf')));
    const g = parseGguf(bytesSource(bytes));
    const src = builtinTensors();
    const D = 32;
    for (const [gg, hf, heads] of [
      ['blk.1.attn_q.weight', 'model.layers.1.self_attn.q_proj.weight', 4],
      ['blk.1.attn_k.weight', 'model.layers.1.self_attn.k_proj.weight', 2],
    ] as const) {
      const t = g.tensors.find((x) => x.name === gg)!;
      const got = decodeTensor(bytes.subarray(t.offset, t.offset + t.nbytes), t.type, t.numel, gg);
      const want = src.get(hf)!.data;
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < D / 2; i++)
          for (let j = 0; j < 2; j++) {
            const ggRow = got.subarray((h * D + 2 * i + j) * 128, (h * D + 2 * i + j + 1) * 128);
            const hfRow = want.subarray((h * D + j * (D / 2) + i) * 128, (h * D + j * (D / 2) + i + 1) * 128);
            expect(Array.from(ggRow)).toEqual(Array.from(hfRow));
          }
    }
    const v = g.tensors.find((x) => x.name === 'blk.1.attn_v.weight')!;
    expect(
      Array.from(decodeTensor(bytes.subarray(v.offset, v.offset + v.nbytes), v.type, v.numel, 'v')),
    ).toEqual(Array.from(src.get('model.layers.1.self_attn.v_proj.weight')!.data));
  });
});

describe('quantized GGUF', () => {
  it.each<['q8_0' | 'q4_0', number, Record<string, number>]>([
    ['q8_0', 0.006, { F32: 9, Q8_0: 29 }],
    ['q4_0', 0.12, { F32: 9, Q8_0: 1, Q4_0: 28 }],
  ])('%s round-trips with small error', async (q, relRms, types) => {
    const r = await exportModel({
      modelDir: model,
      out: join(dir, `${q}.gguf`),
      format: 'gguf',
      quantize: q,
    });
    expect(r.types).toEqual(types);
    await importGguf(join(dir, `${q}.gguf`), join(dir, `${q}-imported`));
    const src = await loadCheckpoint(model);
    const imp = await loadCheckpoint(join(dir, `${q}-imported`));
    for (const [name, t] of src.tensors) {
      const x = t.data;
      const y = imp.tensors.get(name)!.data;
      let err = 0;
      let ref = 0;
      let amax = 0;
      let maxErr = 0;
      for (let i = 0; i < x.length; i++) {
        err += (x[i]! - y[i]!) ** 2;
        ref += x[i]! ** 2;
        amax = Math.max(amax, Math.abs(x[i]!));
        maxErr = Math.max(maxErr, Math.abs(x[i]! - y[i]!));
      }
      if (t.shape.length === 1) expect(maxErr, name).toBe(0);
      else {
        expect(Math.sqrt(err / ref), name).toBeLessThan(name.includes('embed') ? 0.006 : relRms);
        expect(maxErr, name).toBeLessThanOrEqual(amax * (q === 'q8_0' ? 0.0045 : 0.14));
      }
    }
  });
});

describe('HF export', () => {
  it('with an adapter equals the engine’s merged-mode generation; tokenizer files copied; F32', async () => {
    const out = join(dir, 'hf-merged');
    const r = await exportModel({ modelDir: model, adapter, out, format: 'hf' });
    expect(r.types).toEqual({ F32: 38 });
    expect(await greedy(out)).toEqual(await greedy(model, { adapter, mode: 'merged' }));
    expect((await readdir(out)).sort()).toEqual([
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
  });

  it('is sharded with an index past the shard size, and loads the same', async () => {
    const out = join(dir, 'hf-sharded');
    await exportModel({ modelDir: model, out, format: 'hf', maxShardBytes: 400_000 });
    const files = (await readdir(out)).filter((f) => f.includes('safetensors')).sort();
    const n = Number(/^model-00001-of-(\d{5})\.safetensors$/.exec(files[0]!)?.[1]);
    expect(n).toBeGreaterThan(1);
    expect(files).toHaveLength(n + 1);
    expect(files.at(-1)).toBe('model.safetensors.index.json');
    const a = await loadCheckpoint(model);
    const b = await loadCheckpoint(out);
    for (const [name, t] of a.tensors)
      expect(Array.from(b.tensors.get(name)!.data)).toEqual(Array.from(t.data));
  });
});

describe('refusals leave nothing behind', () => {
  it('a NaN weight is refused naming the tensor; no output, no temp file', async () => {
    const bad = join(dir, 'nan-model');
    const tensors = builtinTensors();
    tensors.get('model.layers.2.mlp.up_proj.weight')!.data[77] = NaN;
    await writeCheckpoint(bad, { ...BUILTIN_CONFIG }, tensors);
    const out = join(dir, 'nan-out');
    for (const format of ['gguf', 'hf'] as const) {
      await expect(exportModel({ modelDir: bad, out: `${out}.${format}`, format })).rejects.toThrow(
        'tensor model.layers.2.mlp.up_proj.weight has a non-finite value (NaN) at index 77',
      );
    }
    expect((await readdir(dir)).filter((f) => f.startsWith('nan-out') || f.includes('.tmp-'))).toEqual([]);
  });

  it('an existing output is refused without force, and replaced whole with it', async () => {
    const out = join(dir, 'base.gguf');
    const before = (await stat(out)).mtimeMs;
    await expect(exportModel({ modelDir: model, out, format: 'gguf' })).rejects.toThrow(
      /already exists \(--force/,
    );
    expect((await stat(out)).mtimeMs).toBe(before);
    await exportModel({ modelDir: model, out: join(dir, 'hf-merged'), format: 'hf', force: true });
    expect(await greedy(join(dir, 'hf-merged'))).toEqual(await greedy(model));
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-') || f.includes('.old-'))).toEqual([]);
  });
});

describe('import-gguf refuses what it cannot read, naming it', () => {
  async function fileWith(
    name: string,
    edit: (
      meta: Array<[string, GgufValue]>,
      tensors: Array<{ name: string; type: string; shape: number[] }>,
    ) => void,
  ): Promise<string> {
    const g = parseGguf(bytesSource(new Uint8Array(await readFile(join(dir, 'base.gguf')))));
    const meta = [...g.metadata.entries()];
    const tensors = g.tensors.map((t) => ({ name: t.name, type: t.type.name, shape: t.shape }));
    edit(meta, tensors);
    const plans = tensors.map((t) => ({ name: t.name, type: ggmlType(t.type), shape: t.shape }));
    const layout = layoutGguf(meta, plans);
    const size = layout.offsets.at(-1)! + layout.nbytes.at(-1)!;
    const bytes = new Uint8Array(layout.header.length + size);
    bytes.set(layout.header);
    const path = join(dir, name);
    await import('node:fs/promises').then((fs) => fs.writeFile(path, bytes));
    return path;
  }

  it.each<[string, Parameters<typeof fileWith>[1], string, Record<string, string>]>([
    [
      'another architecture',
      (meta) => {
        meta[0] = ['general.architecture', { type: 'string', value: 'gemma' }];
      },
      'gguf: general.architecture "gemma" is not supported (llama and qwen2 are)',
      { key: 'general.architecture' },
    ],
    [
      'a tensor type it cannot decode',
      (_, tensors) => {
        const t = tensors.find((x) => x.name === 'blk.2.ffn_up.weight')!;
        tensors[tensors.indexOf(t)] = { ...t, type: 'Q5_0' };
      },
      'gguf: tensor blk.2.ffn_up.weight is Q5_0, a type this importer cannot decode (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K are)',
      { tensor: 'blk.2.ffn_up.weight' },
    ],
    [
      'a tensor with no place in the model',
      (_, tensors) => {
        tensors.push({ name: 'blk.0.ffn_gate_inp.weight', type: 'F32', shape: [8, 128] });
      },
      'gguf: tensor blk.0.ffn_gate_inp.weight has no place in a llama model of this config',
      { tensor: 'blk.0.ffn_gate_inp.weight' },
    ],
    [
      'a misshapen tensor',
      (_, tensors) => {
        const t = tensors.find((x) => x.name === 'blk.1.attn_v.weight')!;
        tensors[tensors.indexOf(t)] = { ...t, shape: [32, 128] };
      },
      'gguf: tensor blk.1.attn_v.weight has shape [32, 128], the metadata needs [64, 128]',
      { tensor: 'blk.1.attn_v.weight' },
    ],
    [
      'a missing tensor',
      (_, tensors) => {
        tensors.splice(
          tensors.findIndex((x) => x.name === 'blk.3.ffn_gate.weight'),
          1,
        );
      },
      'gguf: the file lacks 1 tensor(s) a llama model needs, first model.layers.3.mlp.gate_proj.weight',
      { tensor: 'model.layers.3.mlp.gate_proj.weight' },
    ],
    [
      'a key of the wrong type',
      (meta) => {
        meta[meta.findIndex(([k]) => k === 'llama.block_count')] = [
          'llama.block_count',
          { type: 'string', value: '4' },
        ];
      },
      'gguf: llama.block_count must be a non-negative integer, got string "4"',
      { key: 'llama.block_count' },
    ],
  ])('%s', async (name, edit, message, details) => {
    const path = await fileWith(`${name.replaceAll(' ', '-')}.gguf`, edit);
    const out = join(dir, `refused-${name.replaceAll(' ', '-')}`);
    const err = await importGguf(path, out).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GgufError);
    expect({ message: (err as GgufError).message, details: (err as GgufError).details }).toEqual({
      message,
      details,
    });
    await expect(stat(out)).rejects.toThrow();
  });
});
