/**
 * The deployment bench/gateway.ts measures, built from scratch in a temp dir through the product's own
 * code: a ≈100M-parameter Llama written as a Hugging Face directory (random weights, the built-in model's
 * byte tokenizer), a SQLite file, a directory blob store, `createServices` with that model registered, and
 * customers whose PEFT adapters are imported as versions through `AdaptersService.importVersion` (the path
 * an API upload takes). Benchmarks only: tests build their fixtures in test/.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { openDatabase, type Db } from '../../src/db/database.js';
import { builtinTokenizerConfig, builtinTokenizerJson } from '../../src/engine/builtin-model.js';
import { writeCheckpoint, type Tensor32 } from '../../src/engine/formats/checkpoint.js';
import {
  expectedTensors,
  linearShape,
  parseModelConfig,
  type LinearModule,
  type ModelConfig,
} from '../../src/engine/formats/hf-config.js';
import { loraKey, loraScale, serializePeftAdapter, type LoraWeights } from '../../src/engine/formats/peft.js';
import type { AdapterVersion } from '../../src/db/repositories/adapter-versions.js';
import { BaseModelRegistry, type BaseModel } from '../../src/services/base-models.js';
import { GenerationService, type GenerationOptions } from '../../src/services/generation.js';
import { ADMIN, createServices, type Actor, type Services } from '../../src/services/index.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';

export const GATEWAY_MODEL_ID = 'bench-llama-100m-byte';

/** The bench model: the `100m` engine preset's shape with the built-in model's 259-token byte vocabulary. */
export const GATEWAY_MODEL_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  _name_or_path: GATEWAY_MODEL_ID,
  hidden_size: 768,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_key_value_heads: 4,
  head_dim: 64,
  vocab_size: 259,
  max_position_embeddings: 1024,
  rope_theta: 10000.0,
  rms_norm_eps: 1e-5,
  hidden_act: 'silu',
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  initializer_range: 0.02,
  torch_dtype: 'float32',
});

/** Mulberry32: small, seedable, the same on every platform. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal(0, std) by Box–Muller (not a repeated block: every weight is drawn). */
function normal(count: number, std: number, next: () => number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = std * Math.sqrt(-2 * Math.log(1 - next()));
    const a = 2 * Math.PI * next();
    out[i] = r * Math.cos(a);
    if (i + 1 < count) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

/** Writes the bench model (config, safetensors, tokenizer files, generation config) into `dir`. */
export async function writeGatewayModel(dir: string, seed = 1): Promise<ModelConfig> {
  const config = parseModelConfig(GATEWAY_MODEL_CONFIG);
  const next = mulberry32(seed);
  const tensors = new Map<string, Tensor32>();
  for (const { name, shape } of expectedTensors(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    tensors.set(name, {
      shape,
      data: name.endsWith('norm.weight') ? new Float32Array(n).fill(1) : normal(n, 0.02, next),
    });
  }
  await writeCheckpoint(dir, { ...GATEWAY_MODEL_CONFIG }, tensors);
  const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';
  await writeFile(join(dir, 'tokenizer.json'), json(builtinTokenizerJson()));
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    json({ ...builtinTokenizerConfig(), model_max_length: 1024 }),
  );
  await writeFile(
    join(dir, 'generation_config.json'),
    json({ bos_token_id: 1, eos_token_id: 2, max_length: 1024 }),
  );
  return config;
}

/** A PEFT adapter (adapter_config.json + safetensors) with random A and B (std 0.02). */
export function benchPeftAdapter(
  config: ModelConfig,
  opts: { seed: number; rank?: number; modules?: LinearModule[] },
): { adapterConfig: Record<string, unknown>; weightsBase64: string } {
  const rank = opts.rank ?? 8;
  const modules = opts.modules ?? ['q_proj', 'v_proj'];
  const next = mulberry32(opts.seed * 7919 + 13);
  const weights = new Map<string, LoraWeights>();
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of modules) {
      const { inFeatures, outFeatures } = linearShape(config, m);
      weights.set(loraKey(l, m), {
        a: normal(rank * inFeatures, 0.02, next),
        b: normal(outFeatures * rank, 0.02, next),
      });
    }
  }
  const { adapterConfig, weights: bytes } = serializePeftAdapter({
    rank,
    alpha: 2 * rank,
    useRslora: false,
    scale: loraScale(2 * rank, rank, false),
    dropout: 0,
    targetModules: modules,
    baseModelName: GATEWAY_MODEL_ID,
    weights,
  });
  return { adapterConfig, weightsBase64: Buffer.from(bytes).toString('base64') };
}

export interface BenchCustomer {
  id: string;
  actor: Actor;
}

export interface BenchAdapter {
  /** What a request passes as `adapter` (the name: resolved to the latest version). */
  name: string;
  owner: BenchCustomer;
  version: AdapterVersion;
}

export interface GatewayBench {
  dir: string;
  db: Db;
  services: Services;
  base: BaseModel;
  config: ModelConfig;
  customers: BenchCustomer[];
  adapters: BenchAdapter[];
  logger: Logger;
  /** A GenerationService of its own (fresh gateway: empty caches, slots and KV pool) over the same services. */
  generationService(options: GenerationOptions): GenerationService;
  close(): Promise<void>;
}

/**
 * Everything in one temp dir: model, SQLite file, blob store; `customers` customers and `adapters` adapters
 * (adapter i belongs to customer i mod customers), each imported as version 1.
 */
export async function openGatewayBench(opts: {
  customers: number;
  adapters: number;
  generation: GenerationOptions;
  onProgress?: (what: string) => void;
}): Promise<GatewayBench> {
  const dir = mkdtempSync(join(tmpdir(), 'dg-bench-gateway-'));
  const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' });
  let db: Db | undefined;
  try {
    const modelDir = join(dir, 'models', GATEWAY_MODEL_ID);
    opts.onProgress?.('writing the model');
    const config = await writeGatewayModel(modelDir);
    db = await openDatabase({ kind: 'sqlite', file: join(dir, 'deltagate.sqlite') });
    const services = createServices({
      db,
      blobs: await FsBlobStore.open({ dir: join(dir, 'blobs'), publicUrl: 'http://127.0.0.1:9' }),
      baseModels: await BaseModelRegistry.load([{ id: GATEWAY_MODEL_ID, dir: modelDir }]),
      limits: { maxDatasetBytes: 1 << 20, maxInlineDatasetBytes: 1 << 20, maxAdapterBytes: 64 << 20 },
      adminKey: null,
      countTokens: null,
      logger,
      generation: opts.generation,
    });
    const base = services.baseModels.require(GATEWAY_MODEL_ID);
    const customers: BenchCustomer[] = [];
    for (let c = 0; c < opts.customers; c++) {
      const created = await services.customers.create(ADMIN, { name: `bench-customer-${c}` });
      customers.push({
        id: created.customer.id,
        actor: await services.apiKeys.authenticate(`Bearer ${created.secret}`),
      });
    }
    opts.onProgress?.(`importing ${opts.adapters} adapters`);
    const adapters: BenchAdapter[] = [];
    for (let i = 0; i < opts.adapters; i++) {
      const owner = customers[i % customers.length]!;
      const name = `bench-${String(i).padStart(2, '0')}`;
      const adapter = await services.adapters.create(owner.actor, { name, baseModelId: GATEWAY_MODEL_ID });
      const peft = benchPeftAdapter(config, { seed: i + 1 });
      const version = await services.adapters.importVersion(owner.actor, {
        adapterId: adapter.id,
        adapterConfig: peft.adapterConfig,
        weightsBase64: peft.weightsBase64,
      });
      adapters.push({ name, owner, version });
    }
    const dbOpen = db;
    return {
      dir,
      db: dbOpen,
      services,
      base,
      config,
      customers,
      adapters,
      logger,
      generationService: (options) =>
        new GenerationService({
          repos: services.repos,
          blobs: services.blobs,
          baseModels: services.baseModels,
          adapters: services.adapters,
          logger,
          options,
          runtime: services.runtime,
        }),
      async close() {
        await services.generation.close();
        await dbOpen.destroy();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
