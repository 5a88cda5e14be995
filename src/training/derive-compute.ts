/**
 * The arithmetic of a derived-version or export job, as one function of plain data (`runComputeTask`): parse
 * the source adapters strictly against the base model's config, shrink or merge them (src/engine/delta), or
 * merge one into its base model and write a GGUF file / HF directory (src/engine/convert/export-model.ts).
 * It runs inside a worker thread (./derive-worker.ts, started by ./derive-thread.ts) so seconds of float64
 * work never block the API's event loop; it knows nothing of SQL, blobs or queues (./derive-handler.ts does).
 */
import { performance } from 'node:perf_hooks';
import { exportModel, type GgufQuantize } from '../engine/convert/export-model.js';
import { mergeAdapters, type MergeMethod, type MergeReport } from '../engine/delta/merge.js';
import { shrinkAdapter, splitKey, type ShrinkReport } from '../engine/delta/shrink.js';
import { loadModelConfig } from '../engine/formats/checkpoint.js';
import type { ModelConfig } from '../engine/formats/hf-config.js';
import { parsePeftAdapter, serializePeftAdapter, type LoraAdapter } from '../engine/formats/peft.js';
import { UnrecoverableJobError } from '../queue/job-queue.js';
import { sha256Hex } from '../storage/blob-store.js';
import { BadInputError } from '../shared/errors.js';
import type { DeriveSpec, ExportFormatName, ExportQuantization } from './derive-spec.js';

/** One stored adapter version: what its files hold, and how errors name it (`support@v3`). */
export interface AdapterFiles {
  label: string;
  /** adapter_config.json, parsed. */
  config: unknown;
  /** adapter_model.safetensors. */
  weights: Uint8Array;
  /** The weights' SHA-256 recorded at registration: checked here, off the event loop, before any use. */
  sha256?: string;
}

export interface DeriveTask {
  kind: 'derive';
  spec: DeriveSpec;
  /** The base model's config (every source was imported or trained against it). */
  base: ModelConfig;
  /** Written as the result's base_model_name_or_path. */
  baseModelName: string;
  sources: AdapterFiles[];
}

export interface ExportTask {
  kind: 'export';
  modelDir: string;
  adapter: AdapterFiles;
  format: ExportFormatName;
  quantize: ExportQuantization;
  /** The file (GGUF) or directory (HF) to write; must not exist. */
  out: string;
}

export type ComputeTask = DeriveTask | ExportTask;

/** A derived adapter, serialized (PEFT files), with the report recorded as the version's derivation. */
export interface DeriveOutput {
  kind: 'derive';
  adapterConfig: Record<string, unknown>;
  weights: Uint8Array;
  rank: number;
  alpha: number;
  targetModules: string[];
  report: Record<string, unknown>;
}

export interface ExportOutput {
  kind: 'export';
  out: string;
  tensors: number;
  /** Tensor data written. */
  bytes: number;
  types: Record<string, number>;
  warnings: string[];
}

export type ComputeOutput = DeriveOutput | ExportOutput;

/** `done` of `total` steps (modules, or the merge then one per tensor), and what was just finished. */
export type ProgressFn = (done: number, total: number, what: string) => void;

/** The strict PEFT import against the base, errors prefixed with the version's label. */
function parseSource(src: AdapterFiles, base: ModelConfig): LoraAdapter {
  if (src.sha256 !== undefined && sha256Hex(src.weights) !== src.sha256) {
    // Retrying cannot fix a stored file that changed: fail the job at once (logged by the handler).
    throw new UnrecoverableJobError(
      `${src.label}: adapter_model.safetensors failed its SHA-256 check; refusing to use it`,
    );
  }
  try {
    return parsePeftAdapter(src.config, src.weights, base);
  } catch (err) {
    if (err instanceof BadInputError) (err as { message: string }).message = `${src.label}: ${err.message}`;
    throw err;
  }
}

/** adapter_config.json's layers_to_transform, normalized and sorted (null: every layer). */
function layersToTransform(config: unknown): number[] | null {
  const ltt = (config as { layers_to_transform?: unknown } | null)?.layers_to_transform;
  if (ltt === undefined || ltt === null) return null;
  return [...new Set(typeof ltt === 'number' ? [ltt] : (ltt as number[]))].sort((x, y) => x - y);
}

const sqrt = (x: number) => Math.sqrt(Math.max(0, x));

function shrinkReport(r: ShrinkReport, rank: number): Record<string, unknown> {
  return {
    rank,
    keptEnergy: 1 - r.droppedEnergy,
    droppedEnergy: r.droppedEnergy,
    relativeError: sqrt(r.droppedEnergy),
    modules: r.modules.map((m) => ({
      module: m.module,
      shape: m.shape,
      rankBefore: m.rankBefore,
      rank: m.rankAfter,
      keptEnergy: 1 - m.droppedEnergy,
      droppedEnergy: m.droppedEnergy,
      relativeError: sqrt(m.droppedEnergy),
    })),
  };
}

function mergeReport(r: MergeReport): Record<string, unknown> {
  const base = { method: r.method.toUpperCase(), rank: r.rank };
  if (r.method === 'svd') {
    return {
      ...base,
      maxDroppedEnergy: Math.max(0, ...r.dropped.map((d) => d.droppedEnergy)),
      modules: r.dropped.map((d) => ({
        module: d.module,
        rank: r.rank,
        keptEnergy: 1 - d.droppedEnergy,
        droppedEnergy: d.droppedEnergy,
        relativeError: sqrt(d.droppedEnergy),
      })),
    };
  }
  if (r.method === 'cat') return { ...base, droppedEnergy: 0, note: 'exactly Σ wᵢ·sᵢ·Bᵢ·Aᵢ' };
  return {
    ...base,
    note: "PEFT's linear combination of the factors: B·A includes the cross terms Bᵢ·Aⱼ, so it is not Σ wᵢ·sᵢ·Bᵢ·Aᵢ",
  };
}

function derive(task: DeriveTask, onProgress: ProgressFn): DeriveOutput {
  const started = performance.now();
  const { spec, base } = task;
  const inputs = task.sources.map((s) => parseSource(s, base));
  const partial = task.sources.map((s) => layersToTransform(s.config));
  let adapter: LoraAdapter;
  let report: Record<string, unknown>;
  let layers: number[] | null;
  if (spec.operation === 'SHRINK') {
    if (inputs.length !== 1) throw new BadInputError('SHRINK takes exactly one source version');
    if ((spec.rank === null) === (spec.energy === null))
      throw new BadInputError('SHRINK takes exactly one of rank and energy');
    const out = shrinkAdapter(inputs[0]!, {
      ...(spec.energy !== null ? { energy: spec.energy } : { rank: spec.rank! }),
      onModule: onProgress,
    });
    adapter = out.adapter;
    report = shrinkReport(out.report, adapter.rank);
    layers = partial[0]!;
  } else {
    if (spec.method === null) throw new BadInputError('MERGE needs a method');
    // As `adapter merge`: with a layers_to_transform in any input, the result covers the layers present.
    layers = partial.some((p) => p !== null)
      ? [...new Set(inputs.flatMap((a) => [...a.weights.keys()].map((k) => splitKey(k).layer)))].sort(
          (x, y) => x - y,
        )
      : null;
    const out = mergeAdapters(
      inputs.map((a, i) => ({ adapter: a, weight: spec.sources[i]!.weight })),
      {
        method: spec.method.toLowerCase() as MergeMethod,
        config: base,
        ...(spec.rank !== null ? { rank: spec.rank } : {}),
        ...(layers ? { layers } : {}),
        onModule: onProgress,
      },
    );
    adapter = out.adapter;
    report = mergeReport(out.report);
  }
  const { adapterConfig, weights } = serializePeftAdapter({ ...adapter, baseModelName: task.baseModelName });
  if (layers) adapterConfig.layers_to_transform = layers;
  // What the gateway will load must pass the import it would: a result past the import bounds (e.g. weights
  // that blow the update up) is refused here, not when someone generates with it.
  try {
    parsePeftAdapter(adapterConfig, weights, base);
  } catch (err) {
    if (err instanceof BadInputError)
      throw new BadInputError(`the ${spec.operation} result is not a usable adapter: ${err.message}`, {
        details: err.details,
      });
    throw err;
  }
  return {
    kind: 'derive',
    adapterConfig,
    weights,
    rank: adapter.rank,
    alpha: adapter.alpha,
    targetModules: [...adapter.targetModules],
    report: { ...report, durationSeconds: (performance.now() - started) / 1000 },
  };
}

async function exportTask(task: ExportTask, onProgress: ProgressFn): Promise<ExportOutput> {
  const { config } = await loadModelConfig(task.modelDir);
  const adapter = parseSource(task.adapter, config);
  const r = await exportModel({
    modelDir: task.modelDir,
    adapter,
    out: task.out,
    format: task.format === 'GGUF' ? 'gguf' : 'hf',
    quantize: task.quantize.toLowerCase() as GgufQuantize,
    onProgress,
  });
  return {
    kind: 'export',
    out: r.out,
    tensors: r.tensors,
    bytes: r.bytes,
    types: r.types,
    warnings: r.warnings,
  };
}

export async function runComputeTask(task: ComputeTask, onProgress: ProgressFn): Promise<ComputeOutput> {
  return task.kind === 'derive' ? derive(task, onProgress) : exportTask(task, onProgress);
}
