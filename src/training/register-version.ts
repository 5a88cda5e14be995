/**
 * Registers a job's result as version N+1 of its adapter — exactly once, whatever the job's kind (training:
 * ./job-handler.ts; SHRINK / MERGE: ./derive-handler.ts). Files are written create-only under a fresh number's
 * prefix, then the version row (UNIQUE training_job_id), its lineage (parents) and the job's SUCCEEDED move
 * happen in one transaction. A second run of the same job finds the first one's row and keeps it; a job that
 * left RUNNING meanwhile (cancelled) rolls back and its files are removed. The same transaction applies the
 * job's `promote` policy to the `production` alias (./promotion.ts), under the customer's row lock so
 * concurrent registrations promote one at a time. Delivery is at least once: docs/QUEUE.md.
 */
import type { Logger } from 'pino';
import { isUniqueViolation } from '../db/database.js';
import {
  AdapterVersionsRepository,
  type AdapterVersion,
  type Derivation,
  type StoredFile,
} from '../db/repositories/adapter-versions.js';
import { inTransaction, type Repositories } from '../db/repositories/index.js';
import type { TrainingJob } from '../db/repositories/training-jobs.js';
import { BlobExistsError, sha256HexSliced, type BlobStore } from '../storage/blob-store.js';
import { ADAPTER_FILES, adapterVersionPrefix } from '../storage/keys.js';
import { ConflictError } from '../shared/errors.js';
import { applyPromotion } from './promotion.js';

const MAX_NUMBERING_ATTEMPTS = 8;

export interface VersionFile {
  name: string;
  bytes: Uint8Array;
  contentType: string;
}

/** What the new version is: its files (adapter_model.safetensors among them) and its row's fields. */
export interface NewJobVersion {
  files: VersionFile[];
  rank: number;
  alpha: number;
  targetModules: string[];
  metrics: Record<string, unknown> | null;
  datasetId: string | null;
  derivation: Derivation | null;
  /** The sources of a derived version, in order. */
  parents: readonly { versionId: string; weight: number }[];
}

export interface Registered {
  version: AdapterVersion;
  /** What the promote policy did (null when an earlier run had registered the version). */
  promotion: string | null;
}

class JobLeftRunning extends Error {}

/** Returns null when the job left RUNNING while registering (cancelled): nothing was kept. */
export async function registerJobVersion(
  deps: { repos: Repositories; blobs: BlobStore },
  job: TrainingJob,
  v: NewJobVersion,
  log: Logger,
): Promise<Registered | null> {
  const { repos, blobs } = deps;
  const existing = await repos.adapterVersions.findByTrainingJob(job.id);
  if (existing) {
    // An earlier run of this job registered it (and normally also finished the job); finish it if not.
    await repos.trainingJobs.update(job.id, ['RUNNING'], {
      status: 'SUCCEEDED',
      resultVersionId: existing.id,
      finishedAt: new Date().toISOString(),
      error: null,
    });
    return { version: existing, promotion: null };
  }
  const files: StoredFile[] = [];
  for (const f of v.files)
    files.push({ name: f.name, sizeBytes: f.bytes.byteLength, sha256: await sha256HexSliced(f.bytes) });
  const weights = files.find((f) => f.name === ADAPTER_FILES.weights);
  if (weights === undefined) throw new Error(`invariant failed: job ${job.id} has no weights to register`);
  let version = await repos.adapterVersions.nextVersionNumber(job.adapterId);
  for (let tries = 0; tries < MAX_NUMBERING_ATTEMPTS; tries++, version++) {
    const prefix = adapterVersionPrefix(job.customerId, job.adapterId, version);
    const written: string[] = [];
    try {
      for (const [i, f] of v.files.entries()) {
        await blobs.put(prefix + f.name, f.bytes, {
          ifNoneMatch: true,
          contentType: f.contentType,
          sha256: files[i]!.sha256,
        });
        written.push(prefix + f.name);
      }
      return await inTransaction(repos.db, async (tx) => {
        await tx.customers.lockForUpdate(job.customerId);
        const row = await tx.adapterVersions.insert({
          id: AdapterVersionsRepository.newId(),
          adapterId: job.adapterId,
          customerId: job.customerId,
          version,
          sha256: weights.sha256,
          sizeBytes: weights.sizeBytes,
          rank: v.rank,
          alpha: v.alpha,
          targetModules: [...v.targetModules],
          metrics: v.metrics,
          files,
          trainingJobId: job.id,
          datasetId: v.datasetId,
          blobPrefix: prefix,
          derivation: v.derivation,
        });
        await tx.adapterVersions.insertParents(row.id, job.customerId, v.parents);
        const moved = await tx.trainingJobs.update(job.id, ['RUNNING'], {
          status: 'SUCCEEDED',
          resultVersionId: row.id,
          finishedAt: new Date().toISOString(),
          error: null,
        });
        if (moved === null) throw new JobLeftRunning();
        const decision = await applyPromotion(tx, job, row);
        return { version: row, promotion: decision.reason };
      });
    } catch (err) {
      for (const key of written) await blobs.delete(key).catch(() => undefined);
      if (err instanceof JobLeftRunning) return null;
      if (isUniqueViolation(err)) {
        // Another run of this job registered first: keep its version (and finish the job with it).
        if (await repos.adapterVersions.findByTrainingJob(job.id))
          return registerJobVersion(deps, job, v, log);
        continue; // the number was taken by another import
      }
      if (err instanceof BlobExistsError || (err as { name?: string }).name === 'BlobExistsError') {
        log.info({ version }, 'version number taken in storage; trying the next');
        continue;
      }
      throw err;
    }
  }
  throw new ConflictError(`could not number a new version of adapter ${job.adapterId}`);
}
