/**
 * The queue's handler for jobs that are not training: SHRINK and MERGE (a derived adapter version from other
 * versions, registered as the target adapter's next version with its parents and report) and EXPORT (a
 * version merged into its base model, stored as one GGUF file or HF .tar with an expiry). One delivery, from
 * the SQL row to the result: the arithmetic runs in a worker thread (./derive-thread.ts), progress goes to
 * SQL (on a clock) and the bus (per module / tensor) like training's, cancel terminates the thread, and every
 * side effect is fenced (create-only blobs, one version per job id, a compare-and-set to SUCCEEDED) because
 * delivery is at least once (docs/QUEUE.md). Training is ./job-handler.ts; the rules are
 * src/services/derived-jobs.ts; the shapes ./derive-spec.ts.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ALL, inTransaction, tenant, type Repositories } from '../db/repositories/index.js';
import type { Adapter } from '../db/repositories/adapters.js';
import type { AdapterVersion } from '../db/repositories/adapter-versions.js';
import type { JobArtifact, TrainingJob, TrainingProgress } from '../db/repositories/training-jobs.js';
import { loadModelConfig } from '../engine/formats/checkpoint.js';
import type { JobHandler } from '../queue/job-queue.js';
import { JobCancelledError, UnrecoverableJobError } from '../queue/job-queue.js';
import type { ProgressBus } from '../queue/progress-bus.js';
import type { BlobStore } from '../storage/blob-store.js';
import { ADAPTER_FILES, exportArtifactKey, exportPrefix } from '../storage/keys.js';
import { BadInputError } from '../shared/errors.js';
import type { AdapterFiles, DeriveOutput, ExportOutput } from './derive-compute.js';
import { deriveSpecOf, exportSpecOf, type DeriveSpec, type ExportSpec } from './derive-spec.js';
import { runInWorkerThread } from './derive-thread.js';
import { putFileArtifact, putTarArtifact } from './export-artifact.js';
import { errorMessage, isBadInput, publicJobError } from './job-errors.js';
import {
  claimDelivery,
  progressEventOf,
  type TrainingJobPayload,
  type TrainingProgressEvent,
} from './job-handler.js';
import { ProgressWriter } from './progress-writer.js';
import { registerJobVersion } from './register-version.js';

/** How long an export artifact is kept (then the sweeper deletes it): 7 days, S3's presign ceiling. */
export const DEFAULT_EXPORT_TTL_MS = 7 * 24 * 3600 * 1000;

export interface DerivedJobHandlerDeps {
  repos: Repositories;
  blobs: BlobStore;
  bus: ProgressBus<TrainingProgressEvent>;
  /** The HF directory of a registered base model, or null when this process does not know it. */
  modelDirOf(baseModelId: string): string | null;
  logger: Logger;
  /** Where exports are written before upload (a real model's size, free). Default: the OS temp dir. */
  scratchDir?: string;
  /** An export artifact's lifetime. Default DEFAULT_EXPORT_TTL_MS. */
  exportTtlMs?: number;
  /** SQL progress writes at most this often (ms). Default 1000. */
  progressWriteIntervalMs?: number;
}

/** Step events waiting for the bus beyond this are dropped (events are snapshots; SQL keeps the record). */
const MAX_PENDING_PUBLISHES = 100;

class JobLeftRunning extends Error {}

/** What one run needs besides the job: its log, abort signal and progress sink. */
interface Run {
  job: TrainingJob;
  /** SQL's count of runs started (only grows, across restarts too): fences this run's blobs. */
  attempts: number;
  log: Logger;
  abort: AbortSignal;
  onProgress(done: number, total: number, what: string): void;
  /** Waits until SQL and the bus have everything reported so far. */
  settle(): Promise<void>;
}

function emptyProgress(): TrainingProgress {
  return {
    step: 0,
    totalSteps: 0,
    epoch: 0,
    loss: null,
    evalLoss: null,
    learningRate: null,
    tokensPerSecond: null,
    etaSeconds: null,
  };
}

/** A buffer's memory moves to the worker when it owns it whole; a view into shared memory is copied. */
function movable(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

export function createDerivedJobHandler(deps: DerivedJobHandlerDeps): JobHandler<TrainingJobPayload> {
  const { repos, blobs, bus, logger } = deps;
  const scratchDir = deps.scratchDir ?? join(tmpdir(), 'deltagate-export');
  const ttlMs = deps.exportTtlMs ?? DEFAULT_EXPORT_TTL_MS;

  const publish = async (event: TrainingProgressEvent) => {
    // Progress must never fail a job: a Redis hiccup costs an event, SQL still has the state.
    await bus
      .publish(event.jobId, event)
      .catch((err: unknown) => logger.warn({ err }, 'progress publish failed'));
  };

  /** Moves a live job to a terminal status (compare-and-set) and tells subscribers. */
  const finish = async (jobId: string, status: 'FAILED' | 'CANCELLED', error: string | null) => {
    const job = await repos.trainingJobs.update(jobId, ['QUEUED', 'RUNNING'], {
      status,
      error,
      finishedAt: new Date().toISOString(),
    });
    const current = job ?? (await repos.trainingJobs.findById(ALL, jobId));
    if (current) await publish(progressEventOf(current));
  };

  /** A stored version's files for the worker, with the label errors name it by (`support@v3`). */
  const sourceFiles = async (
    job: TrainingJob,
    versionId: string,
  ): Promise<{ version: AdapterVersion; adapter: Adapter; files: AdapterFiles }> => {
    const scope = tenant(job.customerId);
    const version = await repos.adapterVersions.findById(scope, versionId);
    if (version === null) throw new BadInputError(`adapter version ${versionId} no longer exists`);
    const adapter = await repos.adapters.findById(scope, version.adapterId);
    if (adapter === null) throw new BadInputError(`adapter ${version.adapterId} no longer exists`);
    const [config, weights] = await Promise.all([
      blobs.get(version.blobPrefix + ADAPTER_FILES.config),
      blobs.get(version.blobPrefix + ADAPTER_FILES.weights),
    ]);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(config).toString('utf8'));
    } catch (cause) {
      throw new UnrecoverableJobError(
        `${adapter.name}@v${version.version}: stored adapter_config.json is not JSON`,
        {
          cause,
        },
      );
    }
    return {
      version,
      adapter,
      files: {
        label: `${adapter.name}@v${version.version}`,
        config: parsed,
        weights: movable(weights),
        sha256: version.sha256,
      },
    };
  };

  const baseOf = async (adapter: Adapter) => {
    const dir = deps.modelDirOf(adapter.baseModelId);
    if (dir === null) throw new BadInputError(`base model ${adapter.baseModelId} is not available here`);
    return dir;
  };

  /** SHRINK / MERGE: the sources → the worker → version N+1 of the target adapter with its lineage. */
  const derive = async (run: Run, spec: DeriveSpec): Promise<string | null> => {
    const { job } = run;
    const target = await repos.adapters.findById(tenant(job.customerId), job.adapterId);
    if (target === null) throw new BadInputError(`adapter ${job.adapterId} no longer exists`);
    const dir = await baseOf(target);
    const { config } = await loadModelConfig(dir);
    const sources: AdapterFiles[] = [];
    for (const s of spec.sources) {
      const src = await sourceFiles(job, s.versionId);
      if (src.adapter.baseModelId !== target.baseModelId)
        throw new BadInputError(
          `${src.files.label} is an adapter of ${src.adapter.baseModelId}, ${target.name} of ${target.baseModelId}`,
        );
      sources.push(src.files);
    }
    const out = (await runInWorkerThread(
      { kind: 'derive', spec, base: config, baseModelName: target.baseModelId, sources },
      { signal: run.abort, onProgress: run.onProgress, transfer: sources.map((s) => s.weights) },
    )) as DeriveOutput;
    await run.settle();
    if (run.abort.aborted) throw run.abort.reason;
    const json = Buffer.from(JSON.stringify(out.adapterConfig, null, 2) + '\n', 'utf8');
    const registered = await registerJobVersion(
      deps,
      job,
      {
        files: [
          { name: ADAPTER_FILES.config, bytes: json, contentType: 'application/json' },
          { name: ADAPTER_FILES.weights, bytes: out.weights, contentType: 'application/octet-stream' },
        ],
        rank: out.rank,
        alpha: out.alpha,
        targetModules: out.targetModules,
        metrics: null,
        datasetId: null,
        derivation: {
          operation: spec.operation,
          method: spec.method,
          rank: spec.rank,
          energy: spec.energy,
          report: out.report,
        },
        parents: spec.sources,
      },
      run.log,
    );
    if (registered === null) return null;
    const { version, promotion } = registered;
    run.log.info(
      { versionId: version.id, version: version.version, promotion },
      'derived version registered',
    );
    const how =
      spec.operation === 'SHRINK'
        ? `SHRINK to rank ${out.rank}, dropped energy ${Number(out.report.droppedEnergy).toExponential(2)}`
        : `MERGE ${spec.method} of ${spec.sources.length} versions, rank ${out.rank}`;
    return `registered version ${version.version} (${how})${promotion === null ? '' : `; ${promotion}`}`;
  };

  /** EXPORT: the version merged into its base (worker) → one blob → the job's artifact, with an expiry. */
  const exportVersion = async (run: Run, spec: ExportSpec): Promise<string | null> => {
    const { job } = run;
    const src = await sourceFiles(job, spec.versionId);
    const dir = await baseOf(src.adapter);
    await mkdir(scratchDir, { recursive: true });
    const work = await mkdtemp(join(scratchDir, `export-${job.id}-`));
    try {
      const gguf = spec.format === 'GGUF';
      const out = join(work, gguf ? 'model.gguf' : 'model');
      const made = (await runInWorkerThread(
        {
          kind: 'export',
          modelDir: dir,
          adapter: src.files,
          format: spec.format,
          quantize: spec.quantize,
          out,
        },
        { signal: run.abort, onProgress: run.onProgress, transfer: [src.files.weights] },
      )) as ExportOutput;
      if (run.abort.aborted) throw run.abort.reason;
      const name = `${src.adapter.name}-v${src.version.version}`;
      const fileName = gguf
        ? `${name}${spec.quantize === 'NONE' ? '' : `-${spec.quantize.toLowerCase()}`}.gguf`
        : `${name}-hf.tar`;
      const total = made.tensors + 1;
      run.onProgress(total, total, `storing ${fileName}`);
      const key = exportArtifactKey(job.customerId, job.id, run.attempts, gguf ? 'model.gguf' : 'model.tar');
      const put = gguf ? await putFileArtifact(blobs, key, out) : await putTarArtifact(blobs, key, out, name);
      const now = new Date();
      const artifact: JobArtifact = {
        key,
        fileName,
        format: spec.format,
        quantize: spec.quantize,
        sizeBytes: put.size,
        sha256: put.sha256,
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
      };
      await run.settle();
      try {
        if (run.abort.aborted) throw run.abort.reason;
        await inTransaction(repos.db, async (tx) => {
          await tx.customers.lockForUpdate(job.customerId);
          // Deleting a version deletes its exports (under the same lock): one finishing later keeps nothing.
          if ((await tx.adapterVersions.findById(tenant(job.customerId), spec.versionId)) === null)
            throw new BadInputError(`adapter version ${spec.versionId} was deleted while it was exported`);
          const moved = await tx.trainingJobs.update(job.id, ['RUNNING'], {
            status: 'SUCCEEDED',
            artifact,
            finishedAt: now.toISOString(),
            error: null,
          });
          if (moved === null) throw new JobLeftRunning();
        });
      } catch (err) {
        await blobs.delete(key).catch(() => undefined);
        if (err instanceof JobLeftRunning) return null;
        throw err;
      }
      // Runs of this job that died after storing their file: nothing in SQL points at theirs.
      for (const o of await blobs.list(exportPrefix(job.customerId, job.id)))
        if (o.key !== key) await blobs.delete(o.key).catch(() => undefined);
      run.log.info({ key, sizeBytes: put.size, warnings: made.warnings }, 'export stored');
      const mb = (put.size / 1e6).toFixed(1);
      return `exported ${fileName} (${spec.format}${gguf ? ` ${spec.quantize}` : ''}, ${mb} MB); download it from the job's artifact.downloadUrl until ${artifact.expiresAt}`;
    } finally {
      await rm(work, { recursive: true, force: true }).catch(() => undefined);
    }
  };

  return async ({ payload, finalAttempt, signal, attempt }) => {
    const jobId = payload.jobId;
    const log = logger.child({ jobId, attempt });
    const job = await claimDelivery(repos, publish, jobId, attempt, log);
    if (job === null) return;

    // Cancel arrives through the queue's signal (any process) or, as a fallback, through SQL: a progress
    // write that finds the job no longer RUNNING stops this run too. Either terminates the worker thread.
    const local = new AbortController();
    const abort = AbortSignal.any([signal, local.signal]);
    const writer = new ProgressWriter(deps.progressWriteIntervalMs ?? 1000, async (snapshot) => {
      try {
        const updated = await repos.trainingJobs.update(jobId, ['RUNNING'], { progress: snapshot.progress });
        if (updated === null) local.abort(new JobCancelledError(jobId));
      } catch (err) {
        log.warn({ err }, 'could not record job progress');
      }
    });
    let published: Promise<void> = Promise.resolve();
    let pending = 0;
    const started = performance.now();
    const run: Run = {
      job,
      attempts: job.attempts,
      log,
      abort,
      onProgress(done, total, what) {
        const seconds = (performance.now() - started) / 1000;
        const progress: TrainingProgress = {
          ...emptyProgress(),
          step: done,
          totalSteps: total,
          etaSeconds: done > 0 ? (seconds * (total - done)) / done : null,
        };
        writer.offer({ progress, history: [] });
        if (abort.aborted || pending >= MAX_PENDING_PUBLISHES) return;
        pending++;
        published = published.then(async () => {
          await publish({ jobId, status: 'RUNNING', ...progress, message: what });
          pending--;
        });
      },
      async settle() {
        await writer.flush();
        await published;
      },
    };

    try {
      const message =
        job.kind === 'EXPORT'
          ? await exportVersion(run, exportSpecOf(job))
          : await derive(run, deriveSpecOf(job));
      if (message === null) {
        // The job left RUNNING while we registered (cancelled): nothing was kept.
        await finish(jobId, 'CANCELLED', null);
        return;
      }
      const done = await repos.trainingJobs.findById(ALL, jobId);
      if (done) await publish(progressEventOf(done, message));
      log.info({ kind: job.kind }, 'job succeeded');
    } catch (err) {
      await run.settle();
      const reason: unknown = abort.aborted ? abort.reason : null;
      const cancelled =
        (reason as { name?: string } | null)?.name === 'JobCancelledError' ||
        (await repos.trainingJobs.findById(ALL, jobId))?.status === 'CANCELLED';
      if (cancelled) {
        log.info('job cancelled');
        await finish(jobId, 'CANCELLED', null);
        return;
      }
      if (reason !== null) throw reason; // worker shutdown or lost lock: the job runs again elsewhere
      if (isBadInput(err) || finalAttempt) {
        if (isBadInput(err)) log.info({ err: errorMessage(err) }, 'job failed on bad input');
        else log.error({ err }, 'job failed after its last attempt');
        await finish(jobId, 'FAILED', publicJobError(err)); // the customer sees no server paths
        throw new UnrecoverableJobError(errorMessage(err), { cause: err });
      }
      log.warn({ err }, 'job attempt failed; the queue retries it');
      throw err;
    }
  };
}
