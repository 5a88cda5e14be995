/**
 * The registry of base models adapters can target: the built-in `deltagate-tiny` plus each Hugging Face
 * directory of DELTAGATE_BASE_MODELS, read once at start-up from their `config.json` (weights are the
 * inference layer's business). Not persisted: it is configuration, the same in every process.
 * Each model also carries its serving grid (`servingQuantization`, from configuration): the base weights
 * generation runs on, which should be the grid its adapters were trained on (see ./serving-grid.ts).
 * The composition root (src/main.ts) resolves the directories; this module only reads them.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parameterCount, parseModelConfig, type ModelConfig } from '../engine/formats/hf-config.js';
import type { Quantization } from '../engine/nn/weights.js';
import { BadInputError } from '../shared/errors.js';

/**
 * The base weights generation serves an adapter on: 'none' = the checkpoint's fp32 weights, 'nf4' = the NF4 +
 * double-quantization weights QLoRA training uses (the default grid), 'int4' = the MatMulNBits grid of
 * `train --quantize int4`.
 */
export type ServingQuantization = Quantization;

/** Training's default base format, so adapters trained with defaults are served on their own grid. */
export const DEFAULT_SERVING_QUANTIZATION: ServingQuantization = 'nf4';

export interface BaseModel {
  id: string;
  name: string;
  architecture: string;
  parameterCount: number;
  contextLength: number;
  /** How the stored weights are quantized ('NONE' for plain float checkpoints). */
  quantization: string;
  /** The grid generation runs this model's weights on (DELTAGATE_SERVING_QUANTIZATION, or a per-model `#…`). */
  servingQuantization: ServingQuantization;
  /** The HF config.json as found on disk. */
  config: Record<string, unknown>;
  modelConfig: ModelConfig;
  dir: string;
}

export interface BaseModelSource {
  /** Defaults to the directory's base name, lowercased. */
  id?: string;
  dir: string;
  /** Default DEFAULT_SERVING_QUANTIZATION ('nf4'). */
  servingQuantization?: ServingQuantization;
}

export class UnknownBaseModelError extends BadInputError {
  constructor(id: string) {
    super(`unknown base model ${JSON.stringify(id)}; see the baseModels query`, {
      details: { baseModelId: id },
    });
  }
}

function defaultId(dir: string): string {
  return (
    basename(dir)
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'model'
  );
}

function quantizationOf(config: Record<string, unknown>): string {
  const q = config.quantization_config;
  if (q && typeof q === 'object') {
    const t = (q as Record<string, unknown>).quant_type ?? (q as Record<string, unknown>).quant_method;
    if (typeof t === 'string') return t.toUpperCase();
  }
  return 'NONE';
}

export async function readBaseModel(source: BaseModelSource): Promise<BaseModel> {
  const config = JSON.parse(await readFile(join(source.dir, 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const modelConfig = parseModelConfig(config);
  const id = source.id ?? defaultId(source.dir);
  const nameOrPath = config._name_or_path;
  return {
    id,
    name: typeof nameOrPath === 'string' && nameOrPath !== '' ? nameOrPath : id,
    architecture: modelConfig.architecture,
    parameterCount: parameterCount(modelConfig),
    contextLength: modelConfig.maxPositionEmbeddings,
    quantization: quantizationOf(config),
    servingQuantization: source.servingQuantization ?? DEFAULT_SERVING_QUANTIZATION,
    config,
    modelConfig,
    dir: source.dir,
  };
}

export class BaseModelRegistry {
  private readonly byId = new Map<string, BaseModel>();

  constructor(models: readonly BaseModel[]) {
    for (const m of models) {
      if (this.byId.has(m.id)) throw new Error(`two base models share the id ${m.id} (${m.dir})`);
      this.byId.set(m.id, m);
    }
  }

  static async load(sources: readonly BaseModelSource[]): Promise<BaseModelRegistry> {
    return new BaseModelRegistry(await Promise.all(sources.map(readBaseModel)));
  }

  list(): BaseModel[] {
    return [...this.byId.values()];
  }

  get(id: string): BaseModel | null {
    return this.byId.get(id) ?? null;
  }

  /** BAD_USER_INPUT for an id that is not registered. */
  require(id: string): BaseModel {
    const m = this.byId.get(id);
    if (m === undefined) throw new UnknownBaseModelError(id);
    return m;
  }
}
