/**
 * Presigned-upload records: which blob key a customer may PUT to, how many bytes were promised and until
 * when. A dataset upload points at its PENDING dataset; an adapter-weights upload is consumed by
 * `importAdapterVersion(uploadId)`. The presigning itself is src/storage's; the rules are src/services'.
 */
import type { Selectable } from 'kysely';
import type { Db } from '../database.js';
import { nowIso, toNumber } from '../database.js';
import { newId } from '../ids.js';
import type { UploadsTable } from '../schema.js';
import { inScope, type Scope } from './scope.js';

export type UploadKind = 'DATASET' | 'ADAPTER_WEIGHTS';
export type UploadStatus = 'PENDING' | 'COMPLETED';

export interface Upload {
  id: string;
  customerId: string;
  kind: UploadKind;
  blobKey: string;
  sizeBytes: number;
  datasetId: string | null;
  status: UploadStatus;
  expiresAt: string;
  createdAt: string;
  completedAt: string | null;
}

type Row = Selectable<UploadsTable>;

function toUpload(r: Row): Upload {
  return {
    id: r.id,
    customerId: r.customer_id,
    kind: r.kind as UploadKind,
    blobKey: r.blob_key,
    sizeBytes: toNumber(r.size_bytes) ?? 0,
    datasetId: r.dataset_id,
    status: r.status as UploadStatus,
    expiresAt: r.expires_at,
    createdAt: r.created_at,
    completedAt: r.completed_at,
  };
}

export class UploadsRepository {
  constructor(private readonly db: Db) {}

  /** The id is chosen by the caller so the blob key (which embeds it) can be computed first. */
  static newId(): string {
    return newId('upload');
  }

  async insert(
    input: {
      id: string;
      customerId: string;
      kind: UploadKind;
      blobKey: string;
      sizeBytes: number;
      datasetId: string | null;
      expiresAt: string;
    },
    db: Db = this.db,
  ): Promise<Upload> {
    const row: Row = {
      id: input.id,
      customer_id: input.customerId,
      kind: input.kind,
      blob_key: input.blobKey,
      size_bytes: input.sizeBytes,
      dataset_id: input.datasetId,
      status: 'PENDING',
      expires_at: input.expiresAt,
      created_at: nowIso(),
      completed_at: null,
    };
    await db.insertInto('uploads').values(row).execute();
    return toUpload(row);
  }

  async findById(scope: Scope, id: string, db: Db = this.db): Promise<Upload | null> {
    const r = await db
      .selectFrom('uploads')
      .selectAll()
      .where('id', '=', id)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toUpload(r) : null;
  }

  async findByDatasetId(scope: Scope, datasetId: string, db: Db = this.db): Promise<Upload | null> {
    const r = await db
      .selectFrom('uploads')
      .selectAll()
      .where('dataset_id', '=', datasetId)
      .$call(inScope(scope))
      .executeTakeFirst();
    return r ? toUpload(r) : null;
  }

  /** Compare-and-set PENDING → COMPLETED; false when it was already completed. */
  async complete(scope: Scope, id: string, db: Db = this.db): Promise<boolean> {
    const res = await db
      .updateTable('uploads')
      .set({ status: 'COMPLETED', completed_at: nowIso() })
      .where('id', '=', id)
      .where('status', '=', 'PENDING')
      .$call(inScope(scope))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async delete(scope: Scope, id: string, db: Db = this.db): Promise<boolean> {
    const res = await db.deleteFrom('uploads').where('id', '=', id).$call(inScope(scope)).executeTakeFirst();
    return Number(res.numDeletedRows) === 1;
  }

  async deleteByDatasetId(datasetId: string, db: Db = this.db): Promise<void> {
    await db.deleteFrom('uploads').where('dataset_id', '=', datasetId).execute();
  }
}
