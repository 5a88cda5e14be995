/**
 * PEFT LoRA adapters in exactly PEFT's on-disk layout: `adapter_config.json` + `adapter_model.safetensors`
 * with keys `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight` (R, in) / `lora_B` (out, R).
 * Import validation is strict (anything we cannot honour is refused here, never mid-inference); output is
 * what PEFT's `save_pretrained` writes. `rank_pattern` / `alpha_pattern` give a module its own rank and
 * scale (LoraWeights.rank / .alpha; `moduleRank` / `moduleScale`). Not the LoRA graph ops: src/engine/nn/.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BadInputError } from '../../shared/errors.js';
import {
  LINEAR_MODULES,
  isLinearModule,
  linearShape,
  moduleParent,
  type LinearModule,
  type ModelConfig,
} from './hf-config.js';
import { parseSafetensors, toFloat32, writeSafetensors, type TensorInput } from './safetensors.js';

export interface LoraWeights {
  /** (R, in); R is this module's rank (`moduleRank`) */
  a: Float32Array;
  /** (out, R) */
  b: Float32Array;
  /**
   * PEFT's `rank_pattern` / `alpha_pattern`: this module's own rank and lora_alpha, present only where they
   * differ from the adapter's `rank` / `alpha`. Read them through `moduleRank` / `moduleScale`.
   */
  rank?: number;
  alpha?: number;
}

export interface LoraAdapter {
  /** PEFT's `r`: the rank of every module without a `rank_pattern` entry (LoraWeights.rank). */
  rank: number;
  /** PEFT's `lora_alpha`: likewise the default of `alpha_pattern`. */
  alpha: number;
  useRslora: boolean;
  /** alpha / r, or alpha / sqrt(r) with rsLoRA: the scale of every module without its own rank or alpha. */
  scale: number;
  dropout: number;
  /** In LINEAR_MODULES order. */
  targetModules: LinearModule[];
  baseModelName: string | null;
  /** Key `${layer}.${module}`. */
  weights: Map<string, LoraWeights>;
}

/** adapter_config.json asks for something PEFT supports but this engine does not honour, or is malformed. */
export class AdapterConfigError extends BadInputError {}

/** Adapter weight file: unknown key, missing pair, non-finite value, wrong dtype. */
export class AdapterWeightsError extends BadInputError {}

/** A LoRA matrix whose shape does not fit the base model. */
export class AdapterShapeMismatchError extends BadInputError {
  constructor(
    readonly key: string,
    readonly actual: number[],
    readonly expected: number[],
  ) {
    super(
      `adapter tensor ${key} has shape [${actual.join(', ')}], the base model needs [${expected.join(', ')}]`,
      {
        details: { key, actual, expected },
      },
    );
  }
}

/**
 * Import bounds (the rule in docs/FORMATS.md): an adapter past them could never generate — its update
 * overflows float32 activations into Inf/NaN logits — so it is refused at import, naming the tensor.
 * - the scale (alpha/r, or alpha/√r with rsLoRA) is finite and at most MAX_LORA_SCALE;
 * - every value of every lora_A/lora_B tensor is finite (after conversion to float32) and |w| ≤ MAX_LORA_WEIGHT;
 * - per (layer, module), scale · Σ_r max|B[:, r]| · max|A[r, :]| ≤ MAX_LORA_DELTA: an upper bound of every
 *   |ΔW| entry of ΔW = scale·B·A, computed in float64 in one pass (no product is formed).
 * Trained adapters sit orders of magnitude below (|ΔW| well under 1); the built-in model still generates
 * finite logits at 100× the delta bound.
 */
export const MAX_LORA_SCALE = 1e4;
export const MAX_LORA_WEIGHT = 1e4;
export const MAX_LORA_DELTA = 1e3;

export function loraScale(alpha: number, rank: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

export function loraKey(layer: number, module: LinearModule): string {
  return `${layer}.${module}`;
}

/** This module's rank: its `rank_pattern` entry, else the adapter's r. */
export function moduleRank(adapter: LoraAdapter, w: LoraWeights): number {
  return w.rank ?? adapter.rank;
}

/** This module's scale: alpha/r (or alpha/√r) with its own rank and alpha where the patterns give them. */
export function moduleScale(adapter: LoraAdapter, w: LoraWeights): number {
  if (w.rank === undefined && w.alpha === undefined) return adapter.scale;
  return loraScale(w.alpha ?? adapter.alpha, w.rank ?? adapter.rank, adapter.useRslora);
}

/** The largest module rank (what a side-load stack pads to); `adapter.rank` for an adapter without weights. */
export function maxModuleRank(adapter: LoraAdapter): number {
  let r = 0;
  for (const w of adapter.weights.values()) r = Math.max(r, moduleRank(adapter, w));
  return r === 0 ? adapter.rank : r;
}

/** The module's path inside the model as PEFT's pattern keys see it: `model.layers.3.self_attn.q_proj`. */
export function peftModulePath(layer: number, module: LinearModule): string {
  return `model.layers.${layer}.${moduleParent(module)}.${module}`;
}

/**
 * A `rank_pattern` / `alpha_pattern` key as PEFT's `get_pattern_key` applies it: a regex matched against
 * the whole module path with any prefix that ends at a dot, `(.*\.)?(key)$`; the first key in the object
 * that matches wins. Only plain names and dotted paths are honoured (letters, digits, `_`, `-`, `.` as
 * PEFT's any-character, `\.`): adapters arrive from customers, and a general regex is not evaluated here.
 */
function patternMatcher(field: string, key: string): RegExp {
  if (!/^(?:[A-Za-z0-9_-]|\\\.|\.)+$/.test(key)) {
    throw new AdapterConfigError(
      `adapter_config.json: ${field} key ${JSON.stringify(key)} is not a module name or dotted path (regex syntax is not supported)`,
    );
  }
  return new RegExp(`^(?:.*\\.)?(?:${key})$`);
}

interface Pattern {
  key: string;
  value: number;
  re: RegExp;
}

function patternValue(patterns: readonly Pattern[], path: string): Pattern | undefined {
  return patterns.find((p) => p.re.test(path));
}

/** PEFT's saved key (the adapter name "default" stripped, as `save_pretrained` does). */
export function peftWeightKey(layer: number, module: LinearModule, which: 'A' | 'B'): string {
  return `base_model.model.model.layers.${layer}.${moduleParent(module)}.${module}.lora_${which}.weight`;
}

const KEY_RE =
  /^base_model\.model\.model\.layers\.(0|[1-9]\d*)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.default)?\.weight$/;

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v).length === 0;
  return false;
}

interface ParsedConfig {
  rank: number;
  alpha: number;
  useRslora: boolean;
  dropout: number;
  targetModules: LinearModule[];
  baseModelName: string | null;
  layers: number[] | null;
  rankPattern: Pattern[];
  alphaPattern: Pattern[];
}

function parsePatterns(
  c: Record<string, unknown>,
  field: 'rank_pattern' | 'alpha_pattern',
  bad: (msg: string) => never,
): Pattern[] {
  const raw = c[field];
  if (raw === undefined || raw === null) return [];
  if (typeof raw !== 'object' || Array.isArray(raw)) bad(`${field} must be an object of module → value`);
  return Object.entries(raw as Record<string, unknown>).map(([key, value]) => {
    const ok =
      field === 'rank_pattern'
        ? typeof value === 'number' && Number.isSafeInteger(value) && value > 0
        : typeof value === 'number' && Number.isFinite(value) && value > 0;
    if (!ok)
      bad(
        `${field}[${JSON.stringify(key)}] must be a positive ${field === 'rank_pattern' ? 'integer' : 'number'}, got ${JSON.stringify(value)}`,
      );
    return { key, value: value as number, re: patternMatcher(field, key) };
  });
}

function parseAdapterConfig(json: unknown, base: ModelConfig): ParsedConfig {
  const bad = (msg: string): never => {
    throw new AdapterConfigError(`adapter_config.json: ${msg}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('not a JSON object');
  const c = json as Record<string, unknown>;
  if (c.peft_type !== 'LORA') bad(`peft_type ${JSON.stringify(c.peft_type)} is not LORA`);
  if (c.task_type !== undefined && c.task_type !== null && c.task_type !== 'CAUSAL_LM') {
    bad(`task_type ${JSON.stringify(c.task_type)} is not CAUSAL_LM`);
  }
  const r = c.r ?? 8;
  if (typeof r !== 'number' || !Number.isSafeInteger(r) || r <= 0)
    bad(`r must be a positive integer, got ${JSON.stringify(r)}`);
  const alpha = c.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0)
    bad(`lora_alpha must be a positive number, got ${JSON.stringify(alpha)}`);
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1))
    bad(`lora_dropout must be in [0, 1), got ${JSON.stringify(dropout)}`);
  const useRslora = c.use_rslora ?? false;
  if (typeof useRslora !== 'boolean') bad('use_rslora must be a boolean');
  if ((c.bias ?? 'none') !== 'none') bad(`bias ${JSON.stringify(c.bias)} is not supported (only "none")`);
  if (c.fan_in_fan_out === true) bad('fan_in_fan_out=true is not supported (Llama linears are not Conv1D)');
  if (c.use_dora === true) bad('use_dora=true (DoRA) is not supported');
  if (c.lora_bias === true) bad('lora_bias=true (a bias on lora_B) is not supported');
  const rankPattern = parsePatterns(c, 'rank_pattern', bad);
  const alphaPattern = parsePatterns(c, 'alpha_pattern', bad);
  for (const k of [
    'modules_to_save',
    'layer_replication',
    'layers_pattern',
    'exclude_modules',
    'trainable_token_indices',
    'target_parameters',
  ] as const) {
    if (!isEmpty(c[k])) bad(`${k} is not supported`);
  }
  let targets: unknown = c.target_modules;
  if (typeof targets === 'string') {
    // PEFT treats a string as a regex over full module paths; only the plain names (and all-linear) are honoured.
    targets = targets === 'all-linear' ? [...LINEAR_MODULES] : [targets];
  }
  if (!Array.isArray(targets) || targets.length === 0)
    bad('target_modules must be a non-empty list of module names');
  const set = new Set<LinearModule>();
  for (const t of targets as unknown[]) {
    // PEFT matches a name against the module path's suffix, so `self_attn.q_proj` means q_proj.
    const name = typeof t === 'string' ? t.replace(/^(?:self_attn|mlp)\./, '') : t;
    if (!isLinearModule(name))
      bad(`target module ${JSON.stringify(t)} is not one of ${LINEAR_MODULES.join(', ')}`);
    set.add(name as LinearModule);
  }
  let layers: number[] | null = null;
  const ltt = c.layers_to_transform;
  if (ltt !== undefined && ltt !== null) {
    const list = typeof ltt === 'number' ? [ltt] : ltt;
    if (!Array.isArray(list) || !list.every((l) => Number.isSafeInteger(l) && l >= 0 && l < base.numLayers)) {
      bad(`layers_to_transform ${JSON.stringify(ltt)} is not a list of layers in [0, ${base.numLayers})`);
    }
    layers = [...new Set(list as number[])].sort((x, y) => x - y);
  }
  const scale = loraScale(alpha as number, r as number, useRslora as boolean);
  if (!Number.isFinite(scale) || scale > MAX_LORA_SCALE) {
    bad(
      `lora_alpha ${alpha as number} with r ${r as number} gives a scale of ${scale} (${useRslora ? 'alpha/√r' : 'alpha/r'}), over the limit of ${MAX_LORA_SCALE}`,
    );
  }
  const bm = c.base_model_name_or_path ?? null;
  return {
    rank: r as number,
    alpha: alpha as number,
    useRslora: useRslora as boolean,
    dropout: dropout as number,
    targetModules: LINEAR_MODULES.filter((m) => set.has(m)),
    baseModelName: typeof bm === 'string' ? bm : null,
    layers,
    rankPattern,
    alphaPattern,
  };
}

/** scale · Σ_r max_o |B[o, r]| · max_i |A[r, i]|, in float64: no entry of scale·B·A can exceed it. */
function deltaBound(a: Float32Array, b: Float32Array, rank: number, scale: number): number {
  const inF = a.length / rank;
  const maxB = new Float64Array(rank);
  for (let j = 0; j < b.length; j++) {
    const r = j % rank;
    const v = Math.abs(b[j]!);
    if (v > maxB[r]!) maxB[r] = v;
  }
  let sum = 0;
  for (let r = 0; r < rank; r++) {
    let maxA = 0;
    for (let i = r * inF; i < (r + 1) * inF; i++) {
      const v = Math.abs(a[i]!);
      if (v > maxA) maxA = v;
    }
    sum += maxB[r]! * maxA;
  }
  return scale * sum;
}

/** 3.4e38 rather than float32's 3.3999999521443642e+38 in messages. */
function shortNumber(v: number): number {
  return Number.isFinite(v) ? Number(v.toPrecision(8)) : v;
}

/** The F64 value as written (before rounding to float32), for messages. */
function rawF64(bytes: Uint8Array, index: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getFloat64(8 * index, true);
}

/** Validate a PEFT adapter against the base model it will be applied to (bounds: MAX_LORA_*). */
export function parsePeftAdapter(
  adapterConfig: unknown,
  weights: Uint8Array,
  base: ModelConfig,
): LoraAdapter {
  const cfg = parseAdapterConfig(adapterConfig, base);
  const file = parseSafetensors(weights);
  const R = cfg.rank;
  const scale = loraScale(cfg.alpha, R, cfg.useRslora);
  // rank_pattern / alpha_pattern resolved once per (layer, module), as PEFT does when it injects the layer.
  const own = new Map<string, { rank: number; alpha: number; scale: number }>();
  const ownOf = (layer: number, module: LinearModule) => {
    const k = loraKey(layer, module);
    let o = own.get(k);
    if (!o) {
      const path = peftModulePath(layer, module);
      const rp = patternValue(cfg.rankPattern, path);
      const ap = patternValue(cfg.alphaPattern, path);
      const rank = rp?.value ?? R;
      const alpha = ap?.value ?? cfg.alpha;
      const s = loraScale(alpha, rank, cfg.useRslora);
      if (!Number.isFinite(s) || s > MAX_LORA_SCALE) {
        throw new AdapterConfigError(
          `adapter_config.json: ${path} gets lora_alpha ${alpha} with r ${rank} (${rp ? `rank_pattern ${JSON.stringify(rp.key)}` : 'r'}, ${ap ? `alpha_pattern ${JSON.stringify(ap.key)}` : 'lora_alpha'}), a scale of ${s}, over the limit of ${MAX_LORA_SCALE}`,
        );
      }
      o = { rank, alpha, scale: s };
      own.set(k, o);
    }
    return o;
  };
  const found = new Map<string, Partial<LoraWeights> & { keyA?: string; keyB?: string }>();
  for (const [key, entry] of file.tensors) {
    const m = KEY_RE.exec(key);
    if (!m) throw new AdapterWeightsError(`adapter tensor ${key} is not a PEFT LoRA key this engine knows`);
    const layer = Number(m[1]);
    const module = m[3]!;
    const which = m[4] as 'A' | 'B';
    if (!isLinearModule(module) || moduleParent(module) !== m[2])
      throw new AdapterWeightsError(`adapter tensor ${key}: unknown module ${m[2]}.${module}`);
    if (layer >= base.numLayers)
      throw new AdapterWeightsError(
        `adapter tensor ${key}: layer ${layer} is out of range (base has ${base.numLayers})`,
      );
    if (!cfg.targetModules.includes(module))
      throw new AdapterWeightsError(`adapter tensor ${key}: ${module} is not in target_modules`);
    if (cfg.layers && !cfg.layers.includes(layer))
      throw new AdapterWeightsError(`adapter tensor ${key}: layer ${layer} is not in layers_to_transform`);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(entry.dtype))
      throw new AdapterWeightsError(`adapter tensor ${key}: dtype ${entry.dtype} is not a float type`);
    const { inFeatures, outFeatures } = linearShape(base, module);
    const r = ownOf(layer, module).rank;
    const expected = which === 'A' ? [r, inFeatures] : [outFeatures, r];
    if (entry.shape.length !== 2 || entry.shape[0] !== expected[0] || entry.shape[1] !== expected[1]) {
      throw new AdapterShapeMismatchError(key, entry.shape, expected);
    }
    const k = loraKey(layer, module);
    const slot = found.get(k) ?? {};
    if (slot[which === 'A' ? 'a' : 'b'])
      throw new AdapterWeightsError(`adapter tensor ${key}: given twice (with and without .default)`);
    // Copy: the adapter outlives the upload buffer, and callers may reuse it.
    const data = Float32Array.from(toFloat32(entry));
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (!(Math.abs(v) <= MAX_LORA_WEIGHT)) {
        const raw = entry.dtype === 'F64' ? ` (${rawF64(entry.bytes, i)} as F64)` : '';
        throw new AdapterWeightsError(
          Number.isFinite(v)
            ? `adapter tensor ${key}: value ${shortNumber(v)} at index ${i} is beyond ±${MAX_LORA_WEIGHT}`
            : `adapter tensor ${key}: non-finite value ${v}${raw} at index ${i}`,
          {
            details: { tensor: key },
          },
        );
      }
    }
    slot[which === 'A' ? 'a' : 'b'] = data;
    slot[which === 'A' ? 'keyA' : 'keyB'] = key;
    found.set(k, slot);
  }
  const layers = cfg.layers ?? Array.from({ length: base.numLayers }, (_, i) => i);
  const out = new Map<string, LoraWeights>();
  for (const layer of layers) {
    for (const module of cfg.targetModules) {
      const w = found.get(loraKey(layer, module));
      if (!w?.a) throw new AdapterWeightsError(`adapter is missing ${peftWeightKey(layer, module, 'A')}`);
      if (!w.b) throw new AdapterWeightsError(`adapter is missing ${peftWeightKey(layer, module, 'B')}`);
      const o = ownOf(layer, module);
      const bound = deltaBound(w.a, w.b, o.rank, o.scale);
      if (!(bound <= MAX_LORA_DELTA)) {
        throw new AdapterWeightsError(
          `adapter tensors ${w.keyA} and ${w.keyB}: scale·|B|·|A| can reach ${bound.toPrecision(3)} per weight, over the limit of ${MAX_LORA_DELTA} (the update would overflow float32 activations)`,
          { details: { tensor: w.keyB } },
        );
      }
      out.set(loraKey(layer, module), {
        a: w.a,
        b: w.b,
        ...(o.rank === R ? {} : { rank: o.rank }),
        ...(o.alpha === cfg.alpha ? {} : { alpha: o.alpha }),
      });
    }
  }
  return {
    rank: R,
    alpha: cfg.alpha,
    useRslora: cfg.useRslora,
    scale,
    dropout: cfg.dropout,
    targetModules: cfg.targetModules,
    baseModelName: cfg.baseModelName,
    weights: out,
  };
}

/** What PEFT's `save_pretrained` writes (F32 weights, config keys sorted as PEFT's `sort_keys=True`). */
export function serializePeftAdapter(adapter: LoraAdapter): {
  adapterConfig: Record<string, unknown>;
  weights: Uint8Array;
} {
  // Per-module ranks and alphas become full-path pattern keys (each matches exactly one module), sorted as
  // PEFT's `sort_keys=True` writes them.
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  const own: Array<[string, LoraWeights]> = [];
  for (const [k, w] of adapter.weights) {
    if (w.rank !== undefined || w.alpha !== undefined) own.push([k, w]);
  }
  own
    .map(([k, w]) => {
      const dot = k.indexOf('.');
      const module = k.slice(dot + 1);
      if (!isLinearModule(module)) throw new AdapterWeightsError(`bad adapter weight key ${k}`);
      return [peftModulePath(Number(k.slice(0, dot)), module), w] as const;
    })
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .forEach(([path, w]) => {
      if (w.rank !== undefined && w.rank !== adapter.rank) rankPattern[path] = w.rank;
      if (w.alpha !== undefined && w.alpha !== adapter.alpha) alphaPattern[path] = w.alpha;
    });
  const adapterConfig: Record<string, unknown> = {
    alpha_pattern: alphaPattern,
    auto_mapping: null,
    base_model_name_or_path: adapter.baseModelName,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: adapter.alpha,
    lora_dropout: adapter.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: adapter.rank,
    rank_pattern: rankPattern,
    revision: null,
    target_modules: [...adapter.targetModules],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: adapter.useRslora,
  };
  const tensors: Record<string, TensorInput> = {};
  for (const [k, w] of adapter.weights) {
    const dot = k.indexOf('.');
    const layer = Number(k.slice(0, dot));
    const module = k.slice(dot + 1);
    if (!isLinearModule(module) || !Number.isSafeInteger(layer))
      throw new AdapterWeightsError(`bad adapter weight key ${k}`);
    const R = moduleRank(adapter, w);
    if (w.a.length % R !== 0 || w.b.length % R !== 0 || w.a.length === 0 || w.b.length === 0) {
      throw new AdapterWeightsError(
        `adapter weights ${k}: A has ${w.a.length} and B ${w.b.length} values, not multiples of rank ${R}`,
      );
    }
    tensors[peftWeightKey(layer, module, 'A')] = { dtype: 'F32', shape: [R, w.a.length / R], data: w.a };
    tensors[peftWeightKey(layer, module, 'B')] = { dtype: 'F32', shape: [w.b.length / R, R], data: w.b };
  }
  return { adapterConfig, weights: writeSafetensors(tensors, { format: 'pt' }) };
}

export async function readPeftDir(dir: string, base: ModelConfig): Promise<LoraAdapter> {
  let config: unknown;
  let weights: Uint8Array;
  try {
    config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
  } catch (cause) {
    throw new AdapterConfigError(`cannot read ${dir}/adapter_config.json: ${(cause as Error).message}`, {
      cause,
    });
  }
  try {
    weights = await readFile(join(dir, 'adapter_model.safetensors'));
  } catch (cause) {
    throw new AdapterWeightsError(
      `cannot read ${dir}/adapter_model.safetensors: ${(cause as Error).message}`,
      { cause },
    );
  }
  return parsePeftAdapter(config, weights, base);
}

export async function writePeftDir(dir: string, adapter: LoraAdapter): Promise<void> {
  const { adapterConfig, weights } = serializePeftAdapter(adapter);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'adapter_config.json'), JSON.stringify(adapterConfig, null, 2) + '\n');
  await writeFile(join(dir, 'adapter_model.safetensors'), weights);
}

/** ΔW = scale · B · A, (out, in), a plain loop (the reference the merged/side-loaded graphs are checked against). */
export function loraDelta(adapter: LoraAdapter, layer: number, module: LinearModule): Float32Array {
  const w = adapter.weights.get(loraKey(layer, module));
  if (!w) throw new BadInputError(`adapter has no weights for layer ${layer} ${module}`);
  const R = moduleRank(adapter, w);
  const scale = moduleScale(adapter, w);
  const inF = w.a.length / R;
  const outF = w.b.length / R;
  const d = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += w.b[o * R + r]! * w.a[r * inF + i]!;
      d[o * inF + i] = scale * s;
    }
  }
  return d;
}
