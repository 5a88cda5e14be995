/**
 * Side-loaded LoRA for a batch: the batch's distinct adapters stacked into the `lora.{l}.{module}.A/B` graph
 * inputs (slot 0 = the zero adapter = base model; ranks zero-padded to the largest, per-module ranks of
 * PEFT's rank_pattern included; each module's scale folded into its B) and each row's slot. Plus `validateAdapter`, run before an adapter is used at all.
 * The graph side is src/engine/nn/linear.ts (`loraTerm`); PEFT parsing is src/engine/formats/peft.ts.
 */
import { LINEAR_MODULES, linearShape } from '../engine/formats/hf-config.js';
import type { LinearModule, ModelConfig } from '../engine/formats/hf-config.js';
import {
  AdapterShapeMismatchError,
  loraKey,
  maxModuleRank,
  moduleRank,
  moduleScale,
  type LoraAdapter,
} from '../engine/formats/peft.js';
import type { HostTensor } from '../engine/ir/types.js';
import { BadInputError } from '../shared/errors.js';

/** Throws AdapterShapeMismatchError / BadInputError unless every matrix fits `config`. */
export function validateAdapter(config: ModelConfig, adapter: LoraAdapter): void {
  const R = adapter.rank;
  if (!Number.isInteger(R) || R < 1)
    throw new BadInputError(`adapter rank must be a positive integer, got ${R}`);
  if (!Number.isFinite(adapter.scale))
    throw new BadInputError(`adapter scale must be finite, got ${adapter.scale}`);
  for (const [key, w] of adapter.weights) {
    const r = moduleRank(adapter, w);
    if (!Number.isInteger(r) || r < 1)
      throw new BadInputError(`adapter rank of ${key} must be a positive integer, got ${r}`);
    const scale = moduleScale(adapter, w);
    if (!Number.isFinite(scale))
      throw new BadInputError(`adapter scale of ${key} must be finite, got ${scale}`);
    const [layerStr, module] = key.split('.') as [string, LinearModule];
    const layer = Number(layerStr);
    if (
      !Number.isInteger(layer) ||
      layer < 0 ||
      layer >= config.numLayers ||
      !LINEAR_MODULES.includes(module)
    ) {
      throw new BadInputError(
        `adapter targets ${key}, which the base model (${config.numLayers} layers) lacks`,
      );
    }
    const { inFeatures, outFeatures } = linearShape(config, module);
    if (w.a.length !== r * inFeatures)
      throw new AdapterShapeMismatchError(`${key}.A`, [r, w.a.length / r], [r, inFeatures]);
    if (w.b.length !== outFeatures * r)
      throw new AdapterShapeMismatchError(`${key}.B`, [w.b.length / r, r], [outFeatures, r]);
  }
}

export interface AdapterStack {
  /** S = adapters + 1 */
  slots: number;
  /** R: the largest module rank in the stack (≥ 1). */
  rank: number;
  /** `lora.{l}.{module}.A` (S, R, in) and `.B` (S, out, R). */
  feeds: Record<string, HostTensor>;
}

/** Stacks `adapters` as slots 1…n (slot 0 zero). `modules`: the graph's side-loaded modules. */
export function buildAdapterStack(
  config: ModelConfig,
  adapters: readonly LoraAdapter[],
  modules: readonly LinearModule[] = LINEAR_MODULES,
): AdapterStack {
  const S = adapters.length + 1;
  const R = Math.max(1, ...adapters.map(maxModuleRank));
  const feeds: Record<string, HostTensor> = {};
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of modules) {
      const { inFeatures: inF, outFeatures: outF } = linearShape(config, m);
      const a = new Float32Array(S * R * inF);
      const b = new Float32Array(S * outF * R);
      adapters.forEach((ad, i) => {
        const w = ad.weights.get(loraKey(l, m));
        if (!w) return;
        const s = i + 1;
        const r = moduleRank(ad, w);
        const scale = moduleScale(ad, w);
        // A rows beyond r stay zero; so do B columns beyond r: the padded rank contributes nothing.
        a.set(w.a, s * R * inF);
        for (let o = 0; o < outF; o++) {
          const dst = (s * outF + o) * R;
          for (let k = 0; k < r; k++) b[dst + k] = scale * w.b[o * r + k]!;
        }
      });
      feeds[`lora.${l}.${m}.A`] = { dtype: 'float32', shape: [S, R, inF], data: a };
      feeds[`lora.${l}.${m}.B`] = { dtype: 'float32', shape: [S, outF, R], data: b };
    }
  }
  return { slots: S, rank: R, feeds };
}
