/**
 * What a SHRINK, MERGE or EXPORT job does, as stored in its row's `spec` (JSON): the service
 * (src/services/derived-jobs.ts) validates and normalizes the client's input into these shapes before
 * queuing; the handler (./derive-handler.ts) reads them back with `deriveSpecOf` / `exportSpecOf`, which
 * refuse a malformed row as bad input. Shapes only: the arithmetic is src/engine/delta and src/engine/convert.
 */
import type { TrainingJob } from '../db/repositories/training-jobs.js';
import { BadInputError } from '../shared/errors.js';

export type DeriveOperation = 'SHRINK' | 'MERGE';
export const MERGE_METHODS = ['LINEAR', 'CAT', 'SVD'] as const;
export type MergeMethodName = (typeof MERGE_METHODS)[number];
export const EXPORT_FORMATS = ['GGUF', 'HF'] as const;
export type ExportFormatName = (typeof EXPORT_FORMATS)[number];
/** GGUF weight encodings (HF exports are always F32: NONE). */
export const EXPORT_QUANTIZATIONS = ['NONE', 'F16', 'Q8_0', 'Q4_0'] as const;
export type ExportQuantization = (typeof EXPORT_QUANTIZATIONS)[number];

export interface DeriveSource {
  versionId: string;
  weight: number;
}

/** Every field present (null when not given), so two equal requests have equal canonical JSON. */
export interface DeriveSpec {
  operation: DeriveOperation;
  /** In order; SHRINK: exactly one, weight 1. */
  sources: DeriveSource[];
  /** MERGE only. */
  method: MergeMethodName | null;
  /** SHRINK: the rank (or `energy`); MERGE SVD: the rank (null: the largest source rank). */
  rank: number | null;
  /** SHRINK only: the fraction of each module's ‖s·B·A‖² to keep. */
  energy: number | null;
}

export interface ExportSpec {
  operation: 'EXPORT';
  versionId: string;
  format: ExportFormatName;
  quantize: ExportQuantization;
}

function bad(job: TrainingJob, why: string): never {
  throw new BadInputError(`job ${job.id} has a malformed ${job.kind} spec: ${why}`);
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const orNull = (x: unknown): number | null => (isNum(x) ? x : null);

export function deriveSpecOf(job: TrainingJob): DeriveSpec {
  const s = job.spec ?? bad(job, 'none');
  if (job.kind !== 'SHRINK' && job.kind !== 'MERGE') bad(job, `kind ${job.kind}`);
  if (s.operation !== job.kind) bad(job, `operation ${String(s.operation)}`);
  const sources = Array.isArray(s.sources) ? (s.sources as unknown[]) : bad(job, 'no sources');
  const parsed = sources.map((x) => {
    const { versionId, weight } = (x ?? {}) as Record<string, unknown>;
    if (typeof versionId !== 'string' || !isNum(weight)) bad(job, 'a source without versionId and weight');
    return { versionId, weight };
  });
  const method = s.method ?? null;
  if (method !== null && !(MERGE_METHODS as readonly unknown[]).includes(method))
    bad(job, `method ${String(method)}`);
  return {
    operation: job.kind,
    sources: parsed,
    method: method as MergeMethodName | null,
    rank: orNull(s.rank),
    energy: orNull(s.energy),
  };
}

export function exportSpecOf(job: TrainingJob): ExportSpec {
  const s = job.spec ?? bad(job, 'none');
  if (job.kind !== 'EXPORT' || s.operation !== 'EXPORT') bad(job, `kind ${job.kind}`);
  if (typeof s.versionId !== 'string') bad(job, 'no versionId');
  if (!(EXPORT_FORMATS as readonly unknown[]).includes(s.format)) bad(job, `format ${String(s.format)}`);
  if (!(EXPORT_QUANTIZATIONS as readonly unknown[]).includes(s.quantize))
    bad(job, `quantize ${String(s.quantize)}`);
  return {
    operation: 'EXPORT',
    versionId: s.versionId,
    format: s.format as ExportFormatName,
    quantize: s.quantize as ExportQuantization,
  };
}
