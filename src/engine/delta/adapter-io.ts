/**
 * Files of the ΔW toolkit: reading a PEFT adapter directory without its base model (the linear shapes are
 * inferred from the tensors, every one checked against the others, then the regular strict PEFT import runs
 * against that shape), checking that several adapters share one base, and writing an adapter directory all
 * at once — into a temporary directory beside the destination, renamed into place at the end, so a failure
 * leaves nothing half-written. The algorithms are extract.ts, shrink.ts and merge.ts.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { BadInputError } from '../../shared/errors.js';
import { writeBeside } from '../convert/hf-dir.js';
import type { LinearModule, ModelConfig } from '../formats/hf-config.js';
import { isLinearModule } from '../formats/hf-config.js';
import {
  AdapterConfigError,
  AdapterWeightsError,
  parsePeftAdapter,
  serializePeftAdapter,
  type LoraAdapter,
} from '../formats/peft.js';
import { parseSafetensors } from '../formats/safetensors.js';

/** The widths a set of LoRA matrices pins down: C (hidden), Q (= heads·head dim), KV, F (MLP). */
type Dim = 'C' | 'Q' | 'KV' | 'F';

const DIMS: Record<LinearModule, { in: Dim; out: Dim }> = {
  q_proj: { in: 'C', out: 'Q' },
  k_proj: { in: 'C', out: 'KV' },
  v_proj: { in: 'C', out: 'KV' },
  o_proj: { in: 'Q', out: 'C' },
  gate_proj: { in: 'C', out: 'F' },
  up_proj: { in: 'C', out: 'F' },
  down_proj: { in: 'F', out: 'C' },
};

const DIM_NAMES: Record<Dim, string> = {
  C: 'hidden size',
  Q: 'attention width (heads × head dim)',
  KV: 'key/value width',
  F: 'MLP width',
};

const LORA_KEY =
  /^base_model\.model\.model\.layers\.(0|[1-9]\d*)\.(?:self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.default)?\.weight$/;

/** What the tensors of one adapter say about its base: widths (with the tensor that set each) and layers. */
export interface AdapterShape {
  dims: Partial<Record<Dim, { value: number; tensor: string }>>;
  /** max layer + 1 */
  numLayers: number;
}

/** The base widths an adapter's tensors imply; two tensors that disagree are an error naming both. */
export function adapterShape(
  tensors: ReadonlyMap<string, { shape: number[] }>,
  source: string,
): AdapterShape {
  const dims: AdapterShape['dims'] = {};
  let numLayers = 0;
  const pin = (dim: Dim, value: number, tensor: string) => {
    const had = dims[dim];
    if (had && had.value !== value) {
      throw new AdapterWeightsError(
        `${source}: tensor ${tensor} implies a ${DIM_NAMES[dim]} of ${value}, but ${had.tensor} implies ${had.value}`,
        { details: { tensor } },
      );
    }
    dims[dim] ??= { value, tensor };
  };
  for (const [key, { shape }] of tensors) {
    const m = LORA_KEY.exec(key);
    // Anything else is refused, with its name, by the strict import that follows.
    if (!m || !isLinearModule(m[2]) || shape.length !== 2) continue;
    const module = m[2];
    numLayers = Math.max(numLayers, Number(m[1]) + 1);
    if (m[3] === 'A') pin(DIMS[module].in, shape[1]!, key);
    else pin(DIMS[module].out, shape[0]!, key);
  }
  return { dims, numLayers };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * A ModelConfig with exactly the linear shapes `shape` pins (widths it does not pin are placeholders no
 * tensor of the adapter uses). Only for validating the adapter's own tensors: it is no model.
 */
export function configForShape(shape: AdapterShape): ModelConfig {
  const C = shape.dims.C?.value ?? 1;
  const Q = shape.dims.Q?.value ?? C;
  const KV = shape.dims.KV?.value ?? Q;
  const headDim = gcd(Q, KV);
  return {
    modelType: 'llama',
    architecture: 'LlamaForCausalLM',
    hiddenSize: C,
    intermediateSize: shape.dims.F?.value ?? 1,
    numLayers: Math.max(1, shape.numLayers),
    numHeads: Q / headDim,
    numKvHeads: KV / headDim,
    headDim,
    vocabSize: 1,
    maxPositionEmbeddings: 1,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: false,
    attentionBias: false,
    oProjBias: false,
    mlpBias: false,
    bosTokenId: null,
    eosTokenIds: [],
    slidingWindow: null,
    torchDtype: null,
  };
}

export interface ToolAdapter {
  dir: string;
  adapter: LoraAdapter;
  /** The base this adapter was checked against: the real one (`base` given) or the one its tensors imply. */
  config: ModelConfig;
  shape: AdapterShape;
  /** adapter_config.json's layers_to_transform, normalized (null: every layer). */
  layersToTransform: number[] | null;
}

/**
 * Reads `dir` (adapter_config.json + adapter_model.safetensors) with the strict PEFT import, against `base`
 * when given, else against the shapes its own tensors imply.
 */
export async function readToolAdapter(dir: string, base?: ModelConfig): Promise<ToolAdapter> {
  let rawConfig: unknown;
  try {
    rawConfig = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'));
  } catch (cause) {
    throw new AdapterConfigError(
      `cannot read ${join(dir, 'adapter_config.json')}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(dir, 'adapter_model.safetensors'));
  } catch (cause) {
    throw new AdapterWeightsError(
      `cannot read ${join(dir, 'adapter_model.safetensors')}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const shape = adapterShape(parseSafetensors(bytes).tensors, dir);
  const config = base ?? configForShape(shape);
  let adapter: LoraAdapter;
  try {
    adapter = parsePeftAdapter(rawConfig, bytes, config);
  } catch (err) {
    if (err instanceof BadInputError && !err.message.startsWith(dir)) {
      // Same class and details, with the directory in front: several adapters may be in play.
      (err as { message: string }).message = `${dir}: ${err.message}`;
    }
    throw err;
  }
  const ltt = (rawConfig as { layers_to_transform?: unknown }).layers_to_transform;
  const layersToTransform =
    ltt === undefined || ltt === null
      ? null
      : [...new Set(typeof ltt === 'number' ? [ltt] : (ltt as number[]))];
  return { dir, adapter, config, shape, layersToTransform: layersToTransform?.sort((x, y) => x - y) ?? null };
}

/**
 * Adapters combined into one must fit one base: every width any two of them pin must agree. Throws naming
 * the two tensors (and directories) that disagree; returns the joint shape.
 */
export function jointShape(adapters: readonly ToolAdapter[]): AdapterShape {
  const joint: AdapterShape = { dims: {}, numLayers: 0 };
  const from: Partial<Record<Dim, string>> = {};
  // Adapters over every layer (no layers_to_transform) tell the base's depth: it must be one.
  const full = adapters.filter((t) => t.layersToTransform === null);
  const deep = full.find((t) => t.shape.numLayers !== full[0]!.shape.numLayers);
  if (deep) {
    throw new AdapterWeightsError(
      `adapters for different base models: ${full[0]!.dir} has layers 0-${full[0]!.shape.numLayers - 1}, ${deep.dir} has layers 0-${deep.shape.numLayers - 1}`,
    );
  }
  for (const t of adapters) {
    joint.numLayers = Math.max(joint.numLayers, t.config.numLayers);
    for (const dim of Object.keys(t.shape.dims) as Dim[]) {
      const mine = t.shape.dims[dim]!;
      const had = joint.dims[dim];
      if (had && had.value !== mine.value) {
        throw new AdapterWeightsError(
          `adapters for different base models: ${t.dir} tensor ${mine.tensor} implies a ${DIM_NAMES[dim]} of ${mine.value}, ${from[dim]} tensor ${had.tensor} implies ${had.value}`,
          { details: { tensor: mine.tensor } },
        );
      }
      if (!had) {
        joint.dims[dim] = mine;
        from[dim] = t.dir;
      }
    }
  }
  return joint;
}

/**
 * Refuses an --out that exists (other than as an empty directory): the tools never overwrite.
 */
export async function checkOutDir(out: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(out)).isDirectory();
  } catch {
    return;
  }
  if (!isDir || (await readdir(out)).length > 0) {
    throw new BadInputError(`--out ${out} already exists; give a new directory (nothing is overwritten)`);
  }
}

export interface WriteOptions {
  /** Written as adapter_config.json's layers_to_transform (the weights must cover exactly these layers). */
  layersToTransform?: number[] | null;
  /** More files beside the adapter, e.g. extract-report.json. */
  extraFiles?: Record<string, string>;
}

/**
 * Writes the PEFT files (+ extras) into a temporary directory beside `out`, then renames it to `out`:
 * either the whole adapter appears or nothing does.
 */
export async function writeAdapterAtomically(
  out: string,
  adapter: LoraAdapter,
  options: WriteOptions = {},
): Promise<void> {
  await checkOutDir(out);
  const { adapterConfig, weights } = serializePeftAdapter(adapter);
  if (options.layersToTransform) adapterConfig.layers_to_transform = options.layersToTransform;
  await mkdir(dirname(resolve(out)), { recursive: true });
  // checkOutDir let through only an empty directory, which the finished one then replaces.
  await writeBeside(resolve(out), true, async (tmp) => {
    // mkdir, not mkdtemp: the directory gets the usual mode (umask), not mkdtemp's 0700, once renamed.
    await mkdir(tmp);
    await writeFile(join(tmp, 'adapter_config.json'), JSON.stringify(adapterConfig, null, 2) + '\n');
    await writeFile(join(tmp, 'adapter_model.safetensors'), weights);
    for (const [name, text] of Object.entries(options.extraFiles ?? {}))
      await writeFile(join(tmp, name), text);
  });
}
