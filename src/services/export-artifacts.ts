/**
 * The lifetime of EXPORT jobs' artifacts (a merged model: hundreds of MB to GB each): they are kept until
 * their `expiresAt` (7 days by default, src/training/derive-handler.ts) or until the exported version is
 * deleted, whichever comes first. SQL forgets the artifact first (compare-and-set), then the blob goes — a
 * crash in between leaves an unreferenced blob, never a row pointing at nothing. The sweeper runs with the
 * training reconciler (every minute in the API, at a worker's start). Download URLs: ./derived-jobs.ts.
 */
import type { Logger } from 'pino';
import type { Repositories } from '../db/repositories/index.js';
import type { BlobStore } from '../storage/blob-store.js';
import { exportPrefix } from '../storage/keys.js';

/** Deletes artifacts past their expiry (up to `limit` per call); returns how many. */
export async function sweepExpiredArtifacts(
  repos: Repositories,
  blobs: BlobStore,
  logger: Logger,
  now = new Date(),
  limit = 100,
): Promise<number> {
  let n = 0;
  for (const job of await repos.trainingJobs.listExpiredArtifacts(now.toISOString(), limit)) {
    const key = job.artifact!.key;
    if (!(await repos.trainingJobs.clearArtifact(job.id, key))) continue; // another sweeper took it
    await deleteArtifactBlobs(blobs, logger, job.customerId, job.id);
    logger.info({ jobId: job.id, key }, 'export artifact expired and was deleted');
    n++;
  }
  return n;
}

/**
 * Forgets (in SQL, through `tx`) the artifacts exported from `versionId`; returns the jobs whose blobs the
 * caller deletes after committing (`deleteArtifactBlobs`).
 */
export async function forgetArtifactsOfVersion(
  tx: Repositories,
  adapterId: string,
  versionId: string,
): Promise<{ customerId: string; jobId: string }[]> {
  const out: { customerId: string; jobId: string }[] = [];
  for (const job of await tx.trainingJobs.listWithArtifacts(adapterId, tx.db)) {
    if (job.spec?.versionId !== versionId) continue;
    if (await tx.trainingJobs.clearArtifact(job.id, job.artifact!.key, tx.db))
      out.push({ customerId: job.customerId, jobId: job.id });
  }
  return out;
}

/** Removes everything a job exported (every run's folder); failures are logged, the sweep can retry later. */
export async function deleteArtifactBlobs(
  blobs: BlobStore,
  logger: Logger,
  customerId: string,
  jobId: string,
): Promise<void> {
  try {
    await blobs.deletePrefix(exportPrefix(customerId, jobId));
  } catch (err) {
    logger.warn({ err, jobId }, 'could not delete export artifact');
  }
}
