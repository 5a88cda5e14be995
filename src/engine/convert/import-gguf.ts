/**
 * `deltagate import-gguf`: a llama.cpp GGUF file (llama or qwen2 architecture; F32, F16, BF16, Q8_0, Q4_0,
 * Q4_K, Q6_K tensors) → a Hugging Face model directory this engine (and transformers) loads: config.json from
 * the metadata, F32 safetensors dequantized and with q/k rows un-permuted to HF's RoPE layout, tokenizer.json +
 * tokenizer_config.json (chat template included) rebuilt from the vocabulary. Everything is checked before
 * anything is written; the directory appears by rename when complete. The reverse is export-model.ts.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DECODABLE_TYPES, decodeTensor } from '../formats/ggml-quants.js';
import { GgufError, GgufMetadata, fileSource, parseGguf } from '../formats/gguf.js';
import { configFromMetadata, hfTensorName, permutesQk, qkHeads, unpermuteQk } from '../formats/gguf-llama.js';
import { specialIdsFromGguf, tokenizerFromGguf } from '../formats/gguf-vocab.js';
import { expectedTensors, parseModelConfig } from '../formats/hf-config.js';
import { createTokenizer } from '../formats/tokenizer.js';
import { writeBeside, writeJson, writeSafetensorsShards, type TensorSource } from './hf-dir.js';

export interface ImportOptions {
  force?: boolean;
  /** Shard size cap (default 1 GiB). */
  maxShardBytes?: number;
}

export interface ImportResult {
  out: string;
  architecture: string;
  tensors: number;
  /** Tensor count per GGUF type read, e.g. { Q4_K: 150, Q6_K: 20, F32: 45 }. */
  types: Record<string, number>;
  tokenizer: boolean;
  warnings: string[];
}

export async function importGguf(
  file: string,
  outDir: string,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const src = fileSource(file);
  try {
    const gguf = parseGguf(src);
    const meta = new GgufMetadata(gguf.metadata);
    const { arch, rawConfig } = configFromMetadata(meta, gguf.tensors, specialIdsFromGguf(meta));
    const config = parseModelConfig(rawConfig);

    const expected = new Map(expectedTensors(config).map((t) => [t.name, t.shape]));
    const sources: TensorSource[] = [];
    const types: Record<string, number> = {};
    for (const t of gguf.tensors) {
      const hf = hfTensorName(t.name);
      if (hf === null || !expected.has(hf)) {
        throw new GgufError(`tensor ${t.name} has no place in a ${arch} model of this config`, {
          tensor: t.name,
        });
      }
      const shape = expected.get(hf)!;
      if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
        throw new GgufError(
          `tensor ${t.name} has shape [${t.shape.join(', ')}], the metadata needs [${shape.join(', ')}]`,
          { tensor: t.name },
        );
      }
      if (!DECODABLE_TYPES.includes(t.type.name)) {
        throw new GgufError(
          `tensor ${t.name} is ${t.type.name}, a type this importer cannot decode (${DECODABLE_TYPES.join(', ')} are)`,
          { tensor: t.name },
        );
      }
      types[t.type.name] = (types[t.type.name] ?? 0) + 1;
      const heads = permutesQk(arch) ? qkHeads(hf, config) : null;
      sources.push({
        name: hf,
        shape,
        data: () => {
          const x = decodeTensor(src.read(t.offset, t.nbytes), t.type, t.numel, t.name);
          for (let i = 0; i < x.length; i++) {
            if (!Number.isFinite(x[i]!))
              throw new GgufError(`tensor ${t.name} has a non-finite value (${x[i]}) at index ${i}`, {
                tensor: t.name,
              });
          }
          return heads === null ? x : unpermuteQk(x, heads, shape.length === 1 ? 1 : shape[1]!);
        },
      });
      expected.delete(hf);
    }
    const missing = [...expected.keys()];
    if (missing.length > 0) {
      throw new GgufError(
        `the file lacks ${missing.length} tensor(s) a ${arch} model needs, first ${missing[0]}`,
        {
          tensor: missing[0],
        },
      );
    }

    const tok = tokenizerFromGguf(meta, config.maxPositionEmbeddings);
    if (tok !== null) {
      const n = tokenCount(tok.tokenizerJson);
      if (n > config.vocabSize) {
        throw new GgufError(
          `the vocabulary has ${n} tokens, more than token_embd.weight's ${config.vocabSize} rows`,
          {
            key: 'tokenizer.ggml.tokens',
          },
        );
      }
      try {
        createTokenizer(tok.tokenizerJson, tok.tokenizerConfig, rawConfig);
      } catch (cause) {
        throw new GgufError(`the vocabulary does not make a usable tokenizer: ${(cause as Error).message}`, {
          cause,
        });
      }
    }

    const out = resolve(outDir);
    await writeBeside(out, opts.force ?? false, async (tmp) => {
      await mkdir(tmp);
      await writeJson(join(tmp, 'config.json'), rawConfig);
      await writeSafetensorsShards(tmp, sources, opts.maxShardBytes);
      await writeJson(join(tmp, 'generation_config.json'), {
        bos_token_id: rawConfig.bos_token_id,
        eos_token_id: rawConfig.eos_token_id,
      });
      if (tok !== null) {
        await writeJson(join(tmp, 'tokenizer.json'), tok.tokenizerJson);
        await writeJson(join(tmp, 'tokenizer_config.json'), tok.tokenizerConfig);
      }
    });
    return {
      out,
      architecture: arch,
      tensors: sources.length,
      types,
      tokenizer: tok !== null,
      warnings: tok?.warnings ?? [],
    };
  } finally {
    src.close();
  }
}

function tokenCount(tokenizerJson: Record<string, unknown>): number {
  const vocab = (tokenizerJson.model as { vocab: Record<string, number> }).vocab;
  return Object.keys(vocab).length;
}
