/**
 * The ΔW toolkit and export over the API: `deriveAdapterVersion` (SHRINK one version, MERGE several) and
 * `exportAdapterVersion` (a version merged into its base model, as GGUF or an HF .tar) become jobs of the one
 * job queue (TrainingRunner.submitJob: idempotency key, quota, enqueue by id), with the training jobs'
 * progress stream and cancel. Everything that can be known before queuing is checked here — the caller's
 * tenant (another tenant's id is NOT_FOUND), base models, counts, duplicates, weights, rank against the
 * modules' dimensions and the sources' ranks (read from their adapter_config.json) — so a bad request never
 * becomes a job. The run is src/training/derive-handler.ts; the shapes src/training/derive-spec.ts.
 */
import type { Logger } from 'pino';
import type { Adapter } from '../db/repositories/adapters.js';
import type { AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { Repositories, Scope } from '../db/repositories/index.js';
import {
  PROMOTE_POLICIES,
  type JobArtifact,
  type PromotePolicy,
  type TrainingJob,
} from '../db/repositories/training-jobs.js';
import { LINEAR_MODULES, linearShape, type ModelConfig } from '../engine/formats/hf-config.js';
import type { BlobStore } from '../storage/blob-store.js';
import { ADAPTER_FILES } from '../storage/keys.js';
import {
  EXPORT_FORMATS,
  EXPORT_QUANTIZATIONS,
  MERGE_METHODS,
  type DeriveSpec,
  type ExportFormatName,
  type ExportQuantization,
  type ExportSpec,
  type MergeMethodName,
} from '../training/derive-spec.js';
import { BadInputError, DeltagateError, NotFoundError } from '../shared/errors.js';
import { requireCustomer, scopeOf, type Actor } from './actor.js';
import { DOWNLOAD_URL_SECONDS } from './adapters.js';
import type { BaseModelRegistry } from './base-models.js';
import { storedBlobProblem } from './stored-blob.js';
import { canonicalJson, checkIdempotencyKey, type TrainingRunner } from './training-runner.js';

/**
 * What a derived version does with the `production` alias unless told: nothing. IF_BETTER compares held-out
 * eval losses, which derived versions do not have, and a SHRINK or MERGE is an experiment until someone
 * points an alias at it (docs/ADAPTERS.md).
 */
export const DEFAULT_DERIVED_PROMOTE_POLICY: PromotePolicy = 'NEVER';

/** Sources of one MERGE at most (each is read whole into the worker's memory). */
export const MAX_MERGE_SOURCES = 16;

export interface DeriveVersionInput {
  /** The adapter that gets the new version (the sources may belong to other adapters of the same base). */
  adapterId: string;
  operation: 'SHRINK' | 'MERGE';
  sources: { versionId: string; weight?: number | null }[];
  method?: MergeMethodName | null;
  rank?: number | null;
  energy?: number | null;
  idempotencyKey?: string | null;
  promote?: PromotePolicy | null;
}

export interface ExportVersionInput {
  versionId: string;
  format: ExportFormatName;
  quantize?: ExportQuantization | null;
  idempotencyKey?: string | null;
}

/** An artifact's presigned GET is valid this long (as AdapterVersion.downloadUrl). */
export const ARTIFACT_URL_SECONDS = DOWNLOAD_URL_SECONDS;

/** A stored artifact that no longer hashes to what was recorded: never handed out. */
export class ArtifactIntegrityError extends DeltagateError {
  constructor(jobId: string, why: string) {
    super('INTERNAL_SERVER_ERROR', `the export of job ${jobId} failed its SHA-256 check (${why})`, {
      details: { jobId },
    });
  }
}

function field(name: string, message: string): never {
  throw new BadInputError(message, { details: { field: name } });
}

/** The client's derive input as a spec: shapes only (no SQL), so it also serves the idempotency compare. */
export function normalizeDeriveInput(input: DeriveVersionInput): DeriveSpec {
  const op = input.operation;
  if (op !== 'SHRINK' && op !== 'MERGE') field('operation', 'operation must be SHRINK or MERGE');
  const sources = (input.sources ?? []).map((s, i) => {
    const weight = s.weight ?? 1;
    if (typeof weight !== 'number' || !Number.isFinite(weight))
      field(`sources[${i}].weight`, `sources[${i}].weight must be a finite number (got ${weight})`);
    return { versionId: s.versionId, weight };
  });
  const seen = new Set<string>();
  for (const [i, s] of sources.entries()) {
    if (seen.has(s.versionId))
      field(`sources[${i}].versionId`, `version ${s.versionId} is listed twice in sources`);
    seen.add(s.versionId);
  }
  const rank = input.rank ?? null;
  const energy = input.energy ?? null;
  if (rank !== null && !(Number.isSafeInteger(rank) && rank >= 1))
    field('rank', `rank must be a positive integer (got ${rank})`);
  if (energy !== null && !(Number.isFinite(energy) && energy > 0 && energy <= 1))
    field('energy', `energy must be in (0, 1] (got ${energy})`);
  const method = input.method ?? null;
  if (op === 'SHRINK') {
    if (sources.length !== 1)
      field('sources', `SHRINK takes exactly one source version (got ${sources.length})`);
    if (sources[0]!.weight !== 1) field('sources[0].weight', 'SHRINK takes its source with weight 1');
    if (method !== null) field('method', 'method applies to MERGE only');
    if ((rank === null) === (energy === null)) field('rank', 'SHRINK takes exactly one of rank and energy');
    return { operation: op, sources, method: null, rank, energy };
  }
  if (sources.length < 2) field('sources', `MERGE takes two or more source versions (got ${sources.length})`);
  if (sources.length > MAX_MERGE_SOURCES)
    field('sources', `MERGE takes at most ${MAX_MERGE_SOURCES} source versions (got ${sources.length})`);
  if (method === null || !MERGE_METHODS.includes(method))
    field('method', `MERGE needs a method: ${MERGE_METHODS.join(', ')}`);
  if (energy !== null) field('energy', 'energy applies to SHRINK only');
  if (rank !== null && method !== 'SVD') field('rank', 'rank applies to the SVD method only');
  return { operation: op, sources, method, rank, energy: null };
}

export function normalizeExportInput(input: ExportVersionInput): ExportSpec {
  if (!EXPORT_FORMATS.includes(input.format))
    field('format', `format must be ${EXPORT_FORMATS.join(' or ')}`);
  const quantize = input.quantize ?? 'NONE';
  if (!EXPORT_QUANTIZATIONS.includes(quantize))
    field('quantize', `quantize must be one of ${EXPORT_QUANTIZATIONS.join(', ')}`);
  if (input.format === 'HF' && quantize !== 'NONE')
    field('quantize', `HF exports are F32 safetensors: quantize must be NONE (got ${quantize}); use GGUF`);
  return { operation: 'EXPORT', versionId: input.versionId, format: input.format, quantize };
}

/** PEFT's rank of a stored adapter: max(r, its rank_pattern values), from adapter_config.json. */
function peftRankOf(config: unknown, recorded: number): number {
  const c = (config ?? {}) as { r?: unknown; rank_pattern?: unknown };
  const ranks = [typeof c.r === 'number' ? c.r : recorded];
  if (c.rank_pattern && typeof c.rank_pattern === 'object')
    for (const v of Object.values(c.rank_pattern)) if (typeof v === 'number') ranks.push(v);
  return Math.max(...ranks);
}

/** The smallest min(out, in) over `modules` of `config`, and which module (the first, in model order). */
function smallestSide(config: ModelConfig, modules: readonly string[]): { dim: number; module: string } {
  let best = { dim: Infinity, module: '' };
  for (const m of LINEAR_MODULES) {
    if (!modules.includes(m)) continue;
    const { inFeatures, outFeatures } = linearShape(config, m);
    const dim = Math.min(inFeatures, outFeatures);
    if (dim < best.dim) best = { dim, module: `${m} [${outFeatures}, ${inFeatures}]` };
  }
  return best;
}

export interface DerivedJobsDeps {
  repos: Repositories;
  blobs: BlobStore;
  baseModels: BaseModelRegistry;
  /** null: this process cannot queue jobs. */
  runner: TrainingRunner | null;
  logger: Logger;
}

interface Source {
  version: AdapterVersion;
  adapter: Adapter;
  label: string;
  /** PEFT's rank (max of r and rank_pattern). */
  rank: number;
}

export class DerivedJobsService {
  constructor(private readonly deps: DerivedJobsDeps) {}

  private runner(): TrainingRunner {
    if (this.deps.runner === null)
      throw new DeltagateError('INTERNAL_SERVER_ERROR', 'jobs cannot be queued from this process');
    return this.deps.runner;
  }

  private async source(scope: Scope, versionId: string): Promise<Source> {
    const { repos, blobs } = this.deps;
    const version = await repos.adapterVersions.findById(scope, versionId);
    if (version === null) throw new NotFoundError('adapter version', versionId);
    const adapter = await repos.adapters.findById(scope, version.adapterId);
    if (adapter === null) throw new NotFoundError('adapter version', versionId);
    const label = `${adapter.name}@v${version.version}`;
    let config: unknown = null;
    try {
      config = JSON.parse(
        Buffer.from(await blobs.get(version.blobPrefix + ADAPTER_FILES.config)).toString('utf8'),
      );
    } catch (err) {
      // Unreadable here: the job's strict import reports it; the recorded rank stands in meanwhile.
      this.deps.logger.warn({ err, versionId }, 'could not read a source adapter_config.json');
    }
    return { version, adapter, label, rank: peftRankOf(config, version.rank) };
  }

  /** Queues a SHRINK or MERGE job whose success registers the next version of `input.adapterId`. */
  async derive(actor: Actor, input: DeriveVersionInput): Promise<TrainingJob> {
    requireCustomer(actor);
    const scope = scopeOf(actor);
    const key = checkIdempotencyKey(input.idempotencyKey);
    const promote = input.promote ?? DEFAULT_DERIVED_PROMOTE_POLICY;
    if (!PROMOTE_POLICIES.includes(promote))
      field('promote', `promote must be one of ${PROMOTE_POLICIES.join(', ')}`);
    const spec = normalizeDeriveInput(input);
    const wanted = { kind: spec.operation, adapterId: input.adapterId, spec, promote };
    return this.runner().submitJob(
      actor,
      key,
      async (job) => {
        const had = { kind: job.kind, adapterId: job.adapterId, spec: job.spec, promote: job.promote };
        return canonicalJson(had) === canonicalJson(wanted) ? null : 'input';
      },
      async () => {
        const { repos, baseModels } = this.deps;
        const target = await repos.adapters.findById(scope, input.adapterId);
        if (target === null) throw new NotFoundError('adapter', input.adapterId);
        const base = baseModels.require(target.baseModelId);
        const sources: Source[] = [];
        for (const s of spec.sources) sources.push(await this.source(scope, s.versionId));
        for (const [i, s] of sources.entries()) {
          if (s.adapter.baseModelId !== target.baseModelId)
            field(
              `sources[${i}].versionId`,
              `${s.label} is an adapter of ${s.adapter.baseModelId}; ${target.name} is of ${target.baseModelId}`,
            );
        }
        this.checkRanks(spec, sources, base.modelConfig);
        return {
          adapterId: target.id,
          kind: spec.operation,
          datasetId: null,
          validationDatasetId: null,
          hyperparameters: {},
          spec: { ...spec },
          promote,
        };
      },
    );
  }

  /** The ranks the engine would refuse, refused now (naming the module or the versions). */
  private checkRanks(spec: DeriveSpec, sources: Source[], config: ModelConfig): void {
    const modules = [...new Set(sources.flatMap((s) => s.version.targetModules))];
    const side = smallestSide(config, modules);
    if (spec.operation === 'SHRINK') {
      const s = sources[0]!;
      if (spec.rank === null) return;
      if (spec.rank >= s.rank)
        field('rank', `rank ${spec.rank} is not below ${s.label}'s rank ${s.rank}: nothing to shrink`);
      if (spec.rank >= side.dim)
        field('rank', `rank ${spec.rank} is not below min(out, in) = ${side.dim} of ${side.module}`);
      return;
    }
    if (spec.method === 'LINEAR' && new Set(sources.map((s) => s.rank)).size > 1)
      field(
        'method',
        `LINEAR merging needs sources of one rank, got ${sources.map((s) => `${s.label} rank ${s.rank}`).join(', ')} (use CAT, or SVD with a rank)`,
      );
    if (spec.method === 'SVD') {
      const rank = spec.rank ?? Math.max(...sources.map((s) => s.rank));
      if (rank >= side.dim)
        field(
          'rank',
          `rank ${rank}${spec.rank === null ? ' (the largest source rank)' : ''} is not below min(out, in) = ${side.dim} of ${side.module}`,
        );
    }
  }

  /** Queues an EXPORT job: the version merged into its base model, stored for download. */
  async export(actor: Actor, input: ExportVersionInput): Promise<TrainingJob> {
    requireCustomer(actor);
    const scope = scopeOf(actor);
    const key = checkIdempotencyKey(input.idempotencyKey);
    const spec = normalizeExportInput(input);
    return this.runner().submitJob(
      actor,
      key,
      async (job) =>
        job.kind === 'EXPORT' && canonicalJson(job.spec) === canonicalJson(spec) ? null : 'input',
      async () => {
        const version = await this.deps.repos.adapterVersions.findById(scope, spec.versionId);
        if (version === null) throw new NotFoundError('adapter version', spec.versionId);
        const adapter = await this.deps.repos.adapters.findById(scope, version.adapterId);
        if (adapter === null) throw new NotFoundError('adapter version', spec.versionId);
        this.deps.baseModels.require(adapter.baseModelId);
        return {
          adapterId: adapter.id,
          kind: 'EXPORT',
          datasetId: null,
          validationDatasetId: null,
          hyperparameters: {},
          spec: { ...spec },
          promote: 'NEVER',
        };
      },
    );
  }

  /**
   * A presigned GET of the job's artifact — after reading it back and checking its size and SHA-256 against
   * the record (one streamed pass over the file: a model's size), as AdapterVersion.downloadUrl does.
   */
  async artifactUrl(actor: Actor, job: TrainingJob, artifact: JobArtifact): Promise<string> {
    scopeOf(actor);
    const problem = await storedBlobProblem(this.deps.blobs, artifact.key, artifact);
    if (problem !== null) {
      const err = new ArtifactIntegrityError(job.id, problem);
      this.deps.logger.error({ jobId: job.id, key: artifact.key, why: problem }, err.message);
      throw err;
    }
    return (await this.deps.blobs.presignGet(artifact.key, { expiresInSeconds: ARTIFACT_URL_SECONDS })).url;
  }
}
