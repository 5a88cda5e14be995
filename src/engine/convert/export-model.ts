/**
 * `deltagate export`: a base model, optionally with a LoRA adapter merged in fp32 (W + s·B·A, exactly
 * `prepareWeights`' merged weights), written for other runtimes — a Hugging Face directory (transformers,
 * vLLM; F32 safetensors + the source's tokenizer files) or one GGUF file (llama.cpp, Ollama; F32, F16, Q8_0
 * or Q4_0, tensors and keys as convert_hf_to_gguf.py writes them). Nothing is half-written: the output
 * appears by rename when complete. The reverse direction is import-gguf.ts.
 */
import { mkdir, open } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { BadInputError } from '../../shared/errors.js';
import { loadCheckpoint, type Checkpoint } from '../formats/checkpoint.js';
import { encodeTensor, type GgmlEncoding } from '../formats/ggml-quants.js';
import { alignUp, ggmlType, layoutGguf, type GgufTensorPlan, type GgufValue } from '../formats/gguf.js';
import {
  FILE_TYPE,
  ggufArchOf,
  ggufTensorName,
  llama3RopeFactors,
  modelMetadata,
  permuteQk,
  permutesQk,
  qkHeads,
} from '../formats/gguf-llama.js';
import { vocabMetadata } from '../formats/gguf-vocab.js';
import { LINEAR_MODULES, biasName, expectedTensors, weightName } from '../formats/hf-config.js';
import type { LoraAdapter } from '../formats/peft.js';
import { prepareWeights } from '../nn/weights.js';
import {
  copyTokenizerFiles,
  readJsonObject,
  writeBeside,
  writeJson,
  writeSafetensorsShards,
} from './hf-dir.js';

export type ExportFormat = 'hf' | 'gguf';
/** GGUF weight encodings: none = F32; norms and other 1-D tensors are F32 in every mode. */
export type GgufQuantize = 'none' | 'f16' | 'q8_0' | 'q4_0';

/** A model that cannot be exported as asked (a non-finite weight, an unsupported feature). */
export class ExportError extends BadInputError {}

export interface ExportOptions {
  modelDir: string;
  /** Merged into the weights before anything is written (fp32). */
  adapter?: LoraAdapter;
  out: string;
  format: ExportFormat;
  /** GGUF only; default 'none'. */
  quantize?: GgufQuantize;
  /** Replace an existing `out`. */
  force?: boolean;
  /** HF only: shard size cap (default 1 GiB). */
  maxShardBytes?: number;
  /**
   * Progress: step 1 is the merge (all weights in fp32), then one step per tensor as it is encoded and
   * written; `total` is 1 + the tensors written.
   */
  onProgress?: (done: number, total: number, what: string) => void;
}

export interface ExportResult {
  out: string;
  format: ExportFormat;
  tensors: number;
  /** Tensor data written (before container overhead). */
  bytes: number;
  /** Tensor count per written type, e.g. { F32: 9, Q8_0: 28 }. */
  types: Record<string, number>;
  warnings: string[];
}

/**
 * The checkpoint's tensors by HF name with the adapter merged (prepareWeights with `mergeAdapter`: the same
 * fp32 W + s·B·A the engine's merged mode runs); every value checked finite.
 */
export function mergedTensors(ckpt: Checkpoint, adapter?: LoraAdapter): Map<string, Float32Array> {
  const w = prepareWeights(ckpt, adapter ? { mergeAdapter: adapter } : {});
  const out = new Map<string, Float32Array>();
  out.set('model.embed_tokens.weight', w.embed);
  w.layers.forEach((layer, l) => {
    out.set(`model.layers.${l}.input_layernorm.weight`, layer.inputNorm);
    out.set(`model.layers.${l}.post_attention_layernorm.weight`, layer.postNorm);
    for (const m of LINEAR_MODULES) {
      const lin = layer.linear[m];
      if (lin.kind !== 'fp32')
        throw new Error(`invariant failed: unquantized prepareWeights gave ${lin.kind}`);
      out.set(weightName(l, m), lin.w);
      const b = layer.bias[m];
      if (b) out.set(biasName(l, m), b);
    }
  });
  out.set('model.norm.weight', w.finalNorm);
  if (w.lmHead) out.set('lm_head.weight', w.lmHead);
  for (const [name, data] of out) {
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) {
        const fromAdapter = Number.isFinite(ckpt.tensors.get(name)?.data[i] ?? NaN);
        throw new ExportError(
          `tensor ${name} has a non-finite value (${data[i]}) at index ${i}${fromAdapter ? ' after merging the adapter' : ''}`,
          { details: { tensor: name } },
        );
      }
    }
  }
  return out;
}

export async function exportModel(opts: ExportOptions): Promise<ExportResult> {
  const ckpt = await loadCheckpoint(opts.modelDir);
  const tensors = mergedTensors(ckpt, opts.adapter);
  const out = resolve(opts.out);
  if (opts.format === 'hf') return exportHf(ckpt, tensors, out, opts);
  return exportGguf(ckpt, tensors, out, opts);
}

async function exportHf(
  ckpt: Checkpoint,
  tensors: Map<string, Float32Array>,
  out: string,
  opts: ExportOptions,
): Promise<ExportResult> {
  const list = expectedTensors(ckpt.config);
  opts.onProgress?.(1, 1 + list.length, 'merged weights');
  let bytes = 0;
  await writeBeside(out, opts.force ?? false, async (tmp) => {
    await mkdir(tmp);
    await writeJson(join(tmp, 'config.json'), { ...ckpt.rawConfig, torch_dtype: 'float32' });
    let done = 1;
    bytes = await writeSafetensorsShards(
      tmp,
      list.map(({ name, shape }) => ({
        name,
        shape,
        data: () => {
          opts.onProgress?.(++done, 1 + list.length, name);
          return tensors.get(name)!;
        },
      })),
      opts.maxShardBytes,
    );
    await copyTokenizerFiles(ckpt.dir, tmp);
    const gen = await readJsonObject(join(ckpt.dir, 'generation_config.json'));
    await writeJson(
      join(tmp, 'generation_config.json'),
      gen ?? {
        bos_token_id: ckpt.config.bosTokenId,
        eos_token_id:
          ckpt.config.eosTokenIds.length === 1 ? ckpt.config.eosTokenIds[0] : ckpt.config.eosTokenIds,
      },
    );
  });
  return { out, format: 'hf', tensors: list.length, bytes, types: { F32: list.length }, warnings: [] };
}

const ENCODING: Readonly<Record<GgufQuantize, GgmlEncoding>> = {
  none: 'F32',
  f16: 'F16',
  q8_0: 'Q8_0',
  q4_0: 'Q4_0',
};

async function exportGguf(
  ckpt: Checkpoint,
  tensors: Map<string, Float32Array>,
  out: string,
  opts: ExportOptions,
): Promise<ExportResult> {
  const config = ckpt.config;
  const quantize = opts.quantize ?? 'none';
  const arch = ggufArchOf(config);
  const warnings: string[] = [];
  if (config.slidingWindow !== null && config.slidingWindow < config.maxPositionEmbeddings) {
    warnings.push(
      `sliding_window ${config.slidingWindow} is not carried: llama.cpp's llama architecture attends to the whole context`,
    );
  }
  const tokenizerJson = await readJsonObject(join(ckpt.dir, 'tokenizer.json'));
  const tokenizerConfig = (await readJsonObject(join(ckpt.dir, 'tokenizer_config.json'))) ?? {};
  const vocab = vocabMetadata({
    tokenizerJson,
    tokenizerConfig,
    rawConfig: ckpt.rawConfig,
    vocabSize: config.vocabSize,
  });
  warnings.push(...vocab.warnings);
  const main = ENCODING[quantize];
  const metadata: Array<[string, GgufValue]> = [
    ...modelMetadata(config, {
      name: basename(resolve(ckpt.dir)),
      fileType: FILE_TYPE[main]!,
      quantized: main === 'Q8_0' || main === 'Q4_0',
    }),
    ...vocab.metadata,
  ];

  // The output projection (the embedding when tied) stays Q8_0 under q4_0, as llama-quantize keeps it finer.
  const outputName = config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  const entries: Array<{ plan: GgufTensorPlan; data: () => Float32Array }> = [];
  const ropeFactors = llama3RopeFactors(config);
  if (ropeFactors) {
    entries.push({
      plan: { name: 'rope_freqs.weight', type: ggmlType('F32'), shape: [ropeFactors.length] },
      data: () => ropeFactors,
    });
  }
  for (const { name, shape } of expectedTensors(config)) {
    const ggufName = ggufTensorName(name);
    if (ggufName === null) throw new Error(`invariant failed: no GGUF name for ${name}`);
    let enc: GgmlEncoding = shape.length === 1 ? 'F32' : main;
    if (enc === 'Q4_0' && name === outputName) enc = 'Q8_0';
    if ((enc === 'Q8_0' || enc === 'Q4_0') && shape[shape.length - 1]! % 32 !== 0) {
      warnings.push(
        `${ggufName}: row length ${shape[shape.length - 1]} is not a multiple of 32, written as F16`,
      );
      enc = 'F16';
    }
    const heads = permutesQk(arch) ? qkHeads(name, config) : null;
    const cols = shape.length === 1 ? 1 : shape[1]!;
    entries.push({
      plan: { name: ggufName, type: ggmlType(enc), shape },
      data: () => (heads === null ? tensors.get(name)! : permuteQk(tensors.get(name)!, heads, cols)),
    });
  }
  const layout = layoutGguf(
    metadata,
    entries.map((e) => e.plan),
  );
  const types: Record<string, number> = {};
  let bytes = 0;
  opts.onProgress?.(1, 1 + entries.length, 'merged weights');
  await writeBeside(out, opts.force ?? false, async (tmp) => {
    const fh = await open(tmp, 'wx');
    try {
      await fh.write(layout.header);
      for (let i = 0; i < entries.length; i++) {
        const { plan, data } = entries[i]!;
        const encoded = encodeTensor(data(), plan.type.name as GgmlEncoding);
        if (encoded.length !== layout.nbytes[i])
          throw new Error(
            `invariant failed: ${plan.name} encodes to ${encoded.length} bytes, not ${layout.nbytes[i]}`,
          );
        await fh.write(encoded);
        const pad = alignUp(encoded.length, layout.alignment) - encoded.length;
        if (pad > 0) await fh.write(new Uint8Array(pad));
        types[plan.type.name] = (types[plan.type.name] ?? 0) + 1;
        bytes += encoded.length;
        opts.onProgress?.(2 + i, 1 + entries.length, plan.name);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
  return { out, format: 'gguf', tensors: entries.length, bytes, types, warnings };
}
