/**
 * Datasets: inline `upload`, and the presigned path `createUpload` → client PUT → `completeUpload`, which
 * validates what was PUT (PENDING → VALIDATING → READY | INVALID with line-numbered errors). Nothing is
 * half-written: the blob goes first, then the row in a transaction, and the blob is removed if the row
 * fails. JSONL parsing is src/training/dataset-rows.ts; key layout src/storage/keys.ts.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Dataset, DatasetError, DatasetFormat } from '../db/repositories/datasets.js';
import { inTransaction, type Page, type Repositories } from '../db/repositories/index.js';
import { UploadsRepository } from '../db/repositories/uploads.js';
import { newId } from '../db/ids.js';
import type { BlobStore } from '../storage/blob-store.js';
import { datasetKey, datasetPrefix } from '../storage/keys.js';
import { validateDatasetAsync, type DatasetRow } from '../training/dataset-rows.js';
import { BadInputError, ConflictError, NotFoundError } from '../shared/errors.js';
import { TimeSlice } from '../shared/time-slice.js';
import { requireCustomer, scopeOf, type Actor } from './actor.js';
import { validateLabel, validateSizeBytes } from './validation.js';

export const DATASET_FORMATS: readonly DatasetFormat[] = ['PROMPT_COMPLETION', 'CHAT', 'TEXT'];

export interface DatasetLimits {
  maxDatasetBytes: number;
  maxInlineDatasetBytes: number;
}

/**
 * Counts tokens of one text with the built-in tokenizer (no BOS); null when no tokenizer is available. Called
 * once per text field of every row, between event-loop slices: it must be linear and fast (the built-in
 * tokenizer's `countTokens` is: src/engine/formats/tokenizer.ts).
 */
export type TokenCounter = (text: string) => number;

export interface DatasetUploadTicket {
  dataset: Dataset;
  uploadId: string;
  url: string;
  headers: Record<string, string>;
  expiresAt: Date;
}

/** Presigned upload URLs live this long. */
export const UPLOAD_URL_SECONDS = 3600;

export class DatasetsService {
  constructor(
    private readonly repos: Repositories,
    private readonly blobs: BlobStore,
    private readonly limits: DatasetLimits,
    private readonly countTokens: TokenCounter | null,
    private readonly logger: Logger,
  ) {}

  async get(actor: Actor, id: string): Promise<Dataset> {
    const ds = await this.repos.datasets.findById(scopeOf(actor), id);
    if (ds === null) throw new NotFoundError('dataset', id);
    return ds;
  }

  async getMany(actor: Actor, ids: readonly string[]): Promise<Dataset[]> {
    return this.repos.datasets.findByIds(scopeOf(actor), ids);
  }

  async list(actor: Actor, first: number, after: string | null): Promise<Page<Dataset>> {
    return this.repos.datasets.list(scopeOf(actor), { first, after });
  }

  /**
   * Inline upload: validated at once (in event-loop slices: other requests keep running); INVALID datasets
   * are recorded (with errors) but keep no blob.
   */
  async upload(
    actor: Actor,
    input: { name: string; content: string; format: DatasetFormat },
  ): Promise<Dataset> {
    const { customerId } = requireCustomer(actor);
    const name = validateLabel(input.name, 'dataset name');
    checkFormat(input.format);
    const tooLarge = (size: number) =>
      new BadInputError(
        `inline dataset is ${size} bytes, over the limit of ${this.limits.maxInlineDatasetBytes}; use createDatasetUpload for larger files`,
      );
    // Every UTF-16 unit is at least one UTF-8 byte: a string this long is too large without encoding it.
    if (input.content.length > this.limits.maxInlineDatasetBytes) throw tooLarge(input.content.length);
    // Parsing the request already took its time on the event loop: let others run before our own work.
    const slice = new TimeSlice();
    await slice.pause();
    const bytes = await utf8InSlices(input.content, slice);
    if (bytes.byteLength > this.limits.maxInlineDatasetBytes) throw tooLarge(bytes.byteLength);
    const id = newId('dataset');
    const blobKey = datasetKey(customerId, id);
    const result = await this.validate(bytes, input.format, slice);
    if (result.status === 'READY')
      await this.blobs.put(blobKey, bytes, { ifNoneMatch: true, sha256: result.sha256 });
    try {
      return await this.repos.datasets.insert({
        id,
        customerId,
        name,
        format: input.format,
        blobKey,
        ...result,
      });
    } catch (err) {
      if (result.status === 'READY') await this.removeBlobs(customerId, id);
      throw err;
    }
  }

  /** Presigned path, step 1: a PENDING dataset and a URL the client PUTs exactly `sizeBytes` bytes to. */
  async createUpload(
    actor: Actor,
    input: { name: string; format: DatasetFormat; sizeBytes: number },
  ): Promise<DatasetUploadTicket> {
    const { customerId } = requireCustomer(actor);
    const name = validateLabel(input.name, 'dataset name');
    checkFormat(input.format);
    validateSizeBytes(input.sizeBytes, this.limits.maxDatasetBytes);
    const id = newId('dataset');
    const uploadId = UploadsRepository.newId();
    const blobKey = datasetKey(customerId, id);
    const presigned = await this.blobs.presignPut(blobKey, {
      expiresInSeconds: UPLOAD_URL_SECONDS,
      contentLength: input.sizeBytes,
      contentType: 'application/x-ndjson',
    });
    const dataset = await inTransaction(this.repos.db, async (tx) => {
      const ds = await tx.datasets.insert({
        id,
        customerId,
        name,
        format: input.format,
        blobKey,
        status: 'PENDING',
      });
      await tx.uploads.insert({
        id: uploadId,
        customerId,
        kind: 'DATASET',
        blobKey,
        sizeBytes: input.sizeBytes,
        datasetId: id,
        expiresAt: presigned.expiresAt.toISOString(),
      });
      return ds;
    });
    return {
      dataset,
      uploadId,
      url: presigned.url,
      headers: presigned.headers,
      expiresAt: presigned.expiresAt,
    };
  }

  /**
   * Presigned path, step 2: validate what was PUT. Idempotent for a finished dataset; CONFLICT while another
   * call is validating; BAD_USER_INPUT (dataset stays PENDING) when nothing has been PUT yet.
   */
  async completeUpload(actor: Actor, datasetId: string): Promise<Dataset> {
    const scope = scopeOf(actor);
    requireCustomer(actor);
    const ds = await this.repos.datasets.findById(scope, datasetId);
    if (ds === null) throw new NotFoundError('dataset', datasetId);
    if (ds.status === 'READY' || ds.status === 'INVALID') return ds;
    if (ds.status === 'VALIDATING') throw new ConflictError(`dataset ${datasetId} is being validated`);
    const upload = await this.repos.uploads.findByDatasetId(scope, datasetId);
    if (upload === null) throw new NotFoundError('dataset upload', datasetId);

    const head = await this.blobs.head(ds.blobKey);
    if (head === null) {
      const expired = Date.parse(upload.expiresAt) < Date.now();
      throw new BadInputError(
        expired
          ? `the upload URL of dataset ${datasetId} expired before anything was uploaded; create a new upload`
          : `nothing has been uploaded for dataset ${datasetId} yet`,
      );
    }
    const claimed = await this.repos.datasets.transition(scope, datasetId, 'PENDING', {
      status: 'VALIDATING',
    });
    if (claimed === null) throw new ConflictError(`dataset ${datasetId} is being validated`);
    try {
      let result: ValidationResult;
      if (head.size !== upload.sizeBytes) {
        result = {
          status: 'INVALID',
          sizeBytes: head.size,
          errors: [
            { line: 0, message: `uploaded ${head.size} bytes, but the upload declared ${upload.sizeBytes}` },
          ],
        };
      } else {
        result = await this.validate(await this.blobs.get(ds.blobKey), ds.format);
      }
      if (result.status === 'INVALID') await this.removeBlobs(ds.customerId, ds.id);
      const done = await inTransaction(this.repos.db, async (tx) => {
        await tx.uploads.complete(scope, upload.id);
        return tx.datasets.transition(scope, datasetId, 'VALIDATING', result);
      });
      if (done === null) throw new ConflictError(`dataset ${datasetId} changed while it was validated`);
      return done;
    } catch (err) {
      // Back to PENDING so the client can complete again after a transient failure.
      await this.repos.datasets
        .transition(scope, datasetId, 'VALIDATING', { status: 'PENDING' })
        .catch(() => null);
      throw err;
    }
  }

  /** Removes the row (and its upload record) first, then the blobs: a visible dataset always has its file. */
  async delete(actor: Actor, id: string): Promise<boolean> {
    const scope = scopeOf(actor);
    const ds = await this.repos.datasets.findById(scope, id);
    if (ds === null) throw new NotFoundError('dataset', id);
    const active = await this.repos.db
      .selectFrom('training_jobs')
      .select('id')
      .where((eb) => eb.or([eb('dataset_id', '=', id), eb('validation_dataset_id', '=', id)]))
      .where('status', 'in', ['QUEUED', 'RUNNING'])
      .executeTakeFirst();
    if (active)
      throw new ConflictError(`dataset ${id} is used by training job ${active.id}, which has not finished`);
    await inTransaction(this.repos.db, async (tx) => {
      await tx.uploads.deleteByDatasetId(id);
      await tx.datasets.delete(scope, id);
    });
    await this.removeBlobs(ds.customerId, ds.id);
    return true;
  }

  /**
   * Validation, token count and SHA-256 in one pass of linear work, paused every slice (8 ms) so the event
   * loop never waits on a large dataset (the presigned path takes up to DELTAGATE_MAX_DATASET_BYTES).
   */
  private async validate(
    bytes: Uint8Array,
    format: DatasetFormat,
    slice = new TimeSlice(),
  ): Promise<ValidationResult> {
    const count = this.countTokens;
    let tokens = 0;
    const v = await validateDatasetAsync(
      bytes,
      format,
      { maxBytes: this.limits.maxDatasetBytes },
      {
        slice,
        keepRows: false,
        ...(count === null ? {} : { onRow: (row: DatasetRow) => (tokens += rowTokens(row, count)) }),
      },
    );
    const sha256 = await sha256InSlices(bytes, slice);
    if (!v.ok) {
      return { status: 'INVALID', rowCount: v.rowCount, sizeBytes: v.sizeBytes, sha256, errors: v.errors };
    }
    if (v.rowCount === 0) {
      return {
        status: 'INVALID',
        rowCount: 0,
        sizeBytes: v.sizeBytes,
        sha256,
        errors: [{ line: 0, message: 'dataset has no rows' }],
      };
    }
    return {
      status: 'READY',
      rowCount: v.rowCount,
      sizeBytes: v.sizeBytes,
      sha256,
      tokenCount: count === null ? null : tokens,
      errors: [],
    };
  }

  private async removeBlobs(customerId: string, datasetId: string): Promise<void> {
    try {
      await this.blobs.deletePrefix(datasetPrefix(customerId, datasetId));
    } catch (err) {
      // The row is gone or was never written, so the orphan is invisible; log it for a sweeper.
      this.logger.warn({ err, customerId, datasetId }, 'could not remove dataset blobs');
    }
  }
}

type ValidationResult = {
  status: 'READY' | 'INVALID';
  rowCount?: number;
  sizeBytes: number;
  sha256?: string;
  tokenCount?: number | null;
  errors: DatasetError[];
};

/** The tokens of a row's text fields (prompt + completion, every message's content, or the text). */
function rowTokens(row: DatasetRow, count: TokenCounter): number {
  if ('text' in row) return count(row.text);
  if ('messages' in row) {
    let n = 0;
    for (const m of row.messages) n += count(m.content);
    return n;
  }
  return count(row.prompt) + count(row.completion);
}

/**
 * `Buffer.from(text, 'utf8')` in steps of 256 Ki characters (never splitting a surrogate pair), pausing when
 * the slice is used up: one pass to size the buffer, one to fill it.
 */
async function utf8InSlices(text: string, slice: TimeSlice): Promise<Uint8Array> {
  const STEP = 256 * 1024;
  const ends: number[] = [];
  for (let at = 0; at < text.length;) {
    let end = Math.min(at + STEP, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    ends.push(end);
    at = end;
  }
  let size = 0;
  for (let i = 0, at = 0; i < ends.length; at = ends[i++]!) {
    size += Buffer.byteLength(text.slice(at, ends[i]), 'utf8');
    await slice.maybePause();
  }
  const out = Buffer.allocUnsafe(size);
  let written = 0;
  for (let i = 0, at = 0; i < ends.length; at = ends[i++]!) {
    written += out.write(text.slice(at, ends[i]), written, 'utf8');
    await slice.maybePause();
  }
  return out;
}

/** SHA-256 (hex) of `bytes`, 1 MiB at a time, pausing when the slice is used up. */
async function sha256InSlices(bytes: Uint8Array, slice: TimeSlice): Promise<string> {
  const hash = createHash('sha256');
  const CHUNK = 1024 * 1024;
  for (let at = 0; at < bytes.byteLength; at += CHUNK) {
    hash.update(bytes.subarray(at, Math.min(at + CHUNK, bytes.byteLength)));
    await slice.maybePause();
  }
  return hash.digest('hex');
}

function checkFormat(format: string): asserts format is DatasetFormat {
  if (!DATASET_FORMATS.includes(format as DatasetFormat)) {
    throw new BadInputError(`unknown dataset format ${JSON.stringify(format)}`);
  }
}
